"""Turn command arguments into octets: atom, quoted string or literal, chosen per RFC 3501 §4.

A command is a list of *parts*: raw protocol text (already validated ``bytes``), :class:`Str`
(an ``astring``/``string`` argument, encoded as atom, quoted or literal as needed) or
:class:`Lit` (always a literal). :func:`render` returns the command as *chunks*: the octets to
write, cut after each synchronizing literal announcement (RFC 3501 §7.5: the client waits for
``+`` before sending the literal's octets).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from mssante.errors import LocalProtocolError

from ._abnf import ASTRING_ATOM, FLAG, LIST_CHARS, SEQUENCE_SET
from ._types import UidSet
from ._utf7 import encode_mutf7

__all__ = ["Ctx", "Lit", "Part", "Str", "UidsLike", "date_text", "flag_list", "mailbox", "render", "sequence_set"]

_LITERAL_MINUS_MAX: Final = 4096  # RFC 7888 §4: LITERAL- allows non-synchronizing up to 4096 octets
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Ctx:
    """What the server allows, from its capabilities (unknown capabilities count as absent)."""

    literal_plus: bool = False  # RFC 7888 LITERAL+
    literal_minus: bool = False  # RFC 7888 LITERAL-
    utf8: bool = False  # RFC 6855 UTF8=ACCEPT enabled: quoted strings may hold UTF-8
    binary: bool = False  # RFC 3516 BINARY: literal8 in APPEND
    sasl_ir: bool = False  # RFC 4959 SASL-IR
    max_non_sync: int | None = None  # caller's cap on non-synchronizing literals (None: no cap)


@dataclass(frozen=True, slots=True)
class Str:
    """A string argument: ``astring=True`` allows the bare-atom form (RFC 3501 §9 ``astring``)."""

    value: bytes
    astring: bool = True
    list_mailbox: bool = False  # RFC 3501 §9 list-mailbox: "%" and "*" allowed in the atom form


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal argument; ``binary`` uses ``literal8`` (RFC 3516 §4.4)."""

    value: bytes
    binary: bool = False


Part: TypeAlias = "bytes | Str | Lit"
UidsLike: TypeAlias = "str | int | Iterable[int] | UidSet"


def check_string(value: bytes) -> None:
    """Refuse octets that no IMAP string form can carry.

    Raises:
        LocalProtocolError: ``value`` holds NUL: RFC 3501 §4.3 ``CHAR8`` is %x01-ff.
    """
    if b"\x00" in value:
        raise LocalProtocolError("a string argument contains NUL, which IMAP cannot send (RFC 3501 §4.3)")


def _quotable(value: bytes, utf8: bool) -> bool:
    # QUOTED-CHAR: any TEXT-CHAR (CHAR minus CR, LF) except quoted-specials, or "\" quoted-specials.
    # RFC 9051/6855 allow UTF-8 in quoted strings; RFC 3501 does not (8-bit goes as a literal).
    if b"\r" in value or b"\n" in value or len(value) > 1000:
        return False
    return utf8 or value.isascii()


def encode_str(part: Str, utf8: bool) -> bytes | None:
    """The atom or quoted form of ``part``, or ``None`` if it must be sent as a literal."""
    value = part.value
    check_string(value)
    atom = LIST_CHARS if part.list_mailbox else ASTRING_ATOM
    if part.astring and value and atom.fullmatch(value) and value.upper() != b"NIL":
        return value
    if _quotable(value, utf8):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return None


