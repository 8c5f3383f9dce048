"""RFC 4954 §4: whether a SASL initial response fits on the SMTP AUTH line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mssante.errors import LocalProtocolError
from mssante.wire.sasl._common import SMTP_AUTH_LINE_LIMIT, Mechanism, b64encode


@dataclass(frozen=True)
class SMTPAuthLines:
    """How to start ``AUTH``: the command line, and the response to send after the first ``334``.

    Both are base64 and may carry a credential, so neither is shown in the repr.

    Attributes:
        command: the AUTH line without CRLF, e.g. ``b"AUTH XOAUTH2 dXNlcj0..."`` or ``b"AUTH XOAUTH2"``.
        pending: the base64 initial response still to send, or None when it went on the AUTH line.
    """

    command: bytes = field(repr=False)
    pending: bytes | None = field(repr=False)

    @property
    def uses_initial_response(self) -> bool:
        """True when the initial response travels on the AUTH line (SASL-IR)."""
        return self.pending is None


def smtp_auth_lines(
    mechanism: Mechanism | str, initial_response: bytes | None, *, max_line: int = SMTP_AUTH_LINE_LIMIT
) -> SMTPAuthLines:
    """Decide whether the initial response fits on the ``AUTH`` line (RFC 4954 §4).

    ``AUTH <mech> <base64>`` plus CRLF must not exceed ``max_line`` octets; otherwise send
    ``AUTH <mech>`` and the response after the server's empty ``334`` challenge. An empty
    initial response is sent as ``=`` (RFC 4954 §4).

    Args:
        mechanism: the SASL mechanism name.
        initial_response: the *raw* initial response, or None for a mechanism without one.
        max_line: the line limit, CRLF included.

    Raises:
        LocalProtocolError: the mechanism name is not a valid SASL name (RFC 4422 §3.1), or
            ``max_line`` cannot even hold ``AUTH <mech>``.
    """
    name = str(mechanism).encode("ascii", "replace")
    if re.fullmatch(rb"[A-Z0-9\-_]{1,20}", name) is None:
        raise LocalProtocolError("invalid SASL mechanism name", requirement="RFC 4422 §3.1")
    bare = b"AUTH " + name
    if len(bare) + 2 > max_line:
        raise LocalProtocolError("max_line is too small for the AUTH command")
    if initial_response is None:
        return SMTPAuthLines(bare, None)
    encoded = b64encode(initial_response) or b"="
    full = bare + b" " + encoded
    if len(full) + 2 <= max_line:
        return SMTPAuthLines(full, None)
    return SMTPAuthLines(bare, b64encode(initial_response))
