"""A small, safe builder for SEARCH criteria (RFC 3501 §6.4.4).

Keys are built from named constructors, never from caller text pasted into the command: every
string goes through the serializer (atom, quoted or literal), so a subject holding ``") OR ALL``
or CRLF cannot change the command. ``a & b`` is AND (juxtaposition), ``a | b`` is OR,
``~a`` is NOT.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from mssante.errors import LocalProtocolError

from ._abnf import ATOM
from ._serializer import Part, Str, UidsLike, check_string, date_text, sequence_set

__all__ = ["SearchKey"]

_SYSTEM_FLAG_KEYS: Final = frozenset(
    {"ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN", "UNANSWERED", "UNDELETED",
     "UNDRAFT", "UNFLAGGED", "UNSEEN"}
)  # fmt: skip
_STRING_KEYS: Final = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_DATE_KEYS: Final = frozenset({"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"})


@dataclass(frozen=True, slots=True)
class SearchKey:
    """One or more search keys, ready for :class:`UidSearch`. Build with the class methods."""

    parts: tuple[Part, ...]
    compound: bool = False  # several keys side by side: parenthesize under OR / NOT

    def __and__(self, other: SearchKey) -> SearchKey:
        return SearchKey((*self.parts, b" ", *other.parts), compound=True)

    def __or__(self, other: SearchKey) -> SearchKey:
        # search-key = ... / "OR" SP search-key SP search-key / "(" search-key *(SP search-key) ")"
        return SearchKey((b"OR ", *self._group(), b" ", *other._group()))

    def __invert__(self) -> SearchKey:
        return SearchKey((b"NOT ", *self._group()))

    def _group(self) -> tuple[Part, ...]:
        return (b"(", *self.parts, b")") if self.compound else self.parts

    def is_ascii(self) -> bool:
        """True if every string argument is US-ASCII (no ``CHARSET`` needed)."""
        return all(not isinstance(p, Str) or p.value.isascii() for p in self.parts)

    @classmethod
    def flag(cls, name: str) -> SearchKey:
        """A flag key without argument: ``ALL``, ``SEEN``, ``UNSEEN``, ``DELETED``...

        Raises:
            LocalProtocolError: not one of the RFC 3501 §6.4.4 flag keys.
        """
        key = name.upper()
        if key not in _SYSTEM_FLAG_KEYS:
            raise LocalProtocolError(f"unknown search key {name!r}")
        return cls((key.encode(),))

    @classmethod
    def all(cls) -> SearchKey:
        """``ALL``."""
        return cls.flag("ALL")

    @classmethod
    def unseen(cls) -> SearchKey:
        """``UNSEEN``."""
        return cls.flag("UNSEEN")

    @classmethod
    def text(cls, key: str, value: str) -> SearchKey:
        """A string key: ``FROM``, ``TO``, ``CC``, ``BCC``, ``SUBJECT``, ``BODY``, ``TEXT``.

        Raises:
            LocalProtocolError: unknown key, or ``value`` holds NUL.
        """
        name = key.upper()
        if name not in _STRING_KEYS:
            raise LocalProtocolError(f"unknown string search key {key!r}")
        raw = value.encode("utf-8")
        check_string(raw)
        return cls((name.encode() + b" ", Str(raw, astring=True)))

    @classmethod
    def header(cls, field: str, value: str) -> SearchKey:
        """``HEADER field-name string`` (RFC 3501 §6.4.4).

        Raises:
            LocalProtocolError: ``field`` is not an atom, or a NUL is present.
        """
        raw_field = field.encode("ascii", "replace")
        if ATOM.fullmatch(raw_field) is None:
            raise LocalProtocolError("header field name must be an atom")
        raw = value.encode("utf-8")
        check_string(raw)
        return cls((b"HEADER ", Str(raw_field), b" ", Str(raw, astring=True)))

    @classmethod
    def keyword(cls, flag: str, present: bool = True) -> SearchKey:
        """``KEYWORD flag`` / ``UNKEYWORD flag``.

        Raises:
            LocalProtocolError: ``flag`` is not an atom.
        """
        raw = flag.encode("ascii", "replace")
        if ATOM.fullmatch(raw) is None:
            raise LocalProtocolError("keyword must be an atom")
        return cls(((b"KEYWORD " if present else b"UNKEYWORD ") + raw,))

    @classmethod
    def date(cls, key: str, day: dt.date) -> SearchKey:
        """A date key: ``SINCE``, ``BEFORE``, ``ON``, ``SENTSINCE``, ``SENTBEFORE``, ``SENTON``.

        Raises:
            LocalProtocolError: unknown key.
        """
        name = key.upper()
        if name not in _DATE_KEYS:
            raise LocalProtocolError(f"unknown date search key {key!r}")
        return cls((name.encode() + b" " + date_text(day),))

    @classmethod
    def size(cls, larger: int | None = None, smaller: int | None = None) -> SearchKey:
        """``LARGER n`` and/or ``SMALLER n``.

        Raises:
            LocalProtocolError: neither given, or negative.
        """
        parts: list[bytes] = []
        for name, value in ((b"LARGER", larger), (b"SMALLER", smaller)):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise LocalProtocolError("size must be a non-negative int")
                parts.append(name + b" %d" % value)
        if not parts:
            raise LocalProtocolError("size() needs larger or smaller")
        return cls((b" ".join(parts),))

    @classmethod
    def uid(cls, uids: UidsLike) -> SearchKey:
        """``UID sequence-set``.

        Raises:
            LocalProtocolError: not a valid sequence-set.
        """
        return cls((b"UID " + sequence_set(uids),))
