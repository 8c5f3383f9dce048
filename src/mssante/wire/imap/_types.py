"""Value objects found inside IMAP responses: response codes, UID sets, envelopes, body structures.

All are frozen dataclasses with keyword-only fields. Strings that the server sends as IMAP
``string``/``nstring`` stay ``bytes`` (RFC 2047 encoded words are left raw, as on the wire);
protocol keywords (media types, flags, capability names) are ``str``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "Address",
    "AppendUid",
    "BodyStructure",
    "CopyUid",
    "Disposition",
    "Envelope",
    "MultiPart",
    "ResponseCode",
    "SinglePart",
    "StreamedLiteral",
    "UidSet",
    "Value",
]

#: A generic parsed IMAP value (RFC 3501 §4): NIL, number, atom/string, or a parenthesized list.
Value: TypeAlias = "int | bytes | StreamedLiteral | tuple[Value, ...] | None"


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamedLiteral:
    """Placeholder for a literal delivered as :class:`LiteralChunk` events, not held in memory."""

    size: int


@dataclass(frozen=True, kw_only=True, slots=True)
class UidSet:
    """A set of UIDs as inclusive ranges, never expanded (RFC 4315 ``uid-set``).

    ``1:4294967295`` is one range: iterating is lazy and ``len()`` is arithmetic.
    """

    ranges: tuple[tuple[int, int], ...]

    def __iter__(self) -> Iterator[int]:
        for low, high in self.ranges:
            yield from range(low, high + 1)

    def __len__(self) -> int:
        return sum(high - low + 1 for low, high in self.ranges)

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and any(low <= uid <= high for low, high in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in self.ranges)


@dataclass(frozen=True, kw_only=True, slots=True)
class AppendUid:
    """``[APPENDUID uidvalidity uid-set]`` (RFC 4315 §3)."""

    uidvalidity: int
    uids: UidSet


@dataclass(frozen=True, kw_only=True, slots=True)
class CopyUid:
    """``[COPYUID uidvalidity source-set destination-set]`` (RFC 4315 §3)."""

    uidvalidity: int
    source: UidSet
    destination: UidSet


CodeData: TypeAlias = "int | str | tuple[str, ...] | AppendUid | CopyUid | None"


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseCode:
    """A ``[resp-text-code]`` (RFC 3501 §7.1, RFC 5530), kept as data.

    Attributes:
        name: upper-case code name, e.g. ``"UIDVALIDITY"``, ``"AUTHENTICATIONFAILED"``.
        data: typed argument: ``int`` (UIDVALIDITY, UIDNEXT, UNSEEN, HIGHESTMODSEQ),
            ``tuple[str, ...]`` (CAPABILITY, PERMANENTFLAGS, BADCHARSET), :class:`AppendUid`,
            :class:`CopyUid`, the raw text ``str`` of an unknown code's argument, or ``None``.
        raw: the text between the brackets, as received.
    """

    name: str
    data: CodeData = None
    raw: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Address:
    """One ``address`` of an ENVELOPE (RFC 3501 §7.4.2); group markers have ``host=None``."""

    name: bytes | None
    route: bytes | None
    mailbox: bytes | None
    host: bytes | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Envelope:
    """The ENVELOPE fetch item (RFC 3501 §7.4.2). Header values are raw (RFC 2047 not decoded)."""

    date: bytes | None
    subject: bytes | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: bytes | None
    message_id: bytes | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Disposition:
    """``body-fld-dsp``: ``("attachment" ("filename" "x.pdf"))``."""

    type: str
    params: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class SinglePart:
    """A non-multipart body part (RFC 3501 §7.4.2 BODYSTRUCTURE, ``body-type-1part``).

    ``envelope``/``body`` are set for ``message/rfc822`` (and ``message/global``), ``lines`` for
    ``text/*`` and messages. Extension data (``md5`` onwards) is only in BODYSTRUCTURE.
    """

    type: str
    subtype: str
    params: tuple[tuple[str, bytes], ...]
    id: bytes | None
    description: bytes | None
    encoding: str
    size: int
    lines: int | None = None
    envelope: Envelope | None = None
    body: BodyStructure | None = None
    md5: bytes | None = None
    disposition: Disposition | None = None
    language: tuple[bytes, ...] | None = None
    location: bytes | None = None
    extension: tuple[Value, ...] = field(default=())


@dataclass(frozen=True, kw_only=True, slots=True)
class MultiPart:
    """A ``multipart/*`` body (RFC 3501 §7.4.2 ``body-type-mpart``)."""

    parts: tuple[BodyStructure, ...]
    subtype: str
    params: tuple[tuple[str, bytes], ...] = ()
    disposition: Disposition | None = None
    language: tuple[bytes, ...] | None = None
    location: bytes | None = None
    extension: tuple[Value, ...] = field(default=())

    @property
    def type(self) -> str:
        """Always ``"multipart"``."""
        return "multipart"


BodyStructure: TypeAlias = "SinglePart | MultiPart"
