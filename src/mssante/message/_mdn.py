"""Generate a message disposition notification (RFC 8098) for a received message (ECO.3.1.6)."""

from __future__ import annotations

import email.policy
import unicodedata
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

from mssante._i18n import N_, Lang, translator
from mssante._version import __version__
from mssante.errors import UsageError
from mssante.message._compose import ComposedMessage, ComposeSettings, new_message_id
from mssante.message._parse import ParsedMessage
from mssante.message._text import check_address, check_header_value

__all__ = ["DispositionType", "generate_mdn"]

#: RFC 8098 §3.2.6.2 disposition types.
DispositionType = Literal["displayed", "deleted", "dispatched", "processed"]
ActionMode = Literal["manual-action", "automatic-action"]
SendingMode = Literal["MDN-sent-manually", "MDN-sent-automatically"]

#: The human part (RFC 8098 §3: a text for people) and the subject prefix of each disposition.
_HUMAN = {
    "displayed": N_("The message was displayed on the recipient's computer."),
    "deleted": N_("The message was deleted without being displayed."),
    "dispatched": N_("The message was forwarded without being displayed."),
    "processed": N_("The message was processed without being displayed."),
}
_SUBJECT = {
    "displayed": N_("Read receipt"),
    "deleted": N_("Deletion notice"),
    "dispatched": N_("Forwarding notice"),
    "processed": N_("Processing notice"),
}


def generate_mdn(
    original: ParsedMessage,
    *,
    reporter: str,
    settings: ComposeSettings,
    disposition: DispositionType = "displayed",
    action_mode: ActionMode = "manual-action",
    sending_mode: SendingMode = "MDN-sent-manually",
    error: str | None = None,
    reporter_label: str | None = None,
    reporting_ua: str | None = None,
    include_original: Literal["full", "headers", "none"] = "headers",
    text: str | None = None,
    now: datetime | None = None,
    lang: Lang = "fr",
) -> ComposedMessage:
    """Build the RFC 8098 MDN that answers ``original`` (ECO.3.1.6).

    The MDN goes to the ``Disposition-Notification-To`` addresses, is threaded on the
    original (``In-Reply-To``/``References``, ECO.2.2.2), carries ``X-MSS-NIL`` like every
    message sent (ECO.2.4.3) but no X-MSS-CODECDA/INS (it carries no XDM archive), and is
    sent with a null reverse path (RFC 8098 §3: ``envelope_from`` is ``""``).

    ``include_original`` adds the original message (``full``, as in the ANS IG example) or
    its header (``headers``, the default: no health data goes back) as third part.
    ``error`` adds the RFC 8098 ``Error`` field (with the ``error`` disposition modifier).
    ``lang`` is the language of the subject and of the human-readable part (French by default).

    Raises:
        UsageError: the original asked for no MDN, is itself an MDN or DSN (RFC 8098 §2.1:
            never answer a report), has no Message-ID, or ``reporter`` is not an address.
        ContentError: a caller value holds a control character (header injection).
    """
    if original.report is not None:
        raise UsageError("never send an MDN for a report (MDN or DSN)", requirement="RFC 8098 §2.1")
    if not original.mdn_to:
        raise UsageError("the message does not ask for an MDN", requirement="RFC 8098 §2.1")
    if original.message_id is None:
        raise UsageError("the message has no Message-ID to acknowledge", requirement="RFC 8098 §3.2.5")
    check_address(reporter, what="reporter address")
    if disposition not in _HUMAN:
        raise UsageError(f"unknown disposition type {disposition!r}", requirement="RFC 8098 §3.2.6.2")
    if action_mode not in ("manual-action", "automatic-action") or sending_mode not in (
        "MDN-sent-manually",
        "MDN-sent-automatically",
    ):
        raise UsageError("invalid action or sending mode", requirement="RFC 8098 §3.2.6.1")
    when = now or datetime.now(UTC)
    if when.tzinfo is None:
        raise UsageError("now must be timezone-aware")
    domain = reporter.rpartition("@")[2]
    ua = check_header_value(reporting_ua or f"{domain}; mssante {__version__}", what="Reporting-UA")

    msg = EmailMessage(policy=email.policy.SMTP)
    local = reporter.rpartition("@")[0]
    label = check_header_value(reporter_label, what="reporter label") if reporter_label else ""
    msg["From"] = Address(display_name=label, username=local, domain=domain)
    msg["To"] = ", ".join(original.mdn_to)
    # The quoted subject comes from the received (untrusted) message: neutralise line breaks
    # and controls an encoded word may have smuggled in (RFC 2047 §5) rather than fail.
    subject = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") else c for c in original.subject or "")
    t = translator(lang)
    msg["Subject"] = t.gettext("{notice}: {subject}").format(notice=t.gettext(_SUBJECT[disposition]), subject=subject)
    msg["Date"] = format_datetime(when)
    message_id = new_message_id(domain, now=when)
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = original.message_id
    msg["References"] = " ".join([*(r for r in original.references if r != original.message_id), original.message_id])
    msg["X-MSS-NIL"] = settings.product_reference  # ECO.2.4.3
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = "multipart/report"
    msg.set_param("report-type", "disposition-notification")  # RFC 8098 §3, RFC 6522

    human = EmailMessage(policy=email.policy.SMTP)
    body = text if text is not None else t.gettext("{explanation}\n\nMessage: {subject}\n").format(
        explanation=t.gettext(_HUMAN[disposition]), subject=subject)
    human.set_content(body, charset="utf-8", cte="quoted-printable")
    del human["MIME-Version"]

    fields = [f"Reporting-UA: {ua}"]
    original_recipient = original.email.get("Original-Recipient")
    if original_recipient is not None:  # RFC 8098 §3.2.3: only when the MTA gave one
        value = check_header_value(str(original_recipient).strip(), what="Original-Recipient")
        fields.append(f"Original-Recipient: {value}")
    fields.append(f"Final-Recipient: rfc822;{reporter}")  # RFC 8098 §3.2.4
    fields.append(f"Original-Message-ID: {original.message_id}")  # RFC 8098 §3.2.5
    modifier = "/error" if error else ""
    fields.append(f"Disposition: {action_mode}/{sending_mode}; {disposition}{modifier}")  # RFC 8098 §3.2.6
    if error:
        fields.append(f"Error: {check_header_value(error, what='error')}")  # RFC 8098 §3.2.7
    machine = EmailMessage(policy=email.policy.SMTP)
    machine["Content-Type"] = "message/disposition-notification"
    machine.set_payload("\r\n".join(fields) + "\r\n")

    msg.attach(human)
    msg.attach(machine)
    if include_original == "full":
        returned = EmailMessage(policy=email.policy.SMTP)
        returned["Content-Type"] = "message/rfc822"
        returned.attach(original.email)
        msg.attach(returned)
    elif include_original == "headers":
        returned = EmailMessage(policy=email.policy.SMTP)
        returned["Content-Type"] = "text/rfc822-headers"
        returned.set_payload("".join(f"{k}: {v}\r\n" for k, v in original.email.raw_items()))
        msg.attach(returned)
    return ComposedMessage(
        message=msg, message_id=message_id, envelope_from="", recipients=tuple(original.mdn_to), dsn=None
    )
