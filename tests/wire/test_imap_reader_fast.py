"""The reader's fast paths (issue 14) say exactly what the general rules say."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from mssante.wire.imap._buffer import Frame
from mssante.wire.imap._reader import ParseError, Reader

_QUOTED_CHAR = st.sampled_from([bytes([c]) for c in range(0x20, 0x7F) if c not in b'"\\'] + [b'\\"', b"\\\\"])
_TOKENS = st.sampled_from([b" ", b"(", b")", b"[", b"]", b"+", b"* ", b"NIL", b"(EARLIER) ", b" UID", b"(MODSEQ "])


def _reader(line: bytes) -> Reader:
    return Reader(Frame(lines=[line]))


@given(st.lists(_QUOTED_CHAR, max_size=40))
def test_quoted_unescapes_as_rfc_3501_says(chars: list[bytes]) -> None:
    inner = b"".join(chars)
    r = _reader(b'"' + inner + b'" rest')
    assert r.quoted() == re.sub(rb"\\(.)", rb"\1", inner)
    assert r.line[r.pos :] == b" rest"


@given(_TOKENS, st.binary(max_size=12))
def test_skip_is_case_insensitive_exact_match(token: bytes, line: bytes) -> None:
    r = _reader(line)
    expected = line[: len(token)].upper() == token.upper()
    assert r.skip(token) is expected
    assert r.pos == (len(token) if expected else 0)


@given(st.binary(max_size=8))
def test_sp_and_close_list_consume_one_octet_or_nothing(line: bytes) -> None:
    r = _reader(line)
    try:
        r.sp()
    except ParseError:
        assert not line.startswith(b" ") and r.pos == 0
    else:
        assert line.startswith(b" ") and r.pos == 1
    r = _reader(line)
    assert r.close_list() is line.startswith(b")")


@given(st.sampled_from([b"NIL", b"nil", b"Nil", b"NILX", b"NI", b"N", b"", b"NIL)", b"NIL "]))
def test_nil_is_the_atom_nil_only(line: bytes) -> None:
    r = _reader(line)
    assert r.nil() is (line[:3].upper() == b"NIL" and line[3:4] in (b"", b")", b" "))
