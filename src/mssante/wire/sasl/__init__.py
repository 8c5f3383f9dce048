"""SASL mechanisms of the API LPS, without I/O: XOAUTH2, OAUTHBEARER and PLAIN, both roles.

Messages here are the *raw* SASL messages; IMAP and SMTP carry them base64-encoded
(:func:`b64encode`, :func:`b64decode`). Client objects produce the bytes to send; server
functions parse what a client sent into typed credentials. Bearer tokens and passwords are
held in :class:`~mssante.secret.Secret` and revealed only inside the bytes produced
(ECO.1.2.5): no repr, no error message here ever contains one.

Wire formats:

* XOAUTH2 (Google's definition, reused by Ref #2 ECO.1.2.1):
  ``"user=" addr ^A "auth=Bearer " token ^A ^A``; on failure the server sends a JSON error
  challenge and the client answers with an *empty* response.
* OAUTHBEARER (RFC 7628 §3.1): ``gs2-header ^A *(key "=" value ^A) ^A`` with the gs2 header
  ``n,a=addr,`` (RFC 5801 §4); on failure the client answers the JSON error challenge with a
  single ``^A`` (RFC 7628 §3.2.3).
* PLAIN (RFC 4616 §2): ``[authzid] NUL authcid NUL passwd``.

The JSON error challenge (RFC 7628 §3.2.2) is :class:`BearerError`.
"""

from __future__ import annotations

from mssante.wire.sasl._client import ClientMechanism, OAuthBearerClient, PlainClient, XOAuth2Client
from mssante.wire.sasl._common import SMTP_AUTH_LINE_LIMIT, BearerError, Mechanism, b64decode, b64encode
from mssante.wire.sasl._server import (
    BearerCredentials,
    PlainCredentials,
    check_error_ack,
    parse_oauthbearer,
    parse_plain,
    parse_xoauth2,
)
from mssante.wire.sasl._smtp import SMTPAuthLines, smtp_auth_lines

__all__ = [
    "SMTP_AUTH_LINE_LIMIT",
    "BearerCredentials",
    "BearerError",
    "ClientMechanism",
    "Mechanism",
    "OAuthBearerClient",
    "PlainClient",
    "PlainCredentials",
    "SMTPAuthLines",
    "XOAuth2Client",
    "b64decode",
    "b64encode",
    "check_error_ack",
    "parse_oauthbearer",
    "parse_plain",
    "parse_xoauth2",
    "smtp_auth_lines",
]
