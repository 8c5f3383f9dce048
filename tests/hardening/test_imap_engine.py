"""Issue 13, IMAP engine: fuzzing findings stay fixed (typed errors, nz-number ranges)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.errors import MssanteError, RemoteProtocolError
from mssante.wire.imap import ClientState
from mssante.wire.imap._parser import parse_uid_set
from tests._hypothesis import examples
from tests.wire.test_imap_properties import drain
from tests.wire.test_imap_properties import ready as selected

NZ_MAX = 4294967295


@pytest.mark.parametrize(
    "response",
    [
        b"* 1 FETCH (B[\x89]\r\n",  # issue 13: UnicodeDecodeError escaped next_event()
        b'* 1 FETCH (BODY[HEADER.FIELDS ("\xc3\xa9")] NIL)\r\n',
        b"* VANISHED (EARLIER) 33030303030303030300:3\r\n",  # issue 13: len() raised OverflowError
        b"* VANISHED 4294967296\r\n",
        b"* OK [COPYUID 1 33030303030303030300:3 1:2] moved\r\n",
        b"* OK [COPYUID 4294967296 1 2] moved\r\n",
        b"* OK [APPENDUID 1 1:4294967296] appended\r\n",
        b"* OK [APPENDUID 0 1] appended\r\n",
        b'* ESEARCH (TAG "a") UID ALL 1:99999999999\r\n',
        b"* 1 FETCH (UID 0)\r\n",
        b"* 1 FETCH (UID 4294967296)\r\n",
        b"* 0 FETCH (FLAGS ())\r\n",
        b"* 4294967296 EXPUNGE\r\n",
        b"* SEARCH 1 0\r\n",
    ],
)
def test_out_of_grammar_responses_give_the_typed_protocol_error(response: bytes) -> None:
    conn = selected()
    conn.receive_data(response)
    with pytest.raises(RemoteProtocolError) as info:
        drain(conn)
    assert info.value.fault == "peer"
    assert conn.state is ClientState.ERROR


def test_the_largest_uid_range_is_accepted_and_measurable() -> None:
    conn = selected()
    conn.receive_data(b"* VANISHED (EARLIER) 4294967295:1\r\n* OK [COPYUID 4294967295 1:4294967295 5] x\r\n")
    vanished, status = drain(conn)
    assert len(vanished.uids) == NZ_MAX  # type: ignore[union-attr]
    assert len(status.code.data.source) == NZ_MAX  # type: ignore[union-attr]


UIDS = st.integers(min_value=0, max_value=10**25)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(UIDS, st.one_of(st.none(), UIDS)), min_size=1, max_size=8))
def test_uid_sets_are_parsed_within_range_or_refused(parts: list[tuple[int, int | None]]) -> None:
    raw = b",".join(b"%d" % a if b is None else b"%d:%d" % (a, b) for a, b in parts)
    in_range = all(1 <= n <= NZ_MAX for a, b in parts for n in (a, a if b is None else b))
    try:
        uids = parse_uid_set(raw)
    except ValueError:
        assert not in_range
        return
    assert in_range
    assert len(uids) == sum(abs((a if b is None else b) - a) + 1 for a, b in parts)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.sampled_from([b"* 1 FETCH (", b"* VANISHED (EARLIER) ", b"* OK [COPYUID 1 ", b"* OK [APPENDUID ", b"* SEARCH "]),
    st.binary(max_size=40),
)
def test_fetch_and_uid_responses_raise_only_typed_errors(head: bytes, tail: bytes) -> None:
    conn = selected()
    try:
        conn.receive_data(head + tail + b"\r\n")
        for event in drain(conn):
            for uids in (getattr(event, "uids", None),):
                if uids is not None:
                    len(uids)
    except MssanteError:
        assert conn.state is ClientState.ERROR
