"""Values returned by the client facade: folders, message summaries, fetched messages, send results."""

from __future__ import annotations

import datetime as dt
import email.header
import functools
from dataclasses import dataclass, field
from typing import Literal

from mssante.message import ParsedMessage, parse_message
from mssante.wire.imap import Address, BodyStructure, Envelope, FetchResponse, ListResponse

__all__ = ["Folder", "MailboxEvent", "MessageSummary", "ReceivedMessage", "SendResult", "WatchState"]

#: FETCH items of a summary (RFC 3501 §6.4.5): no body, only what a message list shows.
SUMMARY_ITEMS: tuple[str, ...] = ("UID", "FLAGS", "ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE")


def _text(raw: bytes | None) -> str | None:
    """Decode an envelope string, RFC 2047 encoded words included (never raises)."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def _address(addr: Address) -> str | None:
    if addr.mailbox is None or addr.host is None:
        return None  # group syntax markers (RFC 3501 §7.4.2)
    return f"{addr.mailbox.decode('utf-8', 'replace')}@{addr.host.decode('utf-8', 'replace')}"


def _addresses(addrs: tuple[Address, ...]) -> tuple[str, ...]:
    return tuple(a for a in map(_address, addrs) if a is not None)


@dataclass(frozen=True, kw_only=True)
class Folder:
    """A mailbox folder from LIST (RFC 3501 §7.2.2), with its RFC 6154 special use."""

    name: str
    raw_name: bytes
    delimiter: str | None
    attributes: tuple[str, ...]
    special_use: str | None

    @classmethod
    def from_list(cls, item: ListResponse) -> Folder:
        """Build from a LIST response."""
        return cls(
            name=item.name,
            raw_name=item.raw_name,
            delimiter=item.delimiter,
            attributes=item.attributes,
            special_use=item.special_use,
        )


@dataclass(frozen=True, kw_only=True)
class MessageSummary:
    """What a message list shows, without the body.

    Attributes:
        folder, uid, uidvalidity: where the message is (the pair (uidvalidity, uid) is stable).
        flags: IMAP flags (``\\Seen``...).
        subject, sender, to, message_id, date: from the ENVELOPE, RFC 2047 decoded.
        size: RFC822.SIZE; internaldate: arrival time at the server.
        envelope, bodystructure: the raw IMAP structures, for advanced use.
    """

    folder: str
    uid: int
    uidvalidity: int | None
    flags: tuple[str, ...] = ()
    subject: str | None = None
    sender: str | None = None
    to: tuple[str, ...] = ()
    message_id: str | None = None
    date: str | None = None
    size: int | None = None
    internaldate: dt.datetime | None = None
    envelope: Envelope | None = field(default=None, repr=False)
    bodystructure: BodyStructure | None = field(default=None, repr=False)

    @property
    def seen(self) -> bool:
        """True when ``\\Seen`` is set."""
        return any(flag.lower() == "\\seen" for flag in self.flags)

    @classmethod
    def from_fetch(cls, item: FetchResponse, *, folder: str, uidvalidity: int | None) -> MessageSummary:
        """Build from a FETCH response holding :data:`SUMMARY_ITEMS`."""
        env = item.envelope
        return cls(
            folder=folder,
            uid=item.uid or 0,
            uidvalidity=uidvalidity,
            flags=item.flags or (),
            subject=_text(env.subject) if env else None,
            sender=next(iter(_addresses(env.from_)), None) if env else None,
            to=_addresses(env.to) if env else (),
            message_id=_text(env.message_id) if env else None,
            date=_text(env.date) if env else None,
            size=item.size,
            internaldate=item.internaldate,
            envelope=env,
            bodystructure=item.bodystructure,
        )


@dataclass(frozen=True, kw_only=True)
class ReceivedMessage:
    """A fetched message: the raw octets, and their parsed form on first use.

    Parsing a 1 MB message costs more than fetching it (issue 14): an LPS that only stores
    or forwards the octets never pays for it.
    """

    folder: str
    uid: int
    flags: tuple[str, ...]
    raw: bytes = field(repr=False)

    @functools.cached_property
    def parsed(self) -> ParsedMessage:
        """The message parsed by :func:`mssante.message.parse_message` (once, then kept).

        Raises:
            ContentError: the message cannot be parsed at all.
        """
        return parse_message(self.raw)


@dataclass(frozen=True, kw_only=True)
class SendResult:
    """The outcome of :meth:`Mailbox.send`.

    Attributes:
        message_id: the Message-ID sent.
        accepted: recipients the server accepted; refused: ``(address, reply)`` pairs.
        reply: the server's answer to DATA.
        sent_folder, sent_uid: where the copy was appended (None when the operator files it,
            or when the server gave no APPENDUID).
        sent_error: why the copy in Sent failed, when it did; the message itself was submitted.
    """

    message_id: str
    accepted: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]
    reply: str
    sent_folder: str | None = None
    sent_uid: int | None = None
    sent_error: str | None = None


@dataclass
class WatchState:
    """Where :meth:`Mailbox.watch` stands; keep it to resume without missing a message.

    Attributes:
        folder: the watched folder.
        uidvalidity: UIDVALIDITY when ``last_uid`` was recorded (RFC 3501 §2.3.1.1).
        last_uid: the highest UID already delivered (None: start with what arrives next).
        reconnects: how many times the watch connection was reopened.
    """

    folder: str = "INBOX"
    uidvalidity: int | None = None
    last_uid: int | None = None
    reconnects: int = 0


@dataclass(frozen=True, kw_only=True)
class MailboxEvent:
    """A session event of a mailbox, for supervisors and UIs (never holds a secret).

    ``kind``: ``connected`` (a session authenticated), ``disconnected`` (a session was lost and
    will be reopened), ``ended`` (the PSC session is over: every session closed, ECO.1.2.6),
    ``closed`` (:meth:`Mailbox.aclose`). ``error``: the exception behind a ``disconnected``
    event when there is one (e.g. :class:`~mssante.errors.AuthUnavailable` for
    ``[UNAVAILABLE]``, a :class:`~mssante.errors.TransportError` for a network drop).
    """

    address: str
    kind: Literal["connected", "disconnected", "ended", "closed"]
    detail: str = ""
    error: BaseException | None = field(default=None, compare=False)
