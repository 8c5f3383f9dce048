"""SASL pieces of the sandbox IMAP fronts: AUTHENTICATE with SASL-IR, and the three mechanisms.

The sandbox checks tokens asynchronously, so the fronts parse the SASL messages here and decide
with :class:`~mssante.sandbox.fronts.authz.AccessDecider`:

* ``XOAUTH2`` (Google's format, reused by ECO.1.2.1): ``user=<BAL>^Aauth=Bearer <token>^A^A``;
* ``OAUTHBEARER`` (RFC 7628 §3.1): GS2 header ``n,a=<BAL>,`` then ``^Aauth=Bearer <token>^A^A``;
* ``PLAIN`` (RFC 4616): ``authzid NUL authcid NUL password`` (the password is ignored).

On a refused bearer attempt the server sends the RFC 7628 §3.2.2 JSON error as a continuation,
as Dovecot does (:data:`JSON_ERROR_401`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mssante.errors import RemoteProtocolError
from mssante.sandbox.imapd import BadCommand, Reader
from mssante.secret import Secret
from mssante.wire import sasl

__all__ = [
    "BearerResponse",
    "PlainResponse",
    "SaslMalformed",
    "decode_response",
    "json_error",
    "parse_authenticate",
    "parse_oauthbearer",
    "parse_plain",
    "parse_xoauth2",
]

# RFC 3501 §9 "AUTHENTICATE" SP auth-type [SP (base64 / "=")] (RFC 4959 §4); auth-type is an atom.
_AUTH_ARGS: Final = re.compile(rb" ([A-Za-z0-9_-]{1,40})(?: ([A-Za-z0-9+/]*={0,2}))?")
_BASE64: Final = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")


class SaslMalformed(RemoteProtocolError):
    """The client's SASL message does not follow the mechanism's syntax (answered with ``BAD``)."""

    error = "sasl_malformed"


def parse_authenticate(reader: Reader) -> tuple[bytes, bytes | None]:
    """Parse ``SP auth-type [SP (base64 / "=")]`` after ``AUTHENTICATE`` (RFC 3501 §6.2.2, RFC 4959 §4).

    Returns the upper-cased mechanism and the initial response: None without one, ``b""`` for
    ``=`` (an empty one), else the still base64-encoded response.

    Raises:
        BadCommand: any other shape (the command gets ``BAD``).
    """
    match = _AUTH_ARGS.fullmatch(reader.data[reader.pos:].rstrip(b"\r\n"))
    if match is None:
        raise BadCommand("AUTHENTICATE expects a mechanism and an optional initial response (RFC 4959 §4)")
    reader.pos = len(reader.data)
    mech = match.group(1).upper()
    initial = match.group(2)
    if initial == b"=":
        return mech, b""
    if initial is not None and initial == b"":
        raise BadCommand("empty initial response: send '=' (RFC 4959 §4)")
    return mech, initial


def decode_response(line: bytes) -> bytes:
    """Decode one base64 SASL client response (RFC 3501 §6.2.2).

    Raises:
        SaslMalformed: not base64.
    """
    data = line.rstrip(b"\r\n")
    if not _BASE64.match(data):
        raise SaslMalformed("SASL response is not base64", requirement="RFC 3501 §6.2.2")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        raise SaslMalformed("SASL response is not base64", requirement="RFC 3501 §6.2.2") from None


@dataclass(frozen=True)
class BearerResponse:
    """A parsed XOAUTH2 / OAUTHBEARER client response; the token stays wrapped."""

    user: str
    token: Secret


@dataclass(frozen=True)
class PlainResponse:
    """A parsed PLAIN client response (the password is dropped: the certificate authenticates)."""

    authzid: str
    authcid: str
    had_password: bool


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslMalformed(f"{where}: not UTF-8") from None


def _bearer_response(parse: Callable[[bytes], sasl.BearerCredentials], data: bytes, where: str) -> BearerResponse:
    # One parser for both roles and both protocols: mssante.wire.sasl (RFC 7628 §3.1, XOAUTH2).
    try:
        creds = parse(data)
    except RemoteProtocolError as exc:
        raise SaslMalformed(exc.message, requirement=exc.requirement) from None
    if not creds.user:
        # A token may open several BALs: the BAL must be named (user= / gs2 a=).
        raise SaslMalformed(f"{where}: the client response must name the BAL")
    return BearerResponse(creds.user, creds.token)


def parse_xoauth2(data: bytes) -> BearerResponse:
    """Parse ``user=<u>^Aauth=Bearer <t>^A^A``.

    Raises:
        SaslMalformed: any other shape.
    """
    return _bearer_response(sasl.parse_xoauth2, data, "XOAUTH2")


def parse_oauthbearer(data: bytes) -> BearerResponse:
    """Parse an RFC 7628 §3.1 client response: ``n,a=<u>,^Ahost=..^Aport=..^Aauth=Bearer <t>^A^A``.

    The authzid (``a=``) names the BAL; it is required here since a token may open several BALs.

    Raises:
        SaslMalformed: bad GS2 header, channel binding requested, no ``a=`` or no bearer token.
    """
    return _bearer_response(sasl.parse_oauthbearer, data, "OAUTHBEARER")


def parse_plain(data: bytes) -> PlainResponse:
    """Parse ``authzid NUL authcid NUL passwd`` (RFC 4616 §2).

    Raises:
        SaslMalformed: not three NUL-separated fields, or an empty authcid.
    """
    parts = data.split(b"\x00")
    if len(parts) != 3 or not parts[1]:
        raise SaslMalformed("PLAIN: expected authzid NUL authcid NUL passwd (RFC 4616 §2)")
    return PlainResponse(_utf8(parts[0], "PLAIN"), _utf8(parts[1], "PLAIN"), bool(parts[2]))


def json_error(status: str = "401", scope: str = "mail") -> bytes:
    """The RFC 7628 §3.2.2 error JSON a server sends (base64-encoded) before ``NO``.

    ``{"status":"401","schemes":"bearer","scope":"mail"}`` byte for byte as Dovecot sends it.
    """
    return sasl.BearerError(status=status, schemes="bearer", scope=scope).to_bytes()
