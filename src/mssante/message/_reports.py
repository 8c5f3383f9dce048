"""Typed MDN (RFC 8098) and DSN (RFC 3464) reports, read from a received ``multipart/report``.

The machine-readable part of both reports is a list of "field blocks" (header-like
``Name: value`` lines, blocks separated by a blank line). They are read here with a small
tolerant reader instead of relying on how the stdlib happens to parse ``message/*`` parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

from mssante.message._dsn import xtext_decode

__all__ = ["DSNRecipient", "DSNReport", "Disposition", "MDNReport", "parse_disposition", "read_report"]

MDN_TYPES = frozenset({"message/disposition-notification", "message/global-disposition-notification"})
DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, kw_only=True)
class Disposition:
    """The ``Disposition`` field of an MDN (RFC 8098 §3.2.6).

    Attributes:
        action_mode: ``manual-action`` or ``automatic-action``.
        sending_mode: ``MDN-sent-manually`` or ``MDN-sent-automatically``.
        type: ``displayed``, ``deleted``, ``dispatched``, ``processed`` (or an older value).
        modifiers: e.g. ``("error",)``.
    """

    action_mode: str
    sending_mode: str
    type: str
    modifiers: tuple[str, ...] = ()

    def __str__(self) -> str:
        mods = "/" + ",".join(self.modifiers) if self.modifiers else ""
        return f"{self.action_mode}/{self.sending_mode}; {self.type}{mods}"


@dataclass(frozen=True, kw_only=True)
class MDNReport:
    """A message disposition notification (RFC 8098 §3), e.g. a read receipt (ECO.3.1.6).

    Attributes:
        original_message_id: the Message-ID of the message it is about.
        disposition: what happened to it; ``None`` when the required field is missing or unreadable.
        final_recipient: the address of the recipient that reports (required by RFC 8098 §3.1).
        original_recipient: the recipient as first given by the sender, when reported.
        reporting_ua: the reporting user agent.
        error: the ``Error`` field, if any (the ANS IG puts failure details here).
        human_text: the first, human-readable part.
        fields: every field of the machine-readable part, as read.
    """

    original_message_id: str | None
    disposition: Disposition | None
    final_recipient: str | None
    original_recipient: str | None = None
    reporting_ua: str | None = None
    error: str | None = None
    human_text: str | None = field(default=None, repr=False)
    fields: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True, kw_only=True)
class DSNRecipient:
    """One per-recipient block of a DSN (RFC 3464 §2.3).

    Attributes:
        final_recipient: the recipient address (the address part of ``Final-Recipient``).
        original_recipient: the ``ORCPT`` the sender gave, when reported.
        action: ``failed``, ``delayed``, ``delivered``, ``relayed`` or ``expanded``.
        status: the RFC 3463 status code, e.g. ``5.1.1``.
        diagnostic_code: the remote server's answer, e.g. ``smtp; 550 5.1.1 <x>: unknown``.
    """

    final_recipient: str | None
    action: str | None
    status: str | None
    original_recipient: str | None = None
    remote_mta: str | None = None
    diagnostic_code: str | None = None
    last_attempt_date: str | None = None
    will_retry_until: str | None = None

    @property
    def failed(self) -> bool:
        """The message will not reach this recipient."""
        return self.action == "failed" or (self.status or "").startswith("5.")


@dataclass(frozen=True, kw_only=True)
class DSNReport:
    """A delivery status notification (RFC 3464), e.g. a bounce or a delivery receipt (ECO.2.3.1).

    Attributes:
        reporting_mta: the MTA that wrote the report (``dns; mx.example.org``).
        original_envelope_id: the ``ENVID`` the sender gave (RFC 3461 §4.4), decoded.
        arrival_date: when the MTA received the message.
        recipients: one entry per recipient reported on.
        original_message_id: the Message-ID of the returned message or headers, when present.
        human_text: the first, human-readable part.
    """

    reporting_mta: str | None
    recipients: tuple[DSNRecipient, ...]
    original_envelope_id: str | None = None
    arrival_date: str | None = None
    original_message_id: str | None = None
    human_text: str | None = field(default=None, repr=False)


def field_blocks(text: str) -> list[list[tuple[str, str]]]:
    """Split ``Name: value`` lines into blank-line separated blocks, unfolding continuations."""
    blocks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
        elif line[0] in " \t" and current:
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}".strip())
        else:
            name, sep, value = line.partition(":")
            if sep and name.strip() and " " not in name.strip():
                current.append((name.strip().lower(), value.strip()))
    if current:
        blocks.append(current)
    return blocks


def _get(block: list[tuple[str, str]], name: str) -> str | None:
    for key, value in block:
        if key == name:
            return value
    return None


def _address(value: str | None) -> str | None:
    """``rfc822; a@b`` -> ``a@b`` (RFC 3464 §2.3.2 address-type ";" generic-address)."""
    if value is None:
        return None
    _, sep, address = value.partition(";")
    return (address if sep else value).strip() or None


def part_text(part: Message) -> str:
    """The text of a leaf or ``message/*`` part, as far as it can be recovered."""
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks = []
        for sub in payload:
            if isinstance(sub, Message):
                head = "".join(f"{k}: {v}\n" for k, v in sub.raw_items())
                body = sub.get_payload()
                chunks.append(head + ("\n" + body if isinstance(body, str) else "") + "\n")
        return "\n".join(chunks)
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def parse_disposition(value: str) -> Disposition | None:
    """Read an RFC 8098 §3.2.6 ``Disposition`` value; ``None`` when it is not one.

    Raises:
        MssanteError: none on purpose.
    """
    value = re.sub(r"\([^()]*\)", " ", value)  # drop comments
    modes, sep, rest = value.partition(";")
    if not sep:
        return None
    action, slash, sending = modes.strip().partition("/")
    kind, _, modifiers = rest.strip().partition("/")
    if not slash or not action.strip() or not kind.strip():
        return None
    return Disposition(
        action_mode=action.strip().lower(),
        sending_mode=sending.strip(),
        type=kind.strip().lower(),
        modifiers=tuple(m.strip().lower() for m in modifiers.split(",") if m.strip()),
    )


def _original_message_id(part: Message | None) -> str | None:
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        value = payload[0].get("Message-ID")
        match = _MSG_ID.search(str(value)) if value is not None else None
        return match.group(0) if match else None
    for block in field_blocks(part_text(part))[:1]:
        value = _get(block, "message-id")
        match = _MSG_ID.search(value) if value else None
        return match.group(0) if match else None
    return None


def read_report(msg: EmailMessage) -> MDNReport | DSNReport | None:
    """Read a ``multipart/report`` (RFC 6522) holding an MDN or a DSN; ``None`` otherwise.

    Raises:
        MssanteError: none on purpose (stdlib errors are mapped by :func:`parse_message`).
    """
    if msg.get_content_type() != "multipart/report":
        return None
    parts = [p for p in msg.iter_parts() if isinstance(p, Message)]
    machine = next((p for p in parts if p.get_content_type() in MDN_TYPES | DSN_TYPES), None)
    if machine is None:
        return None
    human = parts[0] if parts and parts[0] is not machine and parts[0].get_content_maintype() == "text" else None
    human_text = part_text(human) if human is not None else None
    after = parts[parts.index(machine) + 1 :]
    returned = after[0] if after else None
    blocks = field_blocks(part_text(machine))
    if machine.get_content_type() in MDN_TYPES:
        fields = [f for block in blocks for f in block]
        disposition = _get(fields, "disposition")
        original = _get(fields, "original-message-id")
        match = _MSG_ID.search(original) if original else None
        return MDNReport(
            original_message_id=match.group(0) if match else _original_message_id(returned),
            disposition=parse_disposition(disposition) if disposition else None,
            final_recipient=_address(_get(fields, "final-recipient")),
            original_recipient=_address(_get(fields, "original-recipient")),
            reporting_ua=_get(fields, "reporting-ua"),
            error=_get(fields, "error"),
            human_text=human_text,
            fields=tuple(fields),
        )
    per_message = blocks[0] if blocks else []
    recipients = []
    for block in blocks[1:]:
        status = _get(block, "status")
        match = _STATUS.search(status) if status else None
        orcpt = _address(_get(block, "original-recipient"))
        recipients.append(
            DSNRecipient(
                final_recipient=_address(_get(block, "final-recipient")),
                original_recipient=xtext_decode(orcpt) if orcpt else None,
                action=(_get(block, "action") or "").split("(")[0].strip().lower() or None,
                status=match.group(1) if match else status,
                remote_mta=_address(_get(block, "remote-mta")),
                diagnostic_code=_get(block, "diagnostic-code"),
                last_attempt_date=_get(block, "last-attempt-date"),
                will_retry_until=_get(block, "will-retry-until"),
            )
        )
    envid = _get(per_message, "original-envelope-id")
    return DSNReport(
        reporting_mta=_address(_get(per_message, "reporting-mta")),
        original_envelope_id=xtext_decode(envid) if envid else None,
        arrival_date=_get(per_message, "arrival-date"),
        recipients=tuple(recipients),
        original_message_id=_original_message_id(returned),
        human_text=human_text,
    )
