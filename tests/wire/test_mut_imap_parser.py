"""IMAP response parser edges found by mutation testing (``benchmarks/mutation.py --target wire-imap-parser``).

Each case feeds one server response to a ready :class:`ClientConnection` and checks the event, or the
typed refusal and what it names. Tolerated server quirks (a trailing SP) stay tolerated; UTF-8
mailbox names (RFC 6855) are not decoded as modified UTF-7; names that decode in neither stay readable.
"""

from __future__ import annotations

import pytest

from mssante.errors import RemoteProtocolError
from mssante.wire.imap import (
    ClientConnection,
    ESearchResponse,
    Event,
    ExistsResponse,
    ExpungeResponse,
    FlagsResponse,
    Greeting,
    IdResponse,
    ListResponse,
    RecentResponse,
    SearchResponse,
    StatusResponse,
    UidSet,
    UntaggedStatus,
    VanishedResponse,
    parse_uid_set,
)
from tests.wire.test_imap_properties import drain, ready


def one(data: bytes, conn: ClientConnection | None = None) -> Event:
    conn = conn or ready()
    conn.receive_data(data)
    (event,) = drain(conn)
    return event


def utf8_ready() -> ClientConnection:
    conn = ready()
    one(b"* ENABLED UTF8=ACCEPT\r\n", conn)
    return conn


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"* 3 EXISTS \r\n", ExistsResponse(count=3)),
        (b"* 2 RECENT \r\n", RecentResponse(count=2)),
        (b"* 4 EXPUNGE \r\n", ExpungeResponse(seq=4)),
        (b"* FLAGS (\\Seen) \r\n", FlagsResponse(flags=("\\Seen",))),
        (b"* SEARCH 2 3 \r\n", SearchResponse(ids=(2, 3), modseq=None)),
        (b"* SEARCH \r\n", SearchResponse(ids=(), modseq=None)),
        (b"* SEARCH 2 (MODSEQ 917)\r\n", SearchResponse(ids=(2,), modseq=917)),
    ],
)
def test_tolerated_trailing_space_and_modseq(data: bytes, expected: Event) -> None:
    assert one(data) == expected


def test_status_with_a_trailing_space() -> None:
    event = one(b"* STATUS INBOX (MESSAGES 2 UIDNEXT 9) \r\n")
    assert isinstance(event, StatusResponse) and event.items == (("MESSAGES", 2), ("UIDNEXT", 9))


def test_lsub_is_told_from_list() -> None:
    event = one(b'* LSUB () "/" INBOX\r\n')
    assert isinstance(event, ListResponse) and event.kind == "LSUB"
    assert one(b'* LIST () "/" INBOX\r\n').kind == "LIST"  # type: ignore[union-attr]


def test_mailbox_names_utf8_mutf7_and_neither() -> None:
    # Modified UTF-7 (RFC 3501 §5.1.3) before UTF8=ACCEPT, UTF-8 after (RFC 6855 §3).
    assert one(b'* LIST () "/" &AOk-t&AOk-\r\n').name == "été"  # type: ignore[union-attr]
    conn = utf8_ready()
    listed = one(b'* LIST () "/" &AOk-t&AOk-\r\n', conn)
    assert isinstance(listed, ListResponse) and listed.name == "&AOk-t&AOk-"
    status = one(b"* STATUS &AOk- (MESSAGES 1)\r\n", conn)
    assert isinstance(status, StatusResponse) and status.name == "&AOk-"
    # Octets that are neither: kept readable, raw_name keeps them exactly.
    for c in (ready(), utf8_ready()):
        odd = one(b'* LIST () "/" {3}\r\n\xffa&\r\n', c)
        assert isinstance(odd, ListResponse) and odd.name == "\ufffda&" and odd.raw_name == b"\xffa&"


def test_esearch_correlator_uid_and_sets() -> None:
    plain = one(b"* ESEARCH COUNT 3\r\n")
    assert isinstance(plain, ESearchResponse) and (plain.tag, plain.uid, plain.items) == (None, False, (("COUNT", 3),))
    full = one(b'* ESEARCH (TAG "a1") UID ALL 5:3,7\r\n')
    assert isinstance(full, ESearchResponse) and (full.tag, full.uid) == ("a1", True)
    assert full.items == (("ALL", UidSet(ranges=((3, 5), (7, 7)))),)
    with pytest.raises(RemoteProtocolError, match="expected sequence-set"):
        one(b"* ESEARCH ALL x\r\n")


def test_vanished_earlier_and_bad_sets() -> None:
    assert one(b"* VANISHED (EARLIER) 1:2\r\n") == VanishedResponse(earlier=True, uids=UidSet(ranges=((1, 2),)))
    assert one(b"* VANISHED 4\r\n") == VanishedResponse(earlier=False, uids=UidSet(ranges=((4, 4),)))
    with pytest.raises(RemoteProtocolError, match="expected uid-set"):
        one(b"* VANISHED x\r\n")
    with pytest.raises(ValueError, match="bad uid-set"):
        parse_uid_set(b"1:")


def test_id_values_that_are_not_utf8_stay_readable() -> None:
    event = one(b'* ID ({2}\r\nn\xff {1}\r\n\xff "v" NIL)\r\n')
    assert isinstance(event, IdResponse) and event.params == (("n\ufffd", "\ufffd"), ("v", None))


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"* OK [] x\r\n", "expected response code"),
        (b"* 1 B(D x\r\n", "expected response name"),
        (b"* B(D x\r\n", "expected response name"),
    ],
)
def test_malformed_responses_name_what_was_expected(data: bytes, named: str) -> None:
    with pytest.raises(RemoteProtocolError, match=named):
        one(data)


def test_response_code_data_is_typed() -> None:
    caps = one(b"* OK [CAPABILITY imap4rev1 (idle)] x\r\n")
    assert isinstance(caps, UntaggedStatus) and caps.code is not None
    assert caps.code.data == ("IMAP4REV1", "IDLE")  # capability names are case-insensitive: upper-cased
    charsets = one(b"* NO [BADCHARSET (UTF-8 us-ascii)] x\r\n")
    assert isinstance(charsets, UntaggedStatus) and charsets.code is not None
    assert charsets.code.data == ("UTF-8", "us-ascii")  # charset names are kept as sent
    assert charsets.code.raw == "BADCHARSET (UTF-8 us-ascii)"
    other = one(b"* OK [X-THING \xc3\xa9] x\r\n")
    assert isinstance(other, UntaggedStatus) and other.code is not None and other.code.data == "é"
    assert one(b"* OK [ALERT] x\r\n").code.data is None  # type: ignore[union-attr]


def test_a_preauth_greeting_keeps_its_code_and_text() -> None:
    conn = ClientConnection(tls=True)
    conn.receive_data(b"* PREAUTH [CAPABILITY IMAP4rev1] bienvenue\r\n")
    (greeting,) = drain(conn)
    assert isinstance(greeting, Greeting) and greeting.status == "PREAUTH" and greeting.text == "bienvenue"
    assert greeting.code is not None and greeting.code.name == "CAPABILITY"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"* OK [ALERT x\r\n", "expected ']' closing the response code"),
        (b"a1 MAYBE done\r\n", "expected OK, NO or BAD after a tag"),
        (b"* OK [APPENDUID 1] x\r\n", r"bad \[APPENDUID\] response code data"),
        (b"* OK [COPYUID 1 2] x\r\n", r"bad \[COPYUID\] response code data"),
    ],
)
def test_malformed_codes_and_tags_name_what_was_expected(data: bytes, named: str) -> None:
    with pytest.raises(RemoteProtocolError, match=named):
        one(data)
