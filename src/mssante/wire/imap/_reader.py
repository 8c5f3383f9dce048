"""Tokenizer over one framed response: atoms, numbers, strings, literals, parenthesized lists.

The parser in ``_parser.py`` and ``_fetch.py`` pulls tokens from a :class:`Reader`. Any mismatch
raises :class:`ParseError`, which the connection turns into ``RemoteProtocolError`` at its single
entry point for peer data (the h11 strategy).
"""

from __future__ import annotations

import re
from typing import Final, NoReturn

from ._abnf import ASTRING_ATOM, ATOM, FLAG, LITERAL_AT_END, QUOTED, QUOTED_UNESCAPE
from ._buffer import Frame
from ._types import StreamedLiteral, Value

__all__ = ["MAX_DEPTH", "ParseError", "Reader"]

# number = 1*DIGIT (RFC 3501 §9); number64 (RFC 9051) fits in 20 digits. Longer runs are refused
# before int() sees them (CPython also refuses int() of more than 4300 digits).
_NUMBER: Final = re.compile(rb"[0-9]{1,20}(?![0-9])")
# Lenient token for generic values: anything up to a delimiter (extension data, unknown responses).
_LOOSE_ATOM: Final = re.compile(rb'[^ ()"{}\x00-\x1f\x7f]+')
# nz-number = digit-nz *DIGIT, an unsigned 32-bit value (RFC 3501 §9 "number", RFC 9051 §9
# "nz-number"): UIDs, UIDVALIDITY and message sequence numbers are never 0 nor above 2^32-1.
NZ_NUMBER_MAX: Final = 4294967295
MAX_DEPTH: Final = 64  # nested lists: BODYSTRUCTURE of a deeply nested MIME tree stays far below


class ParseError(Exception):
    """Internal: the response does not match the grammar at ``Reader.pos``."""


