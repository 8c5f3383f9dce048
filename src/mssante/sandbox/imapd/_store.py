"""The sandbox's mailboxes: every BAL's folders, messages and flags, in memory and in SQLite.

Memory holds the state sessions read; each change is written through to an SQLite database in
the state directory (when one is given), so a restart finds the same messages, flags, UIDs and
UIDVALIDITY (RFC 3501 §2.3.1.1: UIDs are stable across sessions). A store without a path lives
in memory only.

Concurrent sessions (RFC 3501 §5.2, §7): each selected session holds a :class:`View` of its
mailbox. Every change (new message, flag change, expunge) is queued on the other views and sets
their ``changed`` event, so an IDLE session wakes at once; the session turns the queue into
``EXISTS``/``EXPUNGE``/``FETCH FLAGS`` responses when the protocol allows it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Final

from mssante.errors import UsageError
from mssante.sandbox.imapd._mime import Part, parse_message

__all__ = ["SYSTEM_FLAGS", "Account", "Mailbox", "Message", "Store", "View"]

#: RFC 3501 §2.3.2 system flags a client may set (\Recent is the server's).
SYSTEM_FLAGS: Final = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_CANONICAL: Final = {f.lower(): f for f in SYSTEM_FLAGS}

_SCHEMA: Final = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS mailbox (
    id INTEGER PRIMARY KEY, bal TEXT NOT NULL, name TEXT NOT NULL, uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL, subscribed INTEGER NOT NULL, UNIQUE (bal, name));
CREATE TABLE IF NOT EXISTS message (
    mailbox INTEGER NOT NULL REFERENCES mailbox (id) ON DELETE CASCADE, uid INTEGER NOT NULL,
    flags TEXT NOT NULL, internal_date REAL NOT NULL, tz INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (mailbox, uid));
"""


def canonical_flag(flag: str) -> str:
    """``\\seen`` → ``\\Seen``; keywords keep their case (never raises)."""
    return _CANONICAL.get(flag.lower(), flag)


@dataclass(eq=False)
class Message:
    """One stored message; ``raw`` never changes, ``flags`` does."""

    uid: int
    raw: bytes
    internal_date: datetime
    flags: set[str] = field(default_factory=set)
    recent: bool = False
    _parsed: Part | None = None
    #: Rendered ENVELOPE / BODY / BODYSTRUCTURE, computed once (the octets never change).
    rendered: dict[str, bytes] = field(default_factory=dict)

    @property
    def parsed(self) -> Part:
        """The MIME tree, parsed once on first use."""
        if self._parsed is None:
            self._parsed = parse_message(self.raw)
        return self._parsed


@dataclass(eq=False)
class View:
    """What one selected session knows of its mailbox: its message list and pending changes."""

    mailbox: Mailbox
    readonly: bool
    messages: list[Message]
    expunged: set[int] = field(default_factory=set)
    flag_changes: set[int] = field(default_factory=set)
    new: list[Message] = field(default_factory=list)
    flags_changed: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        """Stop receiving changes (never raises)."""
        self.mailbox.views.discard(self)


@dataclass(eq=False)
class Mailbox:
    """One folder of a BAL."""

    account: Account
    name: str
    uidvalidity: int
    uidnext: int = 1
    subscribed: bool = False
    messages: list[Message] = field(default_factory=list)
    views: set[View] = field(default_factory=set)
    keywords: set[str] = field(default_factory=set)
    row: int = 0

    def flags(self) -> list[str]:
        """FLAGS of the mailbox: the system flags and every keyword in use (RFC 3501 §7.2.6)."""
        return [*SYSTEM_FLAGS, *sorted(self.keywords)]

    def by_uid(self, uid: int) -> Message | None:
        """The message with ``uid`` (binary search), or None."""
        lo, hi = 0, len(self.messages)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.messages[mid].uid < uid:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.messages) and self.messages[lo].uid == uid:
            return self.messages[lo]
        return None

    def open_view(self, *, readonly: bool) -> View:
        """Start a selected session's view; claims \\Recent unless ``readonly`` (RFC 3501 §2.3.2)."""
        view = View(self, readonly, list(self.messages))
        self.views.add(view)
        return view

    def _learn(self, flags: Iterable[str]) -> None:
        new = {f for f in flags if not f.startswith("\\")} - self.keywords
        if new:
            self.keywords |= new
            for view in self.views:
                view.flags_changed = True

    def _notify(self, origin: View | None) -> None:
        for view in self.views:
            if view is not origin:
                view.changed.set()


@dataclass(eq=False)
class Account:
    """The folders of one BAL."""

    address: str
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)

    def get(self, name: str) -> Mailbox | None:
        """Mailbox ``name`` (INBOX is case-insensitive, RFC 3501 §5.1), or None."""
        return self.mailboxes.get("INBOX" if name.upper() == "INBOX" else name)


