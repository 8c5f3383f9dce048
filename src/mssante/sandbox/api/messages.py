"""Read the sandbox's mailboxes for the API and the webmail: summaries, parsed messages, raw bytes.

Both faces see the store through :class:`Mailboxes`, which adds what the store does not do:
parsing (:func:`mssante.message.parse_message`), rule checks (:func:`check_parsed`, which
carries the XDM validator's findings) and a small cache keyed by the message bytes, so a
list refreshed every second does not re-read every IHE_XDM.ZIP.

The JSON shapes built here are the API contract (see :mod:`.openapi`): extend them, never
rename a key.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from mssante.errors import ContentError, LimitError, UsageError
from mssante.message import (
    CheckReport,
    DSNReport,
    MDNReport,
    ParsedMessage,
    ReadSettings,
    check_parsed,
    parse_message,
)

if TYPE_CHECKING:
    from mssante.sandbox.services import SandboxServices

__all__ = ["FOLDERS", "MailboxStore", "Mailboxes", "NotFound", "ReadMessage", "StoreUnavailable"]

#: The folders every BAL has (RFC 6154 special uses), in display order.
FOLDERS: Final = ("INBOX", "Sent", "Drafts", "Trash")
_CACHE_SIZE: Final = 512


class NotFound(UsageError):
    """A BAL, folder, message or attachment that does not exist (HTTP 404)."""

    error = "not_found"


class StoreUnavailable(UsageError):
    """The sandbox runs without a mailbox store (HTTP 503)."""

    error = "store_unavailable"


class StoredSummary(Protocol):
    """What the store says about one message (``MailStore.StoredMessage``)."""

    @property
    def uid(self) -> int: ...
    @property
    def flags(self) -> tuple[str, ...]: ...
    @property
    def internal_date(self) -> datetime: ...
    @property
    def size(self) -> int: ...


class MailboxStore(Protocol):
    """The part of :class:`~mssante.sandbox.fronts.store.MailStore` the API and the webmail use."""

    def has_mailbox(self, address: str) -> bool:
        """True when ``address`` is a BAL."""
        ...

    async def deliver(self, address: str, message: bytes, *, folder: str = "INBOX") -> None:
        """Append ``message`` to ``folder``.

        Raises:
            UsageError: unknown BAL, folder or UID.
        """
        ...

    async def list_messages(self, address: str, folder: str = "INBOX") -> Sequence[StoredSummary]:
        """Summaries by ascending UID.

        Raises:
            UsageError: unknown BAL, folder or UID.
        """
        ...

    async def get_message(self, address: str, folder: str, uid: int) -> bytes:
        """The raw message.

        Raises:
            UsageError: unknown BAL, folder or UID.
        """
        ...

    async def reset(self, address: str) -> None:
        """Empty the BAL.

        Raises:
            UsageError: unknown BAL, folder or UID.
        """
        ...


@dataclass(frozen=True, kw_only=True)
class ReadMessage:
    """A stored message with what was read from it."""

    bal: str
    folder: str
    uid: int
    flags: tuple[str, ...]
    internal_date: datetime | None
    raw: bytes
    parsed: ParsedMessage | None
    check: CheckReport | None
    error: str | None = None


class Mailboxes:
    """The sandbox's BALs seen through its store, with parsing and a bytes-keyed cache."""

    def __init__(self, sandbox: SandboxServices) -> None:
        """Read ``sandbox``'s store (looked up on each call: the runner may attach it late)."""
        self._sandbox = sandbox
        self._cache: OrderedDict[bytes, tuple[ParsedMessage | None, CheckReport | None, str | None]] = OrderedDict()

    @property
    def store(self) -> MailboxStore:
        """The sandbox's mailbox store.

        Raises:
            StoreUnavailable: the sandbox has no store yet (its fronts are not started).
        """
        try:
            store: MailboxStore | None = getattr(self._sandbox, "store", None)
        except RuntimeError:  # Sandbox.store before the fronts start
            store = None
        if store is None:
            raise StoreUnavailable("the sandbox runs without a mailbox store")
        return store

    @property
    def available(self) -> bool:
        """Whether a store is attached."""
        try:
            return getattr(self._sandbox, "store", None) is not None
        except RuntimeError:
            return False

    def bal(self, address: str) -> str:
        """The configured spelling of BAL ``address`` (case-insensitive lookup).

        Raises:
            NotFound: no such BAL in the sandbox configuration.
        """
        bal = self._sandbox.config.bal(address)
        if bal is None:
            raise NotFound(f"{address} is not a BAL of this sandbox")
        return bal.address

    @staticmethod
    def folder(name: str | None) -> str:
        """Check a folder name (one of :data:`FOLDERS`, case-insensitive for INBOX).

        Raises:
            NotFound: not a folder of the sandbox's BALs.
        """
        value = name or "INBOX"
        if value.upper() == "INBOX":
            return "INBOX"
        if value not in FOLDERS:
            raise NotFound(f"no folder {value!r}; folders are {', '.join(FOLDERS)}")
        return value

    def read_settings(self) -> ReadSettings:
        """Parsing settings: the sandbox's domain counts as an MSSanté professional domain."""
        return ReadSettings(professional_domain_suffix=self._sandbox.config.domain)

    def analyse(self, raw: bytes) -> tuple[ParsedMessage | None, CheckReport | None, str | None]:
        """Parse and check ``raw`` (cached by content); the third value says why parsing failed.

        Raises:
            Nothing: an unreadable message gives ``(None, None, reason)``.
        """
        key = hashlib.sha256(raw).digest()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        settings = self.read_settings()
        try:
            parsed = parse_message(raw, settings=settings)
            result: tuple[ParsedMessage | None, CheckReport | None, str | None] = (
                parsed, check_parsed(parsed, settings=settings), None)
        except (ContentError, LimitError, UsageError) as exc:
            result = (None, None, exc.message)
        self._cache[key] = result
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    async def list(self, address: str, folder: str | None = None) -> list[ReadMessage]:
        """Every message of a folder, read, by ascending UID.

        Raises:
            NotFound: unknown BAL or folder.
            StoreUnavailable: no store.
        """
        bal, name = self.bal(address), self.folder(folder)
        out = []
        for item in await self.store.list_messages(bal, name):
            try:
                raw = await self.store.get_message(bal, name, item.uid)
            except UsageError:
                continue  # expunged meanwhile
            parsed, check, error = self.analyse(raw)
            out.append(ReadMessage(bal=bal, folder=name, uid=item.uid, flags=tuple(item.flags),
                                   internal_date=item.internal_date, raw=raw, parsed=parsed, check=check, error=error))
        return out

    async def get(self, address: str, folder: str | None, uid: int) -> ReadMessage:
        """One message, read.

        Raises:
            NotFound: unknown BAL, folder or UID.
            StoreUnavailable: no store.
        """
        bal, name = self.bal(address), self.folder(folder)
        summary = next((m for m in await self.store.list_messages(bal, name) if m.uid == uid), None)
        if summary is None:
            raise NotFound(f"no message with UID {uid} in {name} of {bal}")
        try:
            raw = await self.store.get_message(bal, name, uid)
        except UsageError as exc:
            raise NotFound(exc.message) from exc
        parsed, check, error = self.analyse(raw)
        return ReadMessage(bal=bal, folder=name, uid=uid, flags=tuple(summary.flags),
                           internal_date=summary.internal_date, raw=raw, parsed=parsed, check=check, error=error)


