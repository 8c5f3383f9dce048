"""Server-side reading of one IMAP command (RFC 3501 §9 grammar), without I/O.

The connection collects a whole command (its line and literals, ``{n}`` / ``{n+}`` followed by
the octets) and hands it to :class:`Reader`; the session's handlers pull arguments from it.
Anything outside the grammar raises :class:`BadCommand`, answered ``BAD`` with its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from mssante.errors import MssanteError, RemoteProtocolError
from mssante.wire.imap import decode_mutf7

__all__ = ["BadCommand", "FetchAtt", "Reader", "SeqSet"]

_ATOM: Final = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_ASTRING: Final = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\]+")
_LIST_MAILBOX: Final = re.compile(rb"[^\x00-\x20\x7f-\xff(){\"\\]+")
_TAG: Final = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\+]+")
_NUMBER: Final = re.compile(rb"\d{1,10}")
_SEQ: Final = re.compile(rb"(?:\d+|\*)(?::(?:\d+|\*))?(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*")
_LITERAL: Final = re.compile(rb"~?\{(\d{1,10})(\+?)\}\r\n")
_FLAG: Final = re.compile(rb"\\?[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_DATE: Final = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_DATE_TIME: Final = re.compile(rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-]\d{4})"')
_MONTHS: Final = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_SECTION: Final = re.compile(rb"\[((?:\d+\.)*\d+)?\.?(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)?", re.I)
_PARTIAL: Final = re.compile(rb"<(\d{1,10})\.(\d{1,10})>")


class BadCommand(RemoteProtocolError):
    """The command does not follow the grammar (answered ``BAD``, RFC 3501 §7.1.3)."""

    error = "imap_bad_command"


@dataclass(frozen=True, slots=True)
class SeqSet:
    """A sequence set: ranges with None for ``*`` (RFC 3501 §9 ``sequence-set``)."""

    ranges: tuple[tuple[int | None, int | None], ...]

    def resolve(self, largest: int) -> set[int]:
        """The numbers it names that exist when ``*`` is ``largest`` (never more than ``largest``)."""
        out: set[int] = set()
        for lo, hi in self.ranges:
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            if a > b:
                a, b = b, a
            out.update(range(max(a, 1), min(b, largest) + 1))
        return out

    def max_number(self, largest: int) -> int:
        """The largest number it names (``*`` = ``largest``)."""
        return max((largest if x is None else x) for r in self.ranges for x in r)

    def has_star(self) -> bool:
        """True if ``*`` appears."""
        return any(x is None for r in self.ranges for x in r)


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One FETCH data item: ``name`` (ENVELOPE, BODY, BINARY...), its section and partial range."""

    name: str
    peek: bool = False
    section: tuple[int, ...] | None = None  # None: no [section]
    text: bytes = b""  # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME or b""
    fields: tuple[bytes, ...] = ()
    partial: tuple[int, int] | None = None

    def key(self) -> bytes:
        """The item name in the response (RFC 3501 §7.4.2: BODY[...]<origin>, no PEEK)."""
        if self.section is None:
            return self.name.encode()
        spec = ".".join(str(n) for n in self.section).encode()
        if self.text:
            spec = spec + b"." + self.text if spec else self.text
        if self.fields:
            spec += b" (" + b" ".join(f.upper() for f in self.fields) + b")"
        origin = b"<%d>" % self.partial[0] if self.partial else b""
        return self.name.encode() + b"[" + spec + b"]" + origin


_MACROS: Final = {
    b"ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    b"FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    b"FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE: Final = frozenset({b"ENVELOPE", b"FLAGS", b"INTERNALDATE", b"RFC822", b"RFC822.HEADER", b"RFC822.SIZE",
                            b"RFC822.TEXT", b"BODYSTRUCTURE", b"UID", b"BODY", b"EMAILID", b"THREADID"})


