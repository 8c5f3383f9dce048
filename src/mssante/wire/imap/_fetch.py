"""FETCH data items (RFC 3501 §7.4.2): ENVELOPE, BODYSTRUCTURE, sections, dates, flags."""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from ._abnf import DATE_TIME, MONTHS, ORIGIN, QUOTED_TOKEN, QUOTED_UNESCAPE
from ._events import FetchResponse, FetchValue
from ._reader import MAX_DEPTH, Reader
from ._types import Address, BodyStructure, Disposition, Envelope, MultiPart, SinglePart, Value

__all__ = ["parse_date_time", "parse_fetch", "parse_flag_list"]

# msg-att names: "BODY", "BODY.PEEK" never comes back; "BINARY.SIZE", "RFC822.SIZE", "X-GM-MSGID"...
_ITEM_NAME: Final = re.compile(rb"[A-Za-z0-9.\-_]+")


def parse_flag_list(r: Reader) -> tuple[str, ...]:
    """``flag-list = "(" [flag *(SP flag)] ")"`` (RFC 3501 §9)."""
    r.open_list()
    flags: list[str] = []
    while not r.close_list():
        if flags:
            r.sp()
        flags.append(r.flag())
    return tuple(flags)


def parse_date_time(raw: bytes) -> dt.datetime:
    """``date-time`` (RFC 3501 §9) as an aware :class:`datetime.datetime`.

    Raises:
        ValueError: not a valid date-time.
    """
    match = DATE_TIME.match(raw)
    if match is None or match.group(2).upper() not in MONTHS:
        raise ValueError("bad date-time")
    day, month, year, hh, mm, ss, sign, zh, zm = match.groups()
    offset = dt.timedelta(hours=int(zh), minutes=int(zm)) * (-1 if sign == b"-" else 1)
    return dt.datetime(
        int(year), MONTHS.index(month.upper()) + 1, int(day), int(hh), int(mm), int(ss), tzinfo=dt.timezone(offset)
    )


def parse_fetch(r: Reader, seq: int) -> FetchResponse:
    """``"FETCH" SP msg-att`` after ``* n`` (RFC 3501 §7.4.2); the word FETCH is consumed."""
    r.sp()
    r.open_list()
    items: list[tuple[str, FetchValue]] = []
    while not r.close_list():
        if items:
            r.sp()
        name = _item_name(r)
        r.sp()
        items.append((name, _item_value(r, name)))
    # Tolerated: a trailing SP after the list (seen from some servers).
    r.skip(b" ")
    r.end()
    return FetchResponse(seq=seq, items=tuple(items))


def _item_name(r: Reader) -> str:
    name = r.regex(_ITEM_NAME, "fetch item name")
    if r.peek() == b"[":
        # section = "[" [section-spec] "]": may hold "HEADER.FIELDS (A B)" and quoted strings.
        start = r.pos
        r.expect(b"[")
        while not r.skip(b"]"):
            if r.peek() == b'"':
                r.quoted()
            elif r.peek() in (b"", b"\r", b"\n"):
                r.fail("']' closing the section")
            else:
                r.pos += 1
        name += r.since(start)
        origin = ORIGIN.match(r.line, r.pos)
        if origin is not None:
            r.pos = origin.end()
            name += origin.group(0)
    # section-spec is ASCII (RFC 3501 §9: header-fld-name = astring, CHAR = %x01-7F); an 8-bit
    # octet there, even inside a quoted string, is no section this client could have asked for.
    if not name.isascii():
        r.fail("an ASCII section")
    return name.decode("ascii").upper()


def _item_value(r: Reader, name: str) -> FetchValue:
    if name == "FLAGS":
        return parse_flag_list(r)
    if name == "UID":
        return r.nz_number()  # uniqueid = nz-number (RFC 3501 §9)
    if name == "RFC822.SIZE" or name.startswith(("BINARY.SIZE", "X-GM-MSGID", "X-GM-THRID")):
        return r.number()
    if name == "INTERNALDATE":
        try:
            return parse_date_time(r.quoted())
        except ValueError:
            r.fail("date-time")
    if name == "ENVELOPE":
        return parse_envelope(r)
    if name in ("BODYSTRUCTURE", "BODY"):
        return parse_body(r)
    if name == "MODSEQ":
        # RFC 7162 §3.1.4: MODSEQ "(" mod-sequence-value ")"
        r.open_list()
        value = r.number()
        r.expect(b")")
        r.depth -= 1
        return value
    if name.startswith(("BODY[", "BINARY[", "RFC822")):
        return r.nstring_any()
    return r.value()


