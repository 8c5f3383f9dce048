"""Server responses (RFC 3501 §7, §9 ``response``) from a framed response to an event.

``parse_response`` never looks at the connection state: the connection decides what a
response means (greeting or not, which command a tag belongs to, why ``+`` was sent).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from ._abnf import ATOM, UID_SET
from ._buffer import Frame
from ._events import (
    Bye,
    CapabilityResponse,
    EnabledResponse,
    ESearchResponse,
    Event,
    ExistsResponse,
    ExpungeResponse,
    FlagsResponse,
    Greeting,
    IdResponse,
    ListResponse,
    OtherResponse,
    RecentResponse,
    SearchResponse,
    StatusResponse,
    UntaggedStatus,
    VanishedResponse,
)
from ._fetch import parse_fetch, parse_flag_list
from ._reader import NZ_NUMBER_MAX, ParseError, Reader
from ._types import AppendUid, CodeData, CopyUid, ResponseCode, UidSet, Value
from ._utf7 import decode_mutf7

__all__ = ["RawContinuation", "RawTagged", "parse_response", "parse_uid_set"]

# resp-text-code name: atom without "]" (RFC 3501 §9)
_CODE_NAME: Final = re.compile(rb"[^\]\[ ()\"{%*\\\x00-\x1f\x7f-\xff]+")
_LOOSE_WORD: Final = re.compile(rb"[^ \x00-\x1f\x7f]+")
_STATUS_WORDS: Final = ("OK", "NO", "BAD")
_NUMBER_CODES: Final = frozenset({"UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "APPENDLIMIT"})


@dataclass(frozen=True, slots=True)
class RawContinuation:
    """``"+" [SP (resp-text / base64)]`` (RFC 3501 §7.5), before the connection interprets it."""

    text: bytes


@dataclass(frozen=True, slots=True)
class RawTagged:
    """A tagged status response before the connection matches the tag to its command."""

    tag: str
    status: Literal["OK", "NO", "BAD"]
    code: ResponseCode | None
    text: str


def parse_uid_set(raw: bytes) -> UidSet:
    """``uid-set`` (RFC 4315 §4) into ranges; ``5:3`` means ``3:5`` (RFC 3501 §9 seq-range).

    Each ``uniqueid`` is an ``nz-number`` (1 to 4294967295, RFC 3501 §9), so ``len()`` of the
    set always fits in a machine integer.

    Raises:
        ValueError: not a uid-set, or a UID out of the nz-number range.
    """
    if UID_SET.match(raw) is None:
        raise ValueError("bad uid-set")
    ranges: list[tuple[int, int]] = []
    for part in raw.split(b","):
        low, _, high = part.partition(b":")
        a, b = _nz(low), _nz(high or low)
        ranges.append((min(a, b), max(a, b)))
    return UidSet(ranges=tuple(ranges))


def _nz(raw: bytes) -> int:
    # UID_SET already refused leading zeros and empty parts; only the upper bound is left. The
    # digit count is checked first so that int() never sees thousands of digits.
    if len(raw) > 10 or int(raw) > NZ_NUMBER_MAX:
        raise ValueError(f"UID above {NZ_NUMBER_MAX}")
    return int(raw)


def parse_response(frame: Frame, *, utf8: bool = False) -> Event | RawContinuation | RawTagged:
    """Parse one framed server response.

    Args:
        frame: the response lines and literals.
        utf8: mailbox names are UTF-8 (RFC 6855 ``UTF8=ACCEPT`` enabled), not modified UTF-7.

    Raises:
        ParseError: the response does not follow RFC 3501 §9 (the caller wraps it).
    """
    r = Reader(frame)
    if r.skip(b"+"):
        # RFC 3501 §7.5; "+" without SP is tolerated (seen from some servers for empty data).
        r.skip(b" ")
        return RawContinuation(text=r.rest())
    if r.skip(b"* "):
        return _untagged(r, utf8)
    tag = r.regex(_LOOSE_WORD, "tag").decode("ascii", "replace")
    r.sp()
    status = r.word()
    if status not in _STATUS_WORDS:
        r.fail("OK, NO or BAD after a tag")
    code, text = _resp_text(r)
    return RawTagged(tag=tag, status=status, code=code, text=text)  # type: ignore[arg-type]


def _resp_text(r: Reader) -> tuple[ResponseCode | None, str]:
    # resp-text = ["[" resp-text-code "]" SP] text   (RFC 3501 §9; RFC 9051 makes text optional)
    if r.at_end():
        return None, ""
    r.sp()
    code = None
    if r.skip(b"["):
        code = _resp_code(r)
        r.skip(b" ")
    return code, r.rest().decode("utf-8", "replace")


def _resp_code(r: Reader) -> ResponseCode:
    name = r.regex(_CODE_NAME, "response code").decode("ascii").upper()
    start = r.pos
    while not r.skip(b"]"):
        if r.peek() == b'"':
            r.quoted()
        elif r.peek() == b"":
            r.fail("']' closing the response code")
        else:
            r.pos += 1
    arg = r.since(start)[:-1]
    raw = (name + arg.decode("utf-8", "replace")).strip()
    arg = arg[1:] if arg.startswith(b" ") else arg
    return ResponseCode(name=name, data=_code_data(name, arg), raw=raw)


def _code_data(name: str, arg: bytes) -> CodeData:
    sub = Reader(Frame(lines=[arg]))
    if name in ("CAPABILITY", "BADCHARSET"):
        words = [w for w in arg.replace(b"(", b" ").replace(b")", b" ").split(b" ") if w]
        text = [w.decode("utf-8", "replace") for w in words]
        return tuple(sys.intern(w.upper()) for w in text) if name == "CAPABILITY" else tuple(text)
    if name == "PERMANENTFLAGS":
        flags = parse_flag_list(sub)
        sub.end()
        return flags
    try:
        if name in _NUMBER_CODES:
            value = sub.number()
            sub.end()
            return value
        if name == "APPENDUID":
            validity, uids = arg.split(b" ")
            return AppendUid(uidvalidity=_uidvalidity(validity), uids=parse_uid_set(uids))
        if name == "COPYUID":
            validity, source, destination = arg.split(b" ")
            return CopyUid(
                uidvalidity=_uidvalidity(validity), source=parse_uid_set(source), destination=parse_uid_set(destination)
            )
    except ValueError as exc:
        raise ParseError(f"bad [{name}] response code data") from exc
    return arg.decode("utf-8", "replace") if arg else None


def _uidvalidity(raw: bytes) -> int:
    # uidvalidity = nz-number (RFC 4315 §4)
    if not raw.isdigit() or raw.startswith(b"0"):
        raise ValueError("bad uidvalidity")
    return _nz(raw)


def _untagged(r: Reader, utf8: bool) -> Event:
    number: int | None = None
    if r.peek().isdigit():
        number = r.number()
        r.sp()
    name = r.regex(_LOOSE_WORD, "response name").decode("ascii", "replace").upper()
    if number is not None:
        return _numbered(r, number, name)
    if name in _STATUS_WORDS:
        code, text = _resp_text(r)
        return UntaggedStatus(status=name, code=code, text=text)  # type: ignore[arg-type]
    if name == "BYE":
        code, text = _resp_text(r)
        return Bye(code=code, text=text)
    if name == "PREAUTH":
        code, text = _resp_text(r)
        return Greeting(status="PREAUTH", code=code, text=text)
    if name in ("CAPABILITY", "ENABLED"):
        # capability-data = "CAPABILITY" *(SP capability) SP "IMAP4rev1" ...   (RFC 3501 §7.2.1)
        # Interned: a thousand connections to one server share one copy of each capability name.
        words = tuple(sys.intern(w.decode("ascii", "replace").upper()) for w in r.rest().split(b" ") if w)
        if name == "CAPABILITY":
            return CapabilityResponse(capabilities=words)
        return EnabledResponse(capabilities=words)
    parser = _DATA_PARSERS.get(name)
    if parser is not None:
        return parser(r, name, utf8)
    return _other(r, name, None)


def _numbered(r: Reader, number: int, name: str) -> Event:
    # message-data = nz-number SP ("EXPUNGE" / ("FETCH" SP msg-att)); mailbox-data "n EXISTS|RECENT"
    if name in ("FETCH", "EXPUNGE") and not 1 <= number <= NZ_NUMBER_MAX:
        r.fail(f"a message sequence number from 1 to {NZ_NUMBER_MAX}")  # nz-number, RFC 3501 §9
    if name == "FETCH":
        return parse_fetch(r, number)
    if name in ("EXISTS", "RECENT", "EXPUNGE"):
        r.skip(b" ")  # tolerated trailing SP
        r.end()
        if name == "EXISTS":
            return ExistsResponse(count=number)
        if name == "RECENT":
            return RecentResponse(count=number)
        return ExpungeResponse(seq=number)
    return _other(r, name, number)


def _mailbox_name(raw: bytes, utf8: bool) -> str:
    # RFC 3501 §5.1.3 (modified UTF-7) or RFC 6855 §3 (UTF-8 once UTF8=ACCEPT is enabled).
    # A name that does not decode is kept readable; raw_name holds the exact octets.
    if utf8:
        return raw.decode("utf-8", "replace")
    try:
        return decode_mutf7(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _list(r: Reader, name: str, utf8: bool) -> ListResponse:
    # mailbox-list = "(" [mbx-list-flags] ")" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox
    #                [SP mbox-list-extended]                 (RFC 3501 §9, RFC 5258 §6)
    r.sp()
    attributes = parse_flag_list(r)
    r.sp()
    delimiter = None if r.nil() else r.quoted().decode("utf-8", "replace")
    r.sp()
    raw_name = r.astring()
    extended = r.values()
    kind: Literal["LIST", "LSUB"] = "LSUB" if name == "LSUB" else "LIST"
    return ListResponse(
        kind=kind,
        attributes=attributes,
        delimiter=delimiter,
        name=_mailbox_name(raw_name, utf8),
        raw_name=raw_name,
        extended=extended,
    )


def _status(r: Reader, name: str, utf8: bool) -> StatusResponse:
    # "STATUS" SP mailbox SP "(" [status-att-list] ")"     (RFC 3501 §7.2.4)
    r.sp()
    raw_name = r.astring()
    r.sp()
    r.open_list()
    items: list[tuple[str, int]] = []
    while not r.close_list():
        if items:
            r.sp()
        key = r.word()
        r.sp()
        items.append((key, r.number()))
    r.skip(b" ")
    r.end()
    return StatusResponse(name=_mailbox_name(raw_name, utf8), raw_name=raw_name, items=tuple(items))


def _search(r: Reader, name: str, utf8: bool) -> SearchResponse:
    # "SEARCH" *(SP nz-number) [SP "(" "MODSEQ" SP mod-sequence-value ")"]   (RFC 7162 §3.1.5)
    ids: list[int] = []
    modseq = None
    while not r.at_end():
        r.sp()
        if r.at_end():
            break  # tolerated trailing SP ("* SEARCH " from some servers)
        if r.skip(b"(MODSEQ "):
            modseq = r.number()
            r.expect(b")")
        else:
            ids.append(r.nz_number())  # mailbox-data "SEARCH" *(SP nz-number)
    return SearchResponse(ids=tuple(ids), modseq=modseq)


def _esearch(r: Reader, name: str, utf8: bool) -> ESearchResponse:
    # esearch-response = "ESEARCH" [search-correlator] [SP "UID"] *(SP search-return-data)  (RFC 4731)
    tag = None
    if r.skip(b" (TAG "):
        tag = r.astring().decode("ascii", "replace")
        r.expect(b")")
    uid = r.skip(b" UID") and (r.at_end() or r.peek() == b" ")
    items: list[tuple[str, int | UidSet | Value]] = []
    while not r.at_end():
        r.sp()
        key = r.word()
        r.sp()
        if key == "ALL":
            try:
                items.append((key, parse_uid_set(r.atom())))
            except ValueError:
                r.fail("sequence-set")
        else:
            items.append((key, r.value()))
    return ESearchResponse(tag=tag, uid=uid, items=tuple(items))  # type: ignore[arg-type]


def _flags(r: Reader, name: str, utf8: bool) -> FlagsResponse:
    r.sp()
    flags = parse_flag_list(r)
    r.skip(b" ")
    r.end()
    return FlagsResponse(flags=flags)


def _vanished(r: Reader, name: str, utf8: bool) -> VanishedResponse:
    # "VANISHED" [SP "(EARLIER)"] SP known-uids   (RFC 7162 §3.2.10)
    r.sp()
    earlier = r.skip(b"(EARLIER) ")
    try:
        uids = parse_uid_set(r.atom())
    except ValueError:
        r.fail("uid-set")
    r.end()
    return VanishedResponse(earlier=earlier, uids=uids)


def _id(r: Reader, name: str, utf8: bool) -> IdResponse:
    # id-response = "ID" SP id-params-list ;  id-params-list = "(" *(string SP nstring) ")" / nil
    r.sp()
    if r.nil():
        r.end()
        return IdResponse(params=None)
    r.open_list()
    params: list[tuple[str, str | None]] = []
    while not r.close_list():
        if params:
            r.sp()
        key = r.bstring().decode("utf-8", "replace")
        r.sp()
        value = r.nstring()
        params.append((key, None if value is None else value.decode("utf-8", "replace")))
    r.end()
    return IdResponse(params=tuple(params))


def _other(r: Reader, name: str, number: int | None) -> OtherResponse:
    if ATOM.fullmatch(name.encode()) is None:
        r.fail("response name")
    return OtherResponse(name=name, number=number, data=r.values())


_DATA_PARSERS: Final[dict[str, Callable[[Reader, str, bool], Event]]] = {
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "SEARCH": _search,
    "ESEARCH": _esearch,
    "FLAGS": _flags,
    "VANISHED": _vanished,
    "ID": _id,
}