def render(head: bytes, parts: Sequence[Part], ctx: Ctx) -> list[bytes]:
    """Render ``head`` + ``parts`` + CRLF as chunks cut after each synchronizing literal."""
    chunks: list[bytes] = []
    out = bytearray(head)
    for part in parts:
        if isinstance(part, bytes):
            out += part
            continue
        if isinstance(part, Str):
            inline = encode_str(part, ctx.utf8)
            if inline is not None:
                out += inline
                continue
            value, binary = part.value, False
        else:
            value, binary = part.value, part.binary
            if not binary:
                check_string(value)
        # literal = "{" number ["+"] "}" CRLF *CHAR8 (RFC 3501 §4.3, RFC 7888 §3)
        non_sync = (ctx.literal_plus or (ctx.literal_minus and len(value) <= _LITERAL_MINUS_MAX)) and (
            ctx.max_non_sync is None or len(value) <= ctx.max_non_sync
        )
        out += b"~" if binary else b""
        out += b"{%d%s}\r\n" % (len(value), b"+" if non_sync else b"")
        if not non_sync:
            chunks.append(bytes(out))
            out = bytearray()
        out += value
    out += b"\r\n"
    chunks.append(bytes(out))
    return chunks


def mailbox(name: str | bytes, utf8: bool = False) -> Str:
    """A mailbox argument: ``str`` is encoded (RFC 3501 §5.1.3 modified UTF-7, or UTF-8 under
    RFC 6855); ``bytes`` are sent as given (e.g. a ``ListResponse.raw_name``).

    Raises:
        LocalProtocolError: the name cannot be encoded or holds NUL.
    """
    if isinstance(name, bytes):
        raw = name
    else:
        try:
            raw = name.encode("utf-8") if utf8 else encode_mutf7(name)
        except (UnicodeEncodeError, ValueError) as exc:
            raise LocalProtocolError("mailbox name cannot be encoded") from exc
    check_string(raw)
    return Str(raw)


def sequence_set(uids: UidsLike) -> bytes:
    """A ``sequence-set`` (RFC 3501 §9) from ``"1:*"``, ``5``, ``[1, 2, 3]`` or a :class:`UidSet`.

    Raises:
        LocalProtocolError: empty, not positive, or not sequence-set syntax.
    """
    if isinstance(uids, bool):
        raise LocalProtocolError("a UID set cannot be a bool")
    if isinstance(uids, str):
        raw = uids.replace(" ", "").encode("ascii", "replace")
    elif isinstance(uids, (int, UidSet)):
        raw = str(uids).encode()
    else:
        numbers = list(uids)
        if any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
            raise LocalProtocolError("a UID set holds ints only")
        raw = ",".join(str(n) for n in numbers).encode()
    if SEQUENCE_SET.match(raw) is None:
        raise LocalProtocolError("not a valid sequence-set of positive numbers (RFC 3501 §9)")
    return raw


def flag_list(flags: Iterable[str]) -> bytes:
    """``"(" [flag *(SP flag)] ")"`` (RFC 3501 §9); ``\\Recent`` cannot be stored (§2.3.2).

    Raises:
        LocalProtocolError: a flag is not ``\\atom`` or ``atom``.
    """
    encoded: list[bytes] = []
    for flag in flags:
        raw = flag.encode("ascii", "replace")
        if FLAG.fullmatch(raw) is None or raw in (b"\\*", b"?") or raw.lower() == b"\\recent":
            raise LocalProtocolError(f"not a storable IMAP flag: {flag!r} (RFC 3501 §2.3.2)")
        encoded.append(raw)
    return b"(" + b" ".join(encoded) + b")"


def date_text(day: dt.date) -> bytes:
    """``date = date-day "-" date-month "-" date-year`` (RFC 3501 §9), e.g. ``1-Feb-1994``."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year:04d}".encode()


def date_time_text(moment: dt.datetime) -> bytes:
    """``date-time`` (RFC 3501 §9) in quotes; a naive datetime is refused.

    Raises:
        LocalProtocolError: ``moment`` has no timezone.
    """
    offset = moment.utcoffset()
    if offset is None:
        raise LocalProtocolError("APPEND date-time needs a timezone-aware datetime")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    text = f"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year:04d} {moment:%H:%M:%S} {zone}"
    return b'"' + text.encode() + b'"'