# The common envelope in one regular expression: quoted strings and NIL only (no literal), the
# same grammar as the general parser below. Anything else (a literal, a malformed field) does not
# match and goes the general way, which also names the error (issue 14: FETCH ENVELOPE parsing).
_NSTRING: Final = rb"(?:(?i:NIL)|" + QUOTED_TOKEN + rb")"
_ADDRESS: Final = rb"\((" + _NSTRING + rb") (" + _NSTRING + rb") (" + _NSTRING + rb") (" + _NSTRING + rb")\)"
_ADDRESSES: Final = (rb"(?:(?i:NIL)|\((?: ?\(" + _NSTRING + rb" " + _NSTRING + rb" " + _NSTRING + rb" " + _NSTRING
                     + rb"\))*\))")
_FAST_ENVELOPE: Final = re.compile(
    rb"\((" + _NSTRING + rb") (" + _NSTRING + rb")" + rb"".join([rb" (" + _ADDRESSES + rb")"] * 6)
    + rb" (" + _NSTRING + rb") (" + _NSTRING + rb")\)"
)
_FAST_ADDRESS: Final = re.compile(_ADDRESS)


def _nstring(raw: bytes) -> bytes | None:
    if raw[:1] != b'"':
        return None  # NIL
    body = raw[1:-1]
    return QUOTED_UNESCAPE.sub(rb"\1", body) if b"\\" in body else body


# The same address lists come back again and again (From, Sender and Reply-To of one message,
# the same correspondents across a mailbox): the parsed (immutable) tuples are reused, bounded.
_ADDRESS_MEMO: dict[bytes, tuple[Address, ...]] = {}
_MEMO_ENTRIES: Final = 2048
_MEMO_KEY_MAX: Final = 512


def _addresses(raw: bytes) -> tuple[Address, ...]:
    if raw[:1] != b"(":
        return ()  # NIL
    found = _ADDRESS_MEMO.get(raw)
    if found is None:
        found = tuple(Address(name=_nstring(m[1]), route=_nstring(m[2]), mailbox=_nstring(m[3]), host=_nstring(m[4]))
                      for m in _FAST_ADDRESS.finditer(raw))
        if len(raw) <= _MEMO_KEY_MAX:
            if len(_ADDRESS_MEMO) >= _MEMO_ENTRIES:
                _ADDRESS_MEMO.clear()
            _ADDRESS_MEMO[raw] = found
    return found


def _fast_envelope(r: Reader) -> Envelope | None:
    if r.depth + 3 > MAX_DEPTH:
        return None  # the general parser enforces the nesting limit
    m = _FAST_ENVELOPE.match(r.line, r.pos)
    if m is None:
        return None
    r.pos = m.end()
    g = m.groups()
    return Envelope(date=_nstring(g[0]), subject=_nstring(g[1]), from_=_addresses(g[2]), sender=_addresses(g[3]),
                    reply_to=_addresses(g[4]), to=_addresses(g[5]), cc=_addresses(g[6]), bcc=_addresses(g[7]),
                    in_reply_to=_nstring(g[8]), message_id=_nstring(g[9]))


def parse_envelope(r: Reader, *, fast: bool = True) -> Envelope:
    """``envelope`` (RFC 3501 §9): ten fields in a list.

    ``fast``: try the one-expression path first (the result is the same; tests compare both).
    """
    if fast and (found := _fast_envelope(r)) is not None:
        return found
    r.open_list()
    date = r.nstring()
    r.sp()
    subject = r.nstring()
    lists: list[tuple[Address, ...]] = []
    for _ in range(6):
        r.sp()
        lists.append(_address_list(r))
    r.sp()
    in_reply_to = r.nstring()
    r.sp()
    message_id = r.nstring()
    if not r.close_list():
        r.fail("')' closing the envelope")
    return Envelope(
        date=date,
        subject=subject,
        from_=lists[0],
        sender=lists[1],
        reply_to=lists[2],
        to=lists[3],
        cc=lists[4],
        bcc=lists[5],
        in_reply_to=in_reply_to,
        message_id=message_id,
    )


def _address_list(r: Reader) -> tuple[Address, ...]:
    # env-from = "(" 1*address ")" / nil  -- addresses follow each other without SP (tolerated).
    if r.nil():
        return ()
    r.open_list()
    out: list[Address] = []
    while not r.close_list():
        r.skip(b" ")
        r.open_list()
        name = r.nstring()
        r.sp()
        route = r.nstring()
        r.sp()
        mailbox = r.nstring()
        r.sp()
        host = r.nstring()
        if not r.close_list():
            r.fail("')' closing an address")
        out.append(Address(name=name, route=route, mailbox=mailbox, host=host))
    return tuple(out)


