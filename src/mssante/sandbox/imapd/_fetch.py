"""FETCH data items and SEARCH matching over stored messages (RFC 3501 §6.4.4, §6.4.5, §7.4.2; RFC 3516)."""

from __future__ import annotations

import base64
import binascii
import email.header
import email.utils
import quopri
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from mssante.sandbox.imapd._command import FetchAtt
from mssante.sandbox.imapd._mime import Part, fetch_section, quote, render_body, render_envelope
from mssante.sandbox.imapd._store import Message

__all__ = ["Undecodable", "body_text", "date_text", "decoded_header", "flag_list", "item", "sent_date"]

_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def date_text(when: datetime) -> bytes:
    """An INTERNALDATE ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` in the message's own zone (locale-free)."""
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (f'"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} {when.hour:02d}:{when.minute:02d}:'
            f'{when.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"').encode()


def flag_list(flags: set[str]) -> bytes:
    """``(\\Seen $MDNSent)``: system flags first, then keywords, sorted (never raises)."""
    ordered = sorted(flags, key=lambda f: (not f.startswith("\\"), f.lower()))
    return b"(" + " ".join(ordered).encode("ascii", "replace") + b")"


class Undecodable(Exception):
    """BINARY cannot decode a part: ``code`` is UNKNOWN-CTE (RFC 3516 §4.3) or PARSE (bad content)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _decode_cte(part: Part, data: bytes) -> bytes | None:
    cte = (part.get(b"content-transfer-encoding") or b"7bit").strip().lower()
    if cte == b"base64":
        try:
            return base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise Undecodable("PARSE") from None
    if cte == b"quoted-printable":
        return quopri.decodestring(data)
    if cte in (b"7bit", b"8bit", b"binary"):
        return data
    return None


def _binary_part(root: Part, path: tuple[int, ...]) -> tuple[Part, bytes] | None:
    part = root
    for number in path:
        if part.is_message and part.message is not None:
            part = part.message
        if part.multipart:
            if not 0 < number <= len(part.children):
                return None
            part = part.children[number - 1]
        elif number != 1:
            return None
    return part, part.body


def item(msg: Message, att: FetchAtt) -> bytes | None:
    """``NAME value`` of one FETCH item (None for an unknown item name).

    Raises:
        Undecodable: BINARY of a part whose transfer encoding is unknown or whose content is broken.
    """
    name = att.name
    if att.section is None:
        if name == "UID":
            return b"UID %d" % msg.uid
        if name == "FLAGS":
            return b"FLAGS " + flag_list(msg.flags)
        if name == "INTERNALDATE":
            return b"INTERNALDATE " + date_text(msg.internal_date)
        if name == "RFC822.SIZE":
            return b"RFC822.SIZE %d" % len(msg.raw)
        if name in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
            cached = msg.rendered.get(name)
            if cached is None:
                cached = msg.rendered[name] = (
                    render_envelope(msg.parsed) if name == "ENVELOPE"
                    else render_body(msg.parsed, extensible=name == "BODYSTRUCTURE"))
            return name.encode() + b" " + cached
        if name == "RFC822":
            return b"RFC822 " + quote(msg.raw) if msg.raw else b'RFC822 ""'
        if name == "RFC822.HEADER":
            return b"RFC822.HEADER " + _literal(msg.parsed.header)
        if name == "RFC822.TEXT":
            return b"RFC822.TEXT " + _literal(msg.parsed.body)
        return None
    if name in ("BINARY", "BINARY.SIZE"):
        found = _binary_part(msg.parsed, att.section)
        if found is None:
            return att.key() + b" NIL"
        decoded = _decode_cte(*found)
        if decoded is None:
            raise Undecodable("UNKNOWN-CTE")
        if name == "BINARY.SIZE":
            return att.key() + b" %d" % len(decoded)
        data = _partial(decoded, att)
        if b"\x00" in data:
            return att.key() + b" ~{%d}\r\n" % len(data) + data
        return att.key() + b" " + _literal(data)
    section = fetch_section(msg.parsed, list(att.section), att.text, list(att.fields))
    return att.key() + b" " + _literal(_partial(section or b"", att))  # a missing part is "" (as Dovecot)


def _partial(data: bytes, att: FetchAtt) -> bytes:
    if att.partial is None:
        return data
    origin, length = att.partial
    return data[origin:origin + length]


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


# ------------------------------------------------------------------ SEARCH helpers

def decoded_header(part: Part, name: bytes) -> str | None:
    """The header's value with RFC 2047 words decoded (lenient), or None if absent."""
    value = part.get(name)
    if value is None:
        return None
    text = value.decode("utf-8", "replace")
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        return text


def sent_date(part: Part) -> datetime:
    """The Date header's date (its own zone), the epoch when absent or unparseable (as Dovecot)."""
    value = part.get(b"date")
    if value is None:
        return _EPOCH
    try:
        parsed = email.utils.parsedate_to_datetime(value.decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError):
        return _EPOCH
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def body_text(part: Part, on_leaf: Callable[[Part, bytes], None]) -> None:
    """Call ``on_leaf(part, decoded octets)`` for every text leaf of the tree (never raises)."""
    if part.multipart:
        for child in part.children:
            body_text(child, on_leaf)
        return
    if part.is_message and part.message is not None:
        body_text(part.message, on_leaf)
        return
    if part.ctype[0].lower() == b"text":
        try:
            decoded = _decode_cte(part, part.body)
        except Undecodable:
            decoded = part.body  # search the raw text of a broken part
        if decoded is not None:
            on_leaf(part, decoded)
