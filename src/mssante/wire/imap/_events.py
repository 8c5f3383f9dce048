"""Events returned by :meth:`ClientConnection.next_event`: one frozen dataclass per server response.

RFC 3501 §7: a server sends status responses (tagged or untagged OK/NO/BAD, BYE, PREAUTH),
server data (untagged CAPABILITY, LIST, FETCH...) and command continuation requests (``+``).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ._types import BodyStructure, Envelope, MultiPart, ResponseCode, SinglePart, StreamedLiteral, UidSet, Value

__all__ = [
    "NEED_DATA",
    "Bye",
    "CapabilityResponse",
    "ConnectionEnded",
    "Continuation",
    "ContinuationPurpose",
    "ESearchResponse",
    "EnabledResponse",
    "Event",
    "ExistsResponse",
    "ExpungeResponse",
    "FetchResponse",
    "FetchValue",
    "FlagsResponse",
    "Greeting",
    "IdResponse",
    "ListResponse",
    "LiteralChunk",
    "Marker",
    "OtherResponse",
    "RecentResponse",
    "SearchResponse",
    "StatusResponse",
    "Tagged",
    "UntaggedStatus",
    "VanishedResponse",
]


class Marker(enum.Enum):
    """Sentinels returned by :meth:`ClientConnection.next_event` instead of an event."""

    NEED_DATA = "NEED_DATA"


#: Returned by ``next_event()`` when more octets must be received first.
NEED_DATA = Marker.NEED_DATA

FetchValue: TypeAlias = (
    "int | bytes | StreamedLiteral | tuple[str, ...] | dt.datetime | Envelope | BodyStructure | Value | None"
)


class ContinuationPurpose(enum.Enum):
    """Why the server sent ``+``, from the command in flight (RFC 3501 §7.5)."""

    LITERAL = "literal"  # send the pending literal: call send_literal()
    SASL = "sasl"  # answer the challenge: call send_continuation() or cancel_authentication()
    IDLE = "idle"  # IDLE is now active (RFC 2177); end it with idle_done()


@dataclass(frozen=True, kw_only=True, slots=True)
class Greeting:
    """The server greeting (RFC 3501 §7.1): ``status`` is ``OK``, ``PREAUTH`` or ``BYE``.

    A ``PREAUTH`` greeting skips authentication *and* STARTTLS (RFC 3501 §6.2.1 only allows
    STARTTLS in the not-authenticated state): a driver that requires TLS must refuse it.
    """

    status: Literal["OK", "PREAUTH", "BYE"]
    code: ResponseCode | None
    text: str

    @property
    def preauth(self) -> bool:
        """True for a PREAUTH greeting."""
        return self.status == "PREAUTH"


@dataclass(frozen=True, kw_only=True, slots=True)
class Tagged:
    """The tagged completion of the command in flight (RFC 3501 §7.1)."""

    tag: str
    command: str
    status: Literal["OK", "NO", "BAD"]
    code: ResponseCode | None
    text: str

    @property
    def ok(self) -> bool:
        """True if ``status == "OK"``."""
        return self.status == "OK"


@dataclass(frozen=True, kw_only=True, slots=True)
class Continuation:
    """A command continuation request ``+ ...`` (RFC 3501 §7.5).

    Attributes:
        purpose: what the connection expects next, from the command in flight.
        text: the text after ``+`` (for SASL, the base64 form).
        challenge: for SASL, the decoded challenge (RFC 3501 §6.2.2), else ``None``.
        initial_response_due: for SASL without SASL-IR, True on the first (empty) challenge:
            answer it with the mechanism's initial response.
    """

    purpose: ContinuationPurpose
    text: str
    challenge: bytes | None = None
    initial_response_due: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class UntaggedStatus:
    """``* OK|NO|BAD [code] text`` (RFC 3501 §7.1.1-7.1.3)."""

    status: Literal["OK", "NO", "BAD"]
    code: ResponseCode | None
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Bye:
    """``* BYE`` (RFC 3501 §7.1.5): the server is closing the connection."""

    code: ResponseCode | None
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CapabilityResponse:
    """``* CAPABILITY`` (RFC 3501 §7.2.1); names upper-cased."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class EnabledResponse:
    """``* ENABLED`` (RFC 5161 §3.2); names upper-cased."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ListResponse:
    """``* LIST`` / ``* LSUB`` (RFC 3501 §7.2.2, RFC 5258, RFC 6154).

    ``name`` is decoded from modified UTF-7 (RFC 3501 §5.1.3) or UTF-8 (RFC 6855);
    ``raw_name`` is what the server sent, to be passed back unchanged if decoding was lossy.
    """

    kind: Literal["LIST", "LSUB"]
    attributes: tuple[str, ...]
    delimiter: str | None
    name: str
    raw_name: bytes
    extended: tuple[Value, ...] = ()

    @property
    def special_use(self) -> str | None:
        """The RFC 6154 §2 attribute (``\\Sent``, ``\\Trash``...) if the server gave one."""
        for attr in self.attributes:
            if attr.lower() in _SPECIAL_USE:
                return attr
        return None


_SPECIAL_USE = frozenset({"\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash", "\\important"})


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusResponse:
    """``* STATUS mailbox (MESSAGES n UIDNEXT n ...)`` (RFC 3501 §7.2.4)."""

    name: str
    raw_name: bytes
    items: tuple[tuple[str, int], ...]

    def get(self, item: str) -> int | None:
        """The value of a status item (``"MESSAGES"``, ``"UIDNEXT"``...) or ``None``."""
        return dict(self.items).get(item.upper())


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchResponse:
    """``* SEARCH n n ...`` (RFC 3501 §7.2.5), with the RFC 7162 ``(MODSEQ n)`` if any."""

    ids: tuple[int, ...]
    modseq: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ESearchResponse:
    """``* ESEARCH (TAG "x") UID MIN 1 COUNT 3 ALL 1:3`` (RFC 4731 §3.1)."""

    tag: str | None
    uid: bool
    items: tuple[tuple[str, int | UidSet], ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class FlagsResponse:
    """``* FLAGS (...)`` (RFC 3501 §7.2.6)."""

    flags: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ExistsResponse:
    """``* n EXISTS`` (RFC 3501 §7.3.1)."""

    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RecentResponse:
    """``* n RECENT`` (RFC 3501 §7.3.2)."""

    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ExpungeResponse:
    """``* n EXPUNGE`` (RFC 3501 §7.4.1): message sequence number ``seq`` is gone."""

    seq: int


@dataclass(frozen=True, kw_only=True, slots=True)
class VanishedResponse:
    """``* VANISHED [(EARLIER)] uid-set`` (RFC 7162 §3.2.10)."""

    earlier: bool
    uids: UidSet


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchResponse:
    """``* n FETCH (...)`` (RFC 3501 §7.4.2).

    ``items`` keeps the order received; keys are upper-cased item names as the server wrote
    them (``"UID"``, ``"BODY[HEADER.FIELDS (SUBJECT)]"``, ``"BODY[]<0>"``).
    """

    seq: int
    items: tuple[tuple[str, FetchValue], ...]

    def get(self, name: str) -> FetchValue:
        """The value of item ``name`` (case-insensitive), or ``None`` if absent."""
        wanted = name.upper()
        for key, value in self.items:
            if key == wanted:
                return value
        return None

    @property
    def uid(self) -> int | None:
        """The UID item, if present."""
        value = self.get("UID")
        return value if isinstance(value, int) else None

    @property
    def flags(self) -> tuple[str, ...] | None:
        """The FLAGS item, if present."""
        value = self.get("FLAGS")
        if isinstance(value, tuple) and all(isinstance(flag, str) for flag in value):
            return tuple(str(flag) for flag in value)
        return None

    @property
    def envelope(self) -> Envelope | None:
        """The ENVELOPE item, if present."""
        value = self.get("ENVELOPE")
        return value if isinstance(value, Envelope) else None

    @property
    def bodystructure(self) -> BodyStructure | None:
        """The BODYSTRUCTURE (or BODY) item, if present."""
        value = self.get("BODYSTRUCTURE") or self.get("BODY")
        return value if isinstance(value, (SinglePart, MultiPart)) else None

    @property
    def internaldate(self) -> dt.datetime | None:
        """The INTERNALDATE item (timezone-aware), if present."""
        value = self.get("INTERNALDATE")
        return value if isinstance(value, dt.datetime) else None

    @property
    def size(self) -> int | None:
        """The RFC822.SIZE item, if present."""
        value = self.get("RFC822.SIZE")
        return value if isinstance(value, int) else None


@dataclass(frozen=True, kw_only=True, slots=True)
class IdResponse:
    """``* ID (...)`` (RFC 2971 §3.2); ``params`` is ``None`` for ``* ID NIL``."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, kw_only=True, slots=True)
class OtherResponse:
    """Any other untagged response (an extension this engine does not model), kept as data."""

    name: str
    number: int | None
    data: tuple[Value, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class LiteralChunk:
    """A piece of a large literal being streamed (see ``stream_literals_over``).

    The response that contains it follows, with a :class:`StreamedLiteral` in its place.
    """

    data: bytes = field(repr=False)
    offset: int
    total: int

    @property
    def last(self) -> bool:
        """True for the chunk that completes the literal."""
        return self.offset + len(self.data) == self.total


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionEnded:
    """The server closed the connection cleanly between two responses (EOF)."""


Event: TypeAlias = (
    "Greeting | Tagged | Continuation | UntaggedStatus | Bye | CapabilityResponse | EnabledResponse"
    " | ListResponse | StatusResponse | SearchResponse | ESearchResponse | FlagsResponse | ExistsResponse"
    " | RecentResponse | ExpungeResponse | VanishedResponse | FetchResponse | IdResponse | OtherResponse"
    " | LiteralChunk | ConnectionEnded"
)