# ---------------------------------------------------------------------------------- JSON shapes


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _report(report: MDNReport | DSNReport | None) -> dict[str, Any] | None:
    if isinstance(report, MDNReport):
        disposition = report.disposition
        return {
            "type": "mdn",
            "original_message_id": report.original_message_id,
            "final_recipient": report.final_recipient,
            "original_recipient": report.original_recipient,
            "reporting_ua": report.reporting_ua,
            "disposition": None if disposition is None else {
                "action_mode": disposition.action_mode, "sending_mode": disposition.sending_mode,
                "type": disposition.type, "modifiers": list(disposition.modifiers),
            },
            "error": report.error,
        }
    if isinstance(report, DSNReport):
        return {
            "type": "dsn",
            "reporting_mta": report.reporting_mta,
            "original_envelope_id": report.original_envelope_id,
            "arrival_date": report.arrival_date,
            "original_message_id": report.original_message_id,
            "recipients": [
                {"final_recipient": r.final_recipient, "original_recipient": r.original_recipient,
                 "action": r.action, "status": r.status, "diagnostic_code": r.diagnostic_code,
                 "remote_mta": r.remote_mta}
                for r in report.recipients
            ],
        }
    return None


def _xdm(parsed: ParsedMessage) -> dict[str, Any] | None:
    archive = parsed.archive
    if archive is None:
        return None
    patient = archive.patient
    return {
        "has_qualified_ins": archive.has_qualified_ins,
        "patient": None if patient is None else {
            "family_name": patient.family_name, "given_name": patient.given_name,
            "birth_date": patient.birth_date.isoformat() if patient.birth_date else None, "ins": patient.ins,
        },
        "documents": [
            {"path": d.path, "cda_code": d.cda_code, "display_name": d.display_name, "title": d.title,
             "act_date": d.act_date.isoformat() if d.act_date else None}
            for d in archive.documents
        ],
        "findings": [{"severity": f.severity, "rule": f.rule, "message": f.message} for f in archive.findings],
    }