class Reader:
    """A cursor over one complete command (line and inline literals)."""

    def __init__(self, data: bytes) -> None:
        """Wrap ``data`` (the command without its final CRLF is fine); never raises."""
        if data.endswith(b"\r\n"):  # exactly one line end: a literal may end with CRLF too
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> BadCommand:
        """A :class:`BadCommand` saying what was expected here (never raises)."""
        return BadCommand(f"{what} expected at octet {self.pos}", requirement="RFC 3501 §9")

    def at_end(self) -> bool:
        """True when the command is consumed."""
        return self.pos >= len(self.data)

    def end(self) -> None:
        """Require the end of the command.

        Raises:
            BadCommand: extra arguments.
        """
        if not self.at_end():
            raise self.fail("end of command")

    def peek(self, text: bytes) -> bool:
        """True if the next octets are ``text`` (case-insensitive)."""
        return self.data[self.pos:self.pos + len(text)].upper() == text.upper()

    def take(self, text: bytes) -> bool:
        """Consume ``text`` if it is next (case-insensitive); return whether it was."""
        if self.peek(text):
            self.pos += len(text)
            return True
        return False

    def expect(self, text: bytes) -> None:
        """Consume ``text``.

        Raises:
            BadCommand: it is not next.
        """
        if not self.take(text):
            raise self.fail(repr(text.decode()))

    def sp(self) -> None:
        """Consume one space.

        Raises:
            BadCommand: no space here.
        """
        self.expect(b" ")

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        match = pattern.match(self.data, self.pos)
        if match is None:
            raise self.fail(what)
        self.pos = match.end()
        return match.group(0)

    def tag(self) -> bytes:
        """The command tag.

        Raises:
            BadCommand: no valid tag.
        """
        return self._match(_TAG, "tag")

    def atom(self) -> bytes:
        """An atom.

        Raises:
            BadCommand: no atom here.
        """
        return self._match(_ATOM, "atom")

    def number(self) -> int:
        """A number (RFC 3501 §9 ``number``).

        Raises:
            BadCommand: no number here.
        """
        return int(self._match(_NUMBER, "number"))

    def string(self) -> bytes:
        """A quoted string or a literal.

        Raises:
            BadCommand: neither is here, or a quoted string is not terminated.
        """
        if self.peek(b'"'):
            out = bytearray()
            pos = self.pos + 1
            while pos < len(self.data):
                c = self.data[pos]
                if c == 0x5C and pos + 1 < len(self.data):
                    out.append(self.data[pos + 1])
                    pos += 2
                elif c == 0x22:
                    self.pos = pos + 1
                    return bytes(out)
                elif c in (0x0D, 0x0A):
                    break
                else:
                    out.append(c)
                    pos += 1
            raise self.fail("closing quote")
        match = _LITERAL.match(self.data, self.pos)
        if match is None:
            raise self.fail("string")
        start = match.end()
        size = int(match.group(1))
        if start + size > len(self.data):
            raise self.fail("literal data")
        self.pos = start + size
        return self.data[start:start + size]

    def astring(self) -> bytes:
        """An atom (``]`` allowed) or a string.

        Raises:
            BadCommand: none is here.
        """
        if self.peek(b'"') or self.peek(b"{") or self.peek(b"~{"):
            return self.string()
        return self._match(_ASTRING, "astring")

    def mailbox(self) -> str:
        """A mailbox name, modified UTF-7 decoded, ``INBOX`` in any case made ``INBOX`` (RFC 3501 §5.1).

        Raises:
            BadCommand: no name, or invalid modified UTF-7 (RFC 3501 §5.1.3).
        """
        raw = self.astring()
        try:
            name = decode_mutf7(raw)
        except (MssanteError, ValueError, UnicodeError):
            raise BadCommand("invalid mailbox name (RFC 3501 §5.1.3)") from None
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        """A LIST pattern (``%`` and ``*`` allowed).

        Raises:
            BadCommand: no pattern or invalid modified UTF-7.
        """
        quoted = self.peek(b'"') or self.peek(b"{")
        raw = self.string() if quoted else self._match(_LIST_MAILBOX, "list-mailbox")
        try:
            return decode_mutf7(raw)
        except (MssanteError, ValueError, UnicodeError):
            raise BadCommand("invalid mailbox name (RFC 3501 §5.1.3)") from None

    def seq_set(self) -> SeqSet:
        """A sequence set (``$`` of RFC 5182 is not supported).

        Raises:
            BadCommand: malformed, or a zero.
        """
        text = self._match(_SEQ, "sequence set")
        ranges = []
        for item in text.split(b","):
            lo, _, hi = item.partition(b":")
            a = None if lo == b"*" else int(lo)
            b = a if not hi else (None if hi == b"*" else int(hi))
            if a == 0 or b == 0:
                raise BadCommand("invalid message number 0 (RFC 3501 §9 nz-number)")
            ranges.append((a, b))
        return SeqSet(tuple(ranges))

    def flag(self) -> str:
        """One flag or keyword.

        Raises:
            BadCommand: no flag here.
        """
        return self._match(_FLAG, "flag").decode("ascii")

    def flag_list(self, *, bare: bool = False) -> list[str]:
        """``(flag ...)``, or with ``bare`` also ``flag flag`` up to the end (STORE, RFC 3501 §9).

        Raises:
            BadCommand: malformed list.
        """
        flags: list[str] = []
        if self.take(b"("):
            while not self.take(b")"):
                if flags:
                    self.sp()
                flags.append(self.flag())
            return flags
        if not bare:
            raise self.fail("flag list")
        flags.append(self.flag())
        while self.take(b" "):
            flags.append(self.flag())
        return flags

    def date(self) -> datetime:
        """A ``date`` (``d-Mon-yyyy``, optionally quoted), as midnight, naive.

        Raises:
            BadCommand: malformed date.
        """
        quoted = self.take(b'"')
        match = _DATE.match(self.data, self.pos)
        if match is None or match.group(2).lower().decode() not in _MONTHS:
            raise self.fail("date")
        self.pos = match.end()
        if quoted:
            self.expect(b'"')
        try:
            return datetime(int(match.group(3)), _MONTHS.index(match.group(2).lower().decode()) + 1,
                            int(match.group(1)))
        except ValueError:
            raise self.fail("valid date") from None

    def date_time(self) -> datetime:
        """A quoted ``date-time`` (APPEND), aware.

        Raises:
            BadCommand: malformed.
        """
        match = _DATE_TIME.match(self.data, self.pos)
        if match is None:
            raise self.fail("date-time")
        self.pos = match.end()
        try:
            return datetime.strptime(
                match.group(0).decode().strip('"').strip(), "%d-%b-%Y %H:%M:%S %z")
        except ValueError:
            raise self.fail("valid date-time") from None

    def fetch_atts(self) -> list[FetchAtt]:
        """A FETCH item list, a single item or a macro (ALL, FAST, FULL).

        Raises:
            BadCommand: unknown item or malformed section.
        """
        for macro, names in _MACROS.items():
            if self.peek(macro) and (self.pos + len(macro) == len(self.data)
                                     or self.data[self.pos + len(macro):][:1] in (b" ", b")")):
                self.pos += len(macro)
                return [FetchAtt(n) for n in names]
        if not self.take(b"("):
            return [self.fetch_att()]
        atts = [self.fetch_att()]
        while not self.take(b")"):
            self.sp()
            atts.append(self.fetch_att())
        return atts

    def fetch_att(self) -> FetchAtt:
        """One FETCH item.

        Raises:
            BadCommand: unknown item or malformed section.
        """
        match = re.compile(rb"[A-Za-z0-9.]+").match(self.data, self.pos)
        if match is None:
            raise self.fail("fetch item")
        name = match.group(0).upper()
        self.pos = match.end()
        if name in (b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE") and self.peek(b"["):
            return self._section(name)
        if name not in _SIMPLE:
            raise BadCommand(f"unknown FETCH item {name.decode()!r}", requirement="RFC 3501 §6.4.5")
        return FetchAtt(name.decode())

    def _section(self, name: bytes) -> FetchAtt:
        match = _SECTION.match(self.data, self.pos)
        assert match is not None
        self.pos = match.end()
        path = tuple(int(n) for n in match.group(1).split(b".")) if match.group(1) else ()
        if any(n == 0 for n in path):
            raise BadCommand("section part numbers start at 1 (RFC 3501 §6.4.5)")
        text = (match.group(2) or b"").upper()
        binary = name.startswith(b"BINARY")
        if binary and text:
            raise BadCommand("BINARY takes a part number only (RFC 3516 §4.2)")
        if text == b"MIME" and not path:
            raise BadCommand("MIME needs a part number (RFC 3501 §6.4.5)")
        fields: list[bytes] = []
        if text.startswith(b"HEADER.FIELDS"):
            self.sp()
            self.expect(b"(")
            fields.append(self.astring())
            while self.take(b" "):
                fields.append(self.astring())
            self.expect(b")")
        self.expect(b"]")
        partial = None
        match = _PARTIAL.match(self.data, self.pos)
        if match is not None and name != b"BINARY.SIZE":
            self.pos = match.end()
            partial = (int(match.group(1)), int(match.group(2)))
            if partial[1] == 0:
                raise BadCommand("partial length must be > 0")
        base = name.split(b".")[0] if name != b"BINARY.SIZE" else name
        return FetchAtt(base.decode(), peek=name.endswith(b".PEEK"), section=path, text=text,
                        fields=tuple(fields), partial=partial)