def parse_body(r: Reader) -> BodyStructure:
    """``body = "(" (body-type-1part / body-type-mpart) ")"`` (RFC 3501 §9)."""
    r.open_list()
    if r.peek() == b"(":
        return _multipart(r)
    return _single_part(r)


def _multipart(r: Reader) -> MultiPart:
    # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
    parts: list[BodyStructure] = []
    while r.peek() == b"(":
        parts.append(parse_body(r))
        r.skip(b" ")  # RFC 3501 puts no SP between parts; some servers do.
    subtype = _keyword(r)
    ext = _extensions(r)
    return MultiPart(
        parts=tuple(parts),
        subtype=subtype,
        params=_params(ext[0]) if ext else (),
        disposition=_disposition(ext[1]) if len(ext) > 1 else None,
        language=_language(ext[2]) if len(ext) > 2 else None,
        location=_bytes_or_none(ext[3]) if len(ext) > 3 else None,
        extension=ext[4:],
    )


def _single_part(r: Reader) -> SinglePart:
    # body-type-1part = (body-type-basic / body-type-msg / body-type-text) [SP body-ext-1part]
    media_type = _keyword(r)
    r.sp()
    subtype = _keyword(r)
    r.sp()
    params = _params(r.value())
    r.sp()
    body_id = r.nstring()
    r.sp()
    description = r.nstring()
    r.sp()
    encoding = _keyword(r)
    r.sp()
    size = r.number()
    lines: int | None = None
    envelope: Envelope | None = None
    body: BodyStructure | None = None
    if media_type == "message" and subtype in ("rfc822", "global") and r.peek() == b" " and r.peek2() == b"(":
        # body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
        r.sp()
        envelope = parse_envelope(r)
        r.sp()
        body = parse_body(r)
        r.sp()
        lines = r.number()
    elif media_type == "text":
        r.sp()
        lines = r.number()
    ext = _extensions(r)
    return SinglePart(
        type=media_type,
        subtype=subtype,
        params=params,
        id=body_id,
        description=description,
        encoding=encoding,
        size=size,
        lines=lines,
        envelope=envelope,
        body=body,
        md5=_bytes_or_none(ext[0]) if ext else None,
        disposition=_disposition(ext[1]) if len(ext) > 1 else None,
        language=_language(ext[2]) if len(ext) > 2 else None,
        location=_bytes_or_none(ext[3]) if len(ext) > 3 else None,
        extension=ext[4:],
    )


def _keyword(r: Reader) -> str:
    # media types, subtypes and encodings are strings (RFC 3501 §9 media-basic, body-fld-enc);
    # servers also send NIL or atoms. Lower-cased: MIME types are case-insensitive (RFC 2045 §5.1).
    value = r.value()
    if value is None:
        return ""
    if not isinstance(value, bytes):
        r.fail("media type string")
    return value.decode("ascii", "replace").lower()


def _extensions(r: Reader) -> tuple[Value, ...]:
    items: list[Value] = []
    while not r.close_list():
        r.sp()
        items.append(r.value())
    return tuple(items)


def _bytes_or_none(value: Value) -> bytes | None:
    return value if isinstance(value, bytes) else None


def _params(value: Value) -> tuple[tuple[str, bytes], ...]:
    # body-fld-param = "(" string SP string *(SP string SP string) ")" / nil
    if not isinstance(value, tuple):
        return ()
    pairs = [v for v in value if isinstance(v, bytes)]
    return tuple((pairs[i].decode("ascii", "replace").lower(), pairs[i + 1]) for i in range(0, len(pairs) - 1, 2))


def _disposition(value: Value) -> Disposition | None:
    # body-fld-dsp = "(" string SP body-fld-param ")" / nil
    if not isinstance(value, tuple) or not value or not isinstance(value[0], bytes):
        return None
    params = _params(value[1]) if len(value) > 1 else ()
    return Disposition(type=value[0].decode("ascii", "replace").lower(), params=params)


def _language(value: Value) -> tuple[bytes, ...] | None:
    # body-fld-lang = nstring / "(" string *(SP string) ")"
    if isinstance(value, bytes):
        return (value,)
    if isinstance(value, tuple):
        return tuple(v for v in value if isinstance(v, bytes))
    return None