class Reader:
    """Cursor over the lines and literals of a :class:`Frame`."""

    def __init__(self, frame: Frame) -> None:
        self._lines = frame.lines
        self._literals = frame.literals
        self._index = 0
        self._line = frame.lines[0]
        self.pos = 0
        self.depth = 0

    # -- primitives ---------------------------------------------------------------------------
    def fail(self, expected: str) -> NoReturn:
        """Raise :class:`ParseError` naming what was expected here."""
        near = self._line[self.pos : self.pos + 20].decode("ascii", "backslashreplace")
        raise ParseError(f"expected {expected} at {near!r}")

    def peek(self) -> bytes:
        """The next octet (``b""`` at the end of the current line)."""
        return self._line[self.pos : self.pos + 1]

    def peek2(self) -> bytes:
        """The octet after the next one (``b""`` past the end of the current line)."""
        return self._line[self.pos + 1 : self.pos + 2]

    @property
    def line(self) -> bytes:
        """The current line (for regex matching at :attr:`pos`)."""
        return self._line

    def since(self, start: int) -> bytes:
        """The octets of the current line from ``start`` to the cursor."""
        return self._line[start : self.pos]

    def at_end(self) -> bool:
        """True once the whole response is consumed."""
        return self.pos >= len(self._line) and self._index == len(self._lines) - 1

    def skip(self, token: bytes) -> bool:
        """Consume ``token`` (case-insensitive) if it is next; return whether it was.

        ``token`` is given upper-case (``b"NIL"``, ``b"(EARLIER) "``) or has no letter at all.
        """
        end = self.pos + len(token)
        chunk = self._line[self.pos : end]
        # Fast path first: most tokens are punctuation, compared exactly (issue 14: 20 % of the
        # client's time went to parsing FETCH responses, a third of it here).
        if chunk == token or (token.isupper() and chunk.upper() == token):
            self.pos = end
            return True
        return False

    def expect(self, token: bytes) -> None:
        """Consume ``token`` or fail."""
        if not self.skip(token):
            self.fail(repr(token.decode("ascii")))

    def sp(self) -> None:
        """Consume one SP (RFC 3501 §9 ``SP``)."""
        if self._line[self.pos : self.pos + 1] == b" ":
            self.pos += 1
        else:
            self.fail("' '")

    def regex(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        """Consume and return a match of ``pattern`` or fail."""
        match = pattern.match(self._line, self.pos)
        if match is None or match.end() == self.pos:
            self.fail(what)
        self.pos = match.end()
        return match.group(0)

    def end(self) -> None:
        """Fail unless the response is fully consumed."""
        if not self.at_end():
            self.fail("end of response")

    # -- RFC 3501 §4 data formats -------------------------------------------------------------
    def atom(self) -> bytes:
        """``atom`` (RFC 3501 §9)."""
        return self.regex(ATOM, "atom")

    def word(self) -> str:
        """An atom as an upper-case ``str`` (keywords are case-insensitive, RFC 3501 §9)."""
        return self.atom().decode("ascii").upper()

    def number(self) -> int:
        """``number`` / ``number64`` (RFC 3501 §4.2, RFC 9051 §4.2)."""
        return int(self.regex(_NUMBER, "number"))

    def nz_number(self) -> int:
        """``nz-number`` (RFC 3501 §9): 1 to 4294967295, anything else fails."""
        start = self.pos
        value = self.number()
        if not 1 <= value <= NZ_NUMBER_MAX:
            self.pos = start
            self.fail(f"nz-number (1 to {NZ_NUMBER_MAX})")
        return value

    def flag(self) -> str:
        """``flag`` / ``flag-perm`` / ``mbx-list-flag`` (RFC 3501 §9)."""
        return self.regex(FLAG, "flag").decode("ascii")

    def quoted(self) -> bytes:
        """``quoted`` (RFC 3501 §4.3), unescaped."""
        body = self.regex(QUOTED, "quoted string")[1:-1]
        return QUOTED_UNESCAPE.sub(rb"\1", body) if b"\\" in body else body

    def literal(self) -> bytes | StreamedLiteral:
        """``literal`` / ``literal8`` (RFC 3501 §4.3, RFC 3516 §4.2): ``{n}`` ends the line."""
        match = LITERAL_AT_END.match(self._line, self.pos)
        if match is None or self._index >= len(self._literals):
            self.fail("literal")
        value = self._literals[self._index]
        self._index += 1
        self._line = self._lines[self._index]
        self.pos = 0
        return value

    def string(self) -> bytes | StreamedLiteral:
        """``string = quoted / literal``."""
        first = self.peek()
        if first == b'"':
            return self.quoted()
        if self.at_literal():
            return self.literal()
        self.fail("string")

    def at_literal(self) -> bool:
        """True if a ``literal`` or ``literal8`` starts here (``~`` alone is an atom char)."""
        first = self.peek()
        return first == b"{" or (first == b"~" and self.peek2() == b"{")

    def bstring(self) -> bytes:
        """A ``string`` that must be held in memory (not a streamed literal)."""
        value = self.string()
        if isinstance(value, StreamedLiteral):
            self.fail("a string small enough to hold")
        return value

    def nil(self) -> bool:
        """Consume ``NIL`` if next (not followed by an atom char)."""
        line, pos = self._line, self.pos
        if line[pos : pos + 1] in b"Nn" and line[pos : pos + 3].upper() == b"NIL" and not ATOM.match(line, pos + 3):
            self.pos += 3
            return True
        return False

    def nstring(self) -> bytes | None:
        """``nstring = string / nil`` held in memory."""
        return None if self.nil() else self.bstring()

    def nstring_any(self) -> bytes | StreamedLiteral | None:
        """``nstring`` that may be a streamed literal (FETCH body sections)."""
        return None if self.nil() else self.string()

    def astring(self) -> bytes:
        """``astring = 1*ASTRING-CHAR / string``."""
        if self.peek() == b'"' or self.at_literal():
            return self.bstring()
        return self.regex(ASTRING_ATOM, "astring")

    def open_list(self) -> None:
        """Consume ``(`` and count the nesting depth."""
        self.expect(b"(")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"at most {MAX_DEPTH} nested lists")

    def close_list(self) -> bool:
        """Consume ``)`` if next; return whether it was."""
        if self._line[self.pos : self.pos + 1] == b")":
            self.pos += 1
            self.depth -= 1
            return True
        return False

    def value(self) -> Value:
        """Any value, for data this engine does not model (RFC 3501 §4)."""
        first = self.peek()
        if first == b"(":
            self.open_list()
            items: list[Value] = []
            while not self.close_list():
                if items:
                    self.sp()
                items.append(self.value())
            return tuple(items)
        if first == b'"' or self.at_literal():
            return self.string()
        if self.nil():
            return None
        match = _NUMBER.match(self._line, self.pos)
        if match is not None and _LOOSE_ATOM.match(self._line, match.end()) is None:
            self.pos = match.end()
            return int(match.group(0))
        return self.regex(_LOOSE_ATOM, "value")

    def values(self) -> tuple[Value, ...]:
        """Space-separated values up to the end of the response."""
        items: list[Value] = []
        while not self.at_end():
            self.sp()
            items.append(self.value())
        return tuple(items)

    def rest(self) -> bytes:
        """The remainder of the line, which must be the last line of the response."""
        if self._index != len(self._lines) - 1:
            self.fail("end of line before a literal")
        text = self._line[self.pos :]
        self.pos = len(self._line)
        return text