def _findings(check: CheckReport | None) -> list[dict[str, str]]:
    if check is None:
        return []
    return [{"severity": f.severity, "rule": f.rule, "message": f.message} for f in check.findings]


def summary_json(msg: ReadMessage) -> dict[str, Any]:
    """The list entry of a message: envelope, X-MSS headers, attachments, XDM and check findings."""
    p = msg.parsed
    out: dict[str, Any] = {
        "uid": msg.uid, "folder": msg.folder, "bal": msg.bal, "flags": list(msg.flags),
        "internal_date": _iso(msg.internal_date), "size": len(msg.raw), "readable": p is not None,
        "error": msg.error,
    }
    if p is None:
        return out
    xdm = _xdm(p)
    out.update({
        "message_id": p.message_id, "subject": p.subject, "date": _iso(p.date),
        "from": {"address": p.sender, "label": p.sender_label, "kind": p.sender_kind},
        "to": list(p.to), "cc": list(p.cc),
        "mss": {"nil": p.mss.nil, "codecda": list(p.mss.codecda) if p.mss.codecda is not None else None,
                "ins": p.mss.ins, "mes": p.mss.mes},
        "attachments": [{"index": i, "filename": a.filename, "content_type": a.content_type, "kind": a.kind,
                         "size": a.size} for i, a in enumerate(p.attachments)],
        "mdn_requested": p.mdn_requested,
        "report": None if p.report is None else ("mdn" if isinstance(p.report, MDNReport) else "dsn"),
        "xdm": None if xdm is None else {"documents": len(xdm["documents"]), "findings": xdm["findings"]},
        "xdm_error": p.archive_error,
        "check": {"ok": msg.check.ok if msg.check else None, "findings": _findings(msg.check)},
    })
    return out


def message_json(msg: ReadMessage) -> dict[str, Any]:
    """The full message: the summary plus every header, the bodies, the report and the XDM details."""
    out = summary_json(msg)
    p = msg.parsed
    if p is None:
        return out
    out.update({
        "headers": [[name, value] for name, value in _all_headers(p)],
        "in_reply_to": p.in_reply_to, "references": list(p.references), "reply_to": list(p.reply_to),
        "mdn_to": list(p.mdn_to), "end_of_exchange": p.end_of_exchange,
        "text": p.text, "html": p.html,
        "report": _report(p.report),
        "xdm": _xdm(p),
    })
    return out


def _all_headers(p: ParsedMessage) -> list[tuple[str, str]]:
    """Every top-level header field in order, unfolded, values as written (RFC 2047 words kept)."""
    return [(name, str(value).replace("\r", "").replace("\n", "")) for name, value in p.email.raw_items()]
