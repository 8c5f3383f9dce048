"""Delivery status notifications (RFC 3464) built by the sandbox submission fronts.

A DSN is a ``multipart/report; report-type=delivery-status`` message (RFC 3464 §2, RFC 6522)
with three parts: a human-readable explanation, the ``message/delivery-status`` fields, and
the returned original: its headers (``text/rfc822-headers``) or, for a failure report whose
sender asked ``RET=FULL`` (RFC 3461 §4.3), the whole message (``message/rfc822``).

It carries ``Auto-Submitted: auto-replied`` (RFC 3834 §5) so that no responder answers it,
and is sent with the null reverse-path (RFC 3461 §6.2, RFC 5321 §4.5.5).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, make_msgid
from typing import Literal

from mssante.errors import RemoteProtocolError, UsageError

__all__ = ["RecipientReport", "build_dsn", "decode_xtext", "original_headers"]

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]

# RFC 3461 §4: xtext = *( xchar / hexchar ), hexchar = "+" 2HEXDIG (uppercase).
_XTEXT = re.compile(r"^(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*$")


def decode_xtext(value: str) -> str:
    """Decode an RFC 3461 §4 xtext (``ENVID``, ``ORCPT``).

    Raises:
        RemoteProtocolError: ``value`` is not valid xtext.
    """
    if not _XTEXT.match(value):
        raise RemoteProtocolError("not valid xtext", requirement="RFC 3461 §4")
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


@dataclass(frozen=True, kw_only=True)
class RecipientReport:
    """The per-recipient fields of a DSN (RFC 3464 §2.3).

    Attributes:
        final_recipient: the address the front tried to deliver to.
        action: RFC 3464 §2.3.3 action.
        status: RFC 3463 status code such as ``2.0.0`` or ``5.1.1``.
        original_recipient: the decoded ``ORCPT`` (``rfc822;addr``), when the client gave one.
        diagnostic: the SMTP reply explaining a failure, e.g. ``550 5.1.1 user unknown``.
    """

    final_recipient: str
    action: Action
    status: str
    original_recipient: str | None = None
    diagnostic: str | None = None


def original_headers(message: bytes) -> bytes:
    """Return the header section of ``message`` (up to, without, the blank line).

    Raises:
        Nothing.
    """
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = message.find(sep)
        if end >= 0:
            return message[: end + len(sep) // 2]
    return message


def _crlf(text: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", text)


def build_dsn(
    *,
    reporting_mta: str,
    postmaster: str,
    recipient: str,
    reports: Sequence[RecipientReport],
    original: bytes,
    arrival: datetime,
    envid: str | None = None,
    ret: Literal["FULL", "HDRS"] | None = None,
) -> bytes:
    """Build one DSN to ``recipient`` (the original sender) about ``reports``.

    The original is returned in full only for a failure report with ``RET=FULL``; a report
    with no failure returns headers only (RFC 3461 §4.3). ``arrival`` must be timezone-aware.

    Raises:
        UsageError: no reports given.
    """
    if not reports:
        raise UsageError("a DSN needs at least one recipient report")
    failed = any(r.action == "failed" for r in reports)
    boundary = f"=_dsn_{secrets.token_hex(12)}"
    now = datetime.now().astimezone()
    subject = "Undelivered Mail Returned to Sender" if failed else "Successful Mail Delivery Report"
    head = [
        f"From: Mail Delivery System <{postmaster}>",
        f"To: <{recipient}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    lines = [
        f"This is the mail system at host {reporting_mta}.",
        "",
        "Your message could not be delivered to one or more recipients." if failed
        else "Your message was delivered to the following recipients.",
        "",
        *(f"<{r.final_recipient}>: {r.diagnostic or r.action}" for r in reports),
    ]
    status = [f"Reporting-MTA: dns; {reporting_mta}"]
    if envid is not None:
        status.append(f"Original-Envelope-Id: {envid}")
    status.append(f"Arrival-Date: {format_datetime(arrival)}")
    for r in reports:
        status.append("")
        if r.original_recipient:
            kind, _, addr = r.original_recipient.partition(";")
            status.append(f"Original-Recipient: {kind.strip()}; {addr.strip()}")
        status.append(f"Final-Recipient: rfc822; {r.final_recipient}")
        status.append(f"Action: {r.action}")
        status.append(f"Status: {r.status}")
        if r.diagnostic:
            status.append(f"Diagnostic-Code: smtp; {r.diagnostic}")
        status.append(f"Last-Attempt-Date: {format_datetime(now)}")
    if failed and ret == "FULL":
        returned_type, returned = "message/rfc822", _crlf(original)
    else:
        returned_type, returned = "text/rfc822-headers", _crlf(original_headers(original))
    if not returned.endswith(b"\r\n"):
        returned += b"\r\n"
    crlf = "\r\n"
    parts = [
        crlf.join(head).encode() + b"\r\n\r\n",
        b"This is a MIME-encapsulated message.\r\n\r\n",
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n".encode(),
        crlf.join(lines).encode() + b"\r\n\r\n",
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n".encode(),
        crlf.join(status).encode() + b"\r\n\r\n",
        f"--{boundary}\r\nContent-Type: {returned_type}\r\n\r\n".encode(),
        returned,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)
