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


# -- the one-expression ENVELOPE path against the general parser ----------------------------------

_TEXT = st.binary(max_size=12).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00"))


def _nstring_wire(value: bytes | None, nil: bytes) -> bytes:
    if value is None:
        return nil
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


_NILS = st.sampled_from([b"NIL", b"nil", b"Nil"])
_FIELD = st.tuples(st.one_of(st.none(), _TEXT), _NILS).map(lambda t: _nstring_wire(*t))
_ADDRESS_WIRE = st.tuples(_FIELD, _FIELD, _FIELD, _FIELD).map(lambda f: b"(" + b" ".join(f) + b")")
_ADDRESS_LIST = st.one_of(
    _NILS,
    st.tuples(st.lists(_ADDRESS_WIRE, max_size=3), st.booleans()).map(
        lambda t: b"(" + (b" " if t[1] else b"").join(t[0]) + b")"),
)
_ENVELOPE_WIRE = st.tuples(_FIELD, _FIELD, *([_ADDRESS_LIST] * 6), _FIELD, _FIELD).map(
    lambda f: b"(" + b" ".join(f) + b")")


def _both(line: bytes) -> tuple[object, object]:
    from mssante.wire.imap._fetch import _fast_envelope, parse_envelope

    fast_reader, general_reader = _reader(line), _reader(line)
    fast = _fast_envelope(fast_reader)
    try:
        general: object = parse_envelope(general_reader, fast=False)
    except ParseError:
        general = ParseError
    if fast is not None:
        assert fast_reader.pos == general_reader.pos and fast_reader.depth == general_reader.depth == 0
    return fast, general


@given(_ENVELOPE_WIRE, st.binary(max_size=4))
def test_the_fast_envelope_is_the_general_one(wire: bytes, tail: bytes) -> None:
    fast, general = _both(wire + tail)
    assert fast is not None and fast == general


@given(_ENVELOPE_WIRE, st.integers(min_value=0), st.binary(min_size=1, max_size=3))
def test_a_damaged_envelope_is_never_read_differently(wire: bytes, where: int, junk: bytes) -> None:
    at = where % (len(wire) + 1)
    fast, general = _both(wire[:at] + junk + wire[at + 1 :])
    assert fast is None or fast == general  # no match: the general parser decides (and names the error)


_QUOTED_ONE_CHAR_AT_A_TIME = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')  # RFC 3501 §9 as written


_PIECES = st.lists(st.sampled_from([b"a", b"\\", b'"', b"\r", b"\n", b"\x00", b"\xe9", b" ", b"\\\""]), max_size=20)


@given(_PIECES.map(lambda p: b'"' + b"".join(p)), st.binary(max_size=4))
def test_quoted_runs_match_exactly_what_the_grammar_matches(line: bytes, tail: bytes) -> None:
    from mssante.wire.imap._abnf import QUOTED, QUOTED_TOKEN

    text = line + tail
    ours, grammar = QUOTED.match(text), _QUOTED_ONE_CHAR_AT_A_TIME.match(text)
    assert (ours is None) == (grammar is None)
    if ours is not None and grammar is not None:
        assert ours.group(0, 1) == grammar.group(0, 1)
    token = re.compile(QUOTED_TOKEN).match(text)
    assert (token and token.group(0)) == (grammar and grammar.group(0))
