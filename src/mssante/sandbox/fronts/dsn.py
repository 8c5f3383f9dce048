"""Delivery status notifications (RFC 3464) built by the sandbox submission fronts.

A DSN is a ``multipart/report; report-type=delivery-status`` message (RFC 3464 §2, RFC 6522)
with three parts: a human-readable explanation, the ``message/delivery-status`` fields, and
the returned original: its headers (``text/rfc822-headers``) or, for a failure report whose
sender asked ``RET=FULL`` (RFC 3461 §4.3), the whole message (``message/rfc822``).

It carries ``Auto-Submitted: auto-replied`` (RFC 3834 §5) so that no responder answers it,
and is sent with the null reverse-path (RFC 3461 §6.2, RFC 5321 §4.5.5).

The parts people read (subject, sender name, the explanation per recipient) come from the
message catalogue (:mod:`mssante._i18n`): French by default, as a French operator writes them,
English when the front is configured so (``SubmissionOptions.report_lang``). The subject and
name are RFC 2047 encoded words, the text ``text/plain; charset=utf-8`` in quoted-printable
(RFC 2045 §6.7), so the DSN stays 7-bit. The ``message/delivery-status`` part is for programs
and never changes with the language (RFC 3464 §2).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import quoprimime
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid
from typing import Literal

from mssante._i18n import N_, Lang, Translator, translator
from mssante.errors import RemoteProtocolError, UsageError

__all__ = ["RecipientReport", "build_dsn", "decode_xtext", "original_headers"]

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]

#: What each recipient's status means for the person reading the report (RFC 3463 codes).
_EXPLAINED = {
    "5.1.1": N_("unknown address: no BAL has this name in this domain"),
    "5.4.4": N_("cannot be routed: the sandbox reaches no other operator"),
    "5.3.0": N_("the mailbox store failed; try again later"),
}
_ACTIONS = {
    "delivered": N_("delivered to the recipient's mailbox"),
    "failed": N_("not delivered"),
    "delayed": N_("delayed; delivery will be tried again"),
    "relayed": N_("relayed to a system that sends no report"),
    "expanded": N_("delivered to a list, which sends it on"),
}

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
    """Return the header section of ``message`` (up to, without, the blank line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = message.find(sep)
        if end >= 0:
            return message[: end + len(sep) // 2]
    return message


def _crlf(text: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", text)


def _encoded(text: str) -> str:
    """``text`` as a header value: as it is in ASCII, else RFC 2047 encoded words."""
    return text if text.isascii() else Header(text, "utf-8").encode()


def _explanation(t: Translator, report: RecipientReport) -> str:
    """One recipient's line: what happened, in words, then the server's reply when there is one."""
    meaning = _EXPLAINED.get(report.status) or _ACTIONS.get(report.action) or report.action
    line = t.gettext("<{address}>: {meaning}").format(address=report.final_recipient, meaning=t.gettext(meaning))
    if report.diagnostic:
        line += "\n" + t.gettext("    server reply: {reply}").format(reply=report.diagnostic)
    return line


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
    lang: Lang = "fr",
) -> bytes:
    """Build one DSN to ``recipient`` (the original sender) about ``reports``.

    The original is returned in full only for a failure report with ``RET=FULL``; a report
    with no failure returns headers only (RFC 3461 §4.3). ``arrival`` must be timezone-aware.
    ``lang`` is the language of the subject and the human-readable part (French by default).

    Raises:
        UsageError: no reports given.
    """
    if not reports:
        raise UsageError("a DSN needs at least one recipient report")
    failed = any(r.action == "failed" for r in reports)
    boundary = f"=_dsn_{secrets.token_hex(12)}"
    now = datetime.now().astimezone()
    t = translator(lang)
    if failed:
        subject = t.gettext("Undelivered Mail Returned to Sender")
    else:
        subject = t.gettext("Successful Mail Delivery Report")
    sender = formataddr((t.gettext("Mail Delivery System"), postmaster), charset="utf-8")
    head = [
        f"From: {sender}",
        f"To: <{recipient}>",
        f"Subject: {_encoded(subject)}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    lines = [
        t.gettext("This is the mail system at host {host}.").format(host=reporting_mta),
        "",
        t.gettext("Your message could not be delivered to one or more recipients.") if failed
        else t.gettext("Your message was delivered to the following recipients."),
        "",
        *(_explanation(t, r) for r in reports),
    ]
    human = quoprimime.body_encode(_crlf("\n".join(lines).encode()).decode("latin-1"), eol="\r\n")
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
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode(),
        human.encode("ascii") + b"\r\n\r\n",
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n".encode(),
        crlf.join(status).encode() + b"\r\n\r\n",
        f"--{boundary}\r\nContent-Type: {returned_type}\r\n\r\n".encode(),
        returned,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)
