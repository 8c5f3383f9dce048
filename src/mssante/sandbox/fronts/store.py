"""The sandbox mailbox store: every BAL's folders, kept by the sandbox's IMAP engine.

Both IMAP fronts open sessions on the same :class:`MailStore`, and the SMTP front delivers into
it through :class:`~mssante.sandbox.fronts.delivery.MailDelivery`; a delivery appends to the
INBOX, which wakes the IDLE sessions of that BAL (``* n EXISTS``, RFC 2177).

Every configured BAL gets the four folders an LPS expects (RFC 6154 §2 special uses):
``INBOX``, ``Sent`` (``\\Sent``), ``Drafts`` (``\\Drafts``) and ``Trash`` (``\\Trash``), all
subscribed. There are no IMAP passwords: the fronts decide access with
:class:`~mssante.sandbox.fronts.authz.AccessDecider` and then open a session here by BAL
address (:meth:`MailStore.open_session`), so no password can ever open a mailbox.

Given a ``path`` (the runner passes ``<state>/mail.sqlite3``), mailboxes, messages, flags, UIDs and
UIDVALIDITY survive a restart; without one the store lives in memory.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from mssante.errors import UsageError
from mssante.sandbox.config import SandboxConfig
from mssante.sandbox.imapd import Mailbox, Session, Store

__all__ = ["DEFAULT_MAX_MESSAGE", "MAIL_DB", "SPECIAL_USE", "MailStore", "StoredMessage", "remove_mail_state"]

#: Largest message (and IMAP literal) accepted by default: above the 25 MB SMTP size.
DEFAULT_MAX_MESSAGE: Final = 50 * 1024 * 1024

#: Folder name → RFC 6154 §2 special-use attribute (without the backslash).
SPECIAL_USE: Final[Mapping[str, str]] = {"Sent": "Sent", "Drafts": "Drafts", "Trash": "Trash"}

#: The mailbox database's file name in the sandbox state directory.
MAIL_DB: Final = "mail.sqlite3"

_FOLDERS: Final = ("INBOX", *SPECIAL_USE)
_HEADERS: Final = ("From", "To", "Cc", "Subject", "Date", "Message-ID")


@dataclass(frozen=True, kw_only=True)
class StoredMessage:
    """A summary of one stored message for the sandbox API (no body).

    Attributes:
        uid: the IMAP UID in its folder.
        flags: the permanent flags, e.g. ``("\\\\Seen",)``.
        internal_date: the IMAP INTERNALDATE (aware).
        size: the RFC 822 size in octets.
        headers: a few top-level headers (From, To, Cc, Subject, Date, Message-ID) when present.
    """

    uid: int
    flags: tuple[str, ...]
    internal_date: datetime
    size: int
    headers: Mapping[str, str]


def remove_mail_state(state_dir: Path) -> bool:
    """Delete the mailbox database of ``state_dir`` (``sandbox up --reset``); True if there was one.

    The PKI, the mock PSC's keys and the ports are kept, so an LPS configuration stays valid.

    Raises:
        UsageError: a file exists but cannot be removed.
    """
    found = False
    for suffix in ("", "-wal", "-shm"):
        path = state_dir / (MAIL_DB + suffix)
        try:
            path.unlink()
            found = True
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot remove {path}: {exc.strerror}") from exc
    return found


class MailStore:
    """The mailboxes of every configured BAL; implements ``MailDelivery``."""

    def __init__(self, config: SandboxConfig, *, max_message: int = DEFAULT_MAX_MESSAGE,
                 path: Path | None = None) -> None:
        """Prepare the store for ``config``'s BALs (persisted at ``path`` if given); call :meth:`start` before use.

        Raises:
            UsageError: ``max_message`` is not positive, or the database at ``path`` cannot be opened.
        """
        if max_message <= 0:
            raise UsageError("max_message must be > 0")
        self._config = config
        self.max_message = max_message
        self.engine = Store(path)
        self._started = False

    async def start(self) -> None:
        """Create the missing folders of every configured BAL (idempotent); never raises."""
        if self._started:
            return
        for bal in self._config.bals:
            self._ensure_folders(bal.address)
        self._started = True

    def close(self) -> None:
        """Close the database (never raises)."""
        self.engine.close()

    def _ensure_folders(self, address: str) -> None:
        account = self.engine.account(address)
        for name in _FOLDERS:
            if account.get(name) is None:
                self.engine.create(account, name, subscribed=True)

    def has_mailbox(self, address: str) -> bool:
        """True when ``address`` is a BAL of this operator (case-insensitive); never raises."""
        return self._config.bal(address) is not None

    def _folder(self, address: str, folder: str) -> Mailbox:
        if self._config.bal(address) is None:
            raise UsageError(f"{address} is not a BAL of this sandbox")
        self._ensure_folders(address)
        box = self.engine.account(address).get(folder)
        if box is None:
            raise UsageError(f"BAL {address} has no folder {folder!r}")
        return box

    async def open_session(self, address: str, *, special_use: Mapping[str, str] = SPECIAL_USE,
                           capability: Callable[[], bytes] = lambda: b"IMAP4rev1",
                           max_append: int | None = None) -> Session:
        """Return an IMAP session on BAL ``address`` (called by a front after access is granted).

        Raises:
            UsageError: ``address`` is not a BAL of this sandbox.
        """
        if self._config.bal(address) is None:
            raise UsageError(f"{address} is not a BAL of this sandbox")
        self._ensure_folders(address)
        return Session(self.engine, self.engine.account(address), special_use=dict(special_use),
                       capability=capability, max_append=max_append or self.max_message)

    async def deliver(self, address: str, message: bytes, *, folder: str = "INBOX") -> None:
        """Store ``message`` in ``folder`` of BAL ``address`` as a new (\\Recent) message.

        IDLE sessions on that folder then receive ``* n EXISTS`` (RFC 2177, RFC 3501 §7.3.1).

        Raises:
            UsageError: ``address`` is not a BAL, the folder does not exist, or the message is
                larger than ``max_message``.
        """
        if len(message) > self.max_message:
            raise UsageError(f"message of {len(message)} octets exceeds {self.max_message}")
        self.engine.append(self._folder(address, folder), message)

    async def list_messages(self, address: str, folder: str = "INBOX") -> list[StoredMessage]:
        """Summaries of the messages in ``folder`` of BAL ``address``, by ascending UID.

        Raises:
            UsageError: ``address`` is not a BAL or the folder does not exist.
        """
        parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
        out = []
        for msg in self._folder(address, folder).messages:
            parsed = parser.parsebytes(msg.parsed.header)
            headers = {name: str(parsed[name]) for name in _HEADERS if parsed[name] is not None}
            out.append(StoredMessage(uid=msg.uid, flags=tuple(sorted(msg.flags)), internal_date=msg.internal_date,
                                     size=len(msg.raw), headers=headers))
        return out

    async def get_message(self, address: str, folder: str, uid: int) -> bytes:
        """Return the raw message with ``uid`` in ``folder`` of BAL ``address``.

        Raises:
            UsageError: unknown BAL, folder or UID.
        """
        msg = self._folder(address, folder).by_uid(uid)
        if msg is None:
            raise UsageError(f"no message with UID {uid} in {folder} of {address}")
        return msg.raw

    async def reset(self, address: str) -> None:
        """Empty BAL ``address``: expunge every message, remove extra folders, keep the four folders.

        Connected sessions see the expunges (``* n EXPUNGE``) on their next command or IDLE.

        Raises:
            UsageError: ``address`` is not a BAL of this sandbox.
        """
        self._folder(address, "INBOX")
        account = self.engine.account(address)
        for name in sorted(account.mailboxes, key=len, reverse=True):
            box = account.mailboxes[name]
            if name in _FOLDERS:
                self.engine.expunge(box, {m.uid for m in box.messages})
                self.engine.subscribe(box, True)
            else:
                self.engine.delete(box)