class Store:
    """Every BAL's mailboxes; optionally persisted in SQLite at ``path``."""

    def __init__(self, path: Path | None = None) -> None:
        """Open (creating if needed) the database at ``path`` and load it; None keeps everything in memory.

        Raises:
            UsageError: the database cannot be opened or is not a mailbox database.
        """
        self.accounts: dict[str, Account] = {}
        self._db: sqlite3.Connection | None = None
        self._validity = int(time.time())
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                self._db.executescript(_SCHEMA)
                os.chmod(path, 0o600)
                self._load()
            except sqlite3.Error as exc:
                raise UsageError(f"cannot open the mailbox database {path}: {exc}") from exc

    def _load(self) -> None:
        assert self._db is not None
        boxes: dict[int, Mailbox] = {}
        for row, bal, name, validity, uidnext, subscribed in self._db.execute(
                "SELECT id, bal, name, uidvalidity, uidnext, subscribed FROM mailbox ORDER BY id"):
            account = self.accounts.setdefault(bal, Account(bal))
            box = Mailbox(account, name, validity, uidnext, bool(subscribed), row=row)
            account.mailboxes[name] = box
            boxes[row] = box
            self._validity = max(self._validity, validity)
        for row, uid, flags, when, tz, data in self._db.execute(
                "SELECT mailbox, uid, flags, internal_date, tz, data FROM message ORDER BY mailbox, uid"):
            owner = boxes.get(row)
            if owner is None:
                continue
            zone = timezone(timedelta(minutes=tz))
            message = Message(uid, bytes(data), datetime.fromtimestamp(when, zone), set(flags.split()))
            owner.messages.append(message)
            owner.keywords |= {f for f in message.flags if not f.startswith("\\")}

    def close(self) -> None:
        """Close the database (never raises)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # ------------------------------------------------------------------ accounts and mailboxes

    def account(self, address: str) -> Account:
        """The account of ``address`` (lower-cased), created empty if new; never raises."""
        key = address.lower()
        account = self.accounts.get(key)
        if account is None:
            account = self.accounts[key] = Account(key)
        return account

    def _next_validity(self) -> int:
        self._validity += 1
        return self._validity

    def create(self, account: Account, name: str, *, subscribed: bool = False) -> Mailbox:
        """Create mailbox ``name`` with a fresh UIDVALIDITY.

        Raises:
            UsageError: it exists already.
        """
        if account.get(name) is not None:
            raise UsageError(f"mailbox {name} exists")
        name = "INBOX" if name.upper() == "INBOX" else name
        box = Mailbox(account, name, self._next_validity(), subscribed=subscribed)
        if self._db is not None:
            cur = self._db.execute("INSERT INTO mailbox (bal, name, uidvalidity, uidnext, subscribed) "
                                   "VALUES (?, ?, ?, ?, ?)", (account.address, name, box.uidvalidity, 1, subscribed))
            box.row = int(cur.lastrowid or 0)
        account.mailboxes[name] = box
        return box

    def delete(self, box: Mailbox) -> None:
        """Remove ``box`` and its messages; its views see every message expunged (never raises)."""
        for view in list(box.views):
            view.expunged.update(m.uid for m in view.messages)
            view.changed.set()
        box.views.clear()
        box.account.mailboxes.pop(box.name, None)
        if self._db is not None:
            self._db.execute("DELETE FROM message WHERE mailbox = ?", (box.row,))
            self._db.execute("DELETE FROM mailbox WHERE id = ?", (box.row,))

    def rename(self, box: Mailbox, new: str) -> None:
        """Rename ``box`` (RENAME INBOX is handled by the caller); never raises."""
        account = box.account
        account.mailboxes.pop(box.name, None)
        box.name = new
        account.mailboxes[new] = box
        if self._db is not None:
            self._db.execute("UPDATE mailbox SET name = ? WHERE id = ?", (new, box.row))

    def subscribe(self, box: Mailbox, subscribed: bool) -> None:
        """Set the subscription of ``box`` (never raises)."""
        box.subscribed = subscribed
        if self._db is not None:
            self._db.execute("UPDATE mailbox SET subscribed = ? WHERE id = ?", (int(subscribed), box.row))

    # ------------------------------------------------------------------ messages

    def append(self, box: Mailbox, raw: bytes, flags: Iterable[str] = (), when: datetime | None = None,
               *, origin: View | None = None, recent: bool = True) -> Message:
        """Store ``raw`` as the next UID of ``box``; other views learn it (``* n EXISTS``); never raises."""
        when = when or datetime.now(UTC).astimezone()
        message = Message(box.uidnext, raw, when, {canonical_flag(f) for f in flags} - {"\\Recent"}, recent=recent)
        box.uidnext += 1
        box.messages.append(message)
        box._learn(message.flags)
        for view in box.views:
            if view is not origin:
                view.new.append(message)
        box._notify(origin)
        if self._db is not None:
            offset = when.utcoffset()
            tz = int(offset.total_seconds() // 60) if offset is not None else 0
            self._db.execute("INSERT INTO message (mailbox, uid, flags, internal_date, tz, data) VALUES (?,?,?,?,?,?)",
                             (box.row, message.uid, " ".join(sorted(message.flags)), when.timestamp(), tz, raw))
            self._db.execute("UPDATE mailbox SET uidnext = ? WHERE id = ?", (box.uidnext, box.row))
        return message

    def set_flags(self, box: Mailbox, message: Message, flags: set[str], *, origin: View | None = None) -> bool:
        """Replace the flags of ``message``; True if they changed (other views get ``FETCH FLAGS``)."""
        flags = {canonical_flag(f) for f in flags} - {"\\Recent"}
        if flags == message.flags:
            return False
        message.flags = flags
        box._learn(flags)
        for view in box.views:
            if view is not origin:
                view.flag_changes.add(message.uid)
        box._notify(origin)
        if self._db is not None:
            self._db.execute("UPDATE message SET flags = ? WHERE mailbox = ? AND uid = ?",
                             (" ".join(sorted(flags)), box.row, message.uid))
        return True

    def expunge(self, box: Mailbox, uids: set[int], *, origin: View | None = None) -> None:
        """Remove the messages with ``uids`` (other views get ``EXPUNGE`` when allowed); never raises."""
        if not uids:
            return
        box.messages = [m for m in box.messages if m.uid not in uids]
        for view in box.views:
            if view is not origin:
                view.expunged |= uids
        box._notify(origin)
        if self._db is not None:
            self._db.executemany("DELETE FROM message WHERE mailbox = ? AND uid = ?", [(box.row, u) for u in uids])
