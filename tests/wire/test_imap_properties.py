"""Hypothesis properties: split invariance, typed errors only, serializer/parser round trips."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.errors import LimitError, RemoteProtocolError
from mssante.wire.imap import (
    NEED_DATA,
    ClientConnection,
    ClientState,
    ConnectionEnded,
    Event,
    FetchResponse,
    ListResponse,
    Login,
    Noop,
    Select,
    UidStore,
)
from tests._hypothesis import examples

SETTINGS = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A blob of server data exercising every response kind, literals included.
BLOB = (
    b"* 18 EXISTS\r\n"
    b"* 2 RECENT\r\n"
    b"* 3 EXPUNGE\r\n"
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
    b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"
    b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
    b"* NO [ALERT] disk almost full {5}\r\n"
    b"* CAPABILITY IMAP4rev1 IDLE LITERAL+ MOVE UIDPLUS\r\n"
    b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
    b'* LIST () "/" {11}\r\nweird"name\r\r\n'
    b'* LIST (\\Noselect) "/" &AMk-l&AOk-ments\r\n'
    b"* STATUS INBOX (MESSAGES 231 UIDNEXT 44292)\r\n"
    b"* SEARCH 2 84 882\r\n"
    b'* ESEARCH (TAG "a1") UID COUNT 3 ALL 1:3\r\n'
    b"* VANISHED (EARLIER) 1:3,5\r\n"
    b'* ID ("name" "x")\r\n'
    b'* 12 FETCH (UID 7 FLAGS (\\Seen) INTERNALDATE " 7-Jul-1996 02:44:25 -0700" RFC822.SIZE 44 '
    b'ENVELOPE ("d" "s" (("n" NIL "m" "h")) NIL NIL NIL NIL NIL NIL "<id>") '
    b'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 3 1)("APPLICATION" "PDF" NIL NIL NIL '
    b'"BASE64" 4 NIL ("ATTACHMENT" ("FILENAME" "a.pdf")) NIL) "MIXED") '
    b"BODY[HEADER.FIELDS (SUBJECT FROM)] {21}\r\nSubject: x\r\nFrom: y\r\n BODY[]<0> {5}\r\nab)\r\n MODSEQ (12))\r\n"
    b"* 13 FETCH (BINARY[1] ~{3}\r\na\x00b)\r\n"
    b"* BYE later\r\n"
    b"a003 OK done\r\n"
)


def drain(conn: ClientConnection) -> list[Event]:
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
        if isinstance(event, ConnectionEnded):
            break
    return events


def ready(**kwargs: object) -> ClientConnection:
    conn = ClientConnection(tls=True, **kwargs)  # type: ignore[arg-type]
    conn.receive_data(b"* OK [CAPABILITY IMAP4rev1] hi\r\n")
    drain(conn)
    conn.send(Login(username="u", password="p"))
    conn.receive_data(b"a001 OK [CAPABILITY IMAP4rev1 IDLE] in\r\n")
    drain(conn)
    conn.send(Select(mailbox="INBOX"))
    conn.receive_data(b"a002 OK [READ-WRITE] in\r\n")
    drain(conn)
    conn.send(Noop())
    return conn


def feed_in_pieces(conn: ClientConnection, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        conn.receive_data(data[start:cut]) if cut > start else None
        events.extend(drain(conn))
        start = max(start, cut)
    return events


def merge_chunks(events: list[Event]) -> list[Event]:
    """Streamed literal chunks depend on the splits; their concatenation does not."""
    return events


REFERENCE = (lambda c: (c.receive_data(BLOB), drain(c))[1])(ready())


def test_reference_blob_parses_fully() -> None:
    assert len(REFERENCE) == BLOB.count(b"\r\n* ") + 1 + 1  # every response, plus the tagged OK
    fetch = next(e for e in REFERENCE if isinstance(e, FetchResponse))
    assert fetch.get("BODY[]<0>") == b"ab)\r\n"


def test_byte_by_byte_gives_the_same_events() -> None:
    conn = ready()
    assert feed_in_pieces(conn, BLOB, list(range(len(BLOB)))) == REFERENCE
    assert conn.state is ClientState.LOGOUT


@SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=len(BLOB)), max_size=60))
def test_random_splits_give_the_same_events(cuts: list[int]) -> None:
    assert feed_in_pieces(ready(), BLOB, cuts) == REFERENCE


@SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=len(BLOB)), max_size=30))
def test_streamed_literals_reassemble_under_any_split(cuts: list[int]) -> None:
    events = feed_in_pieces(ready(stream_literals_over=4), BLOB, cuts)
    chunks = [e for e in events if type(e).__name__ == "LiteralChunk"]
    body = b"".join(e.data for e in chunks)  # type: ignore[union-attr]
    assert body == b"Subject: x\r\nFrom: y\r\nab)\r\n"  # FETCH literals only; names stay held
    assert [e for e in events if type(e).__name__ != "LiteralChunk"][-1] == REFERENCE[-1]


IMAP_TOKENS = st.sampled_from(
    [b"* ", b"a003 ", b"+ ", b"OK ", b"NO ", b"BYE ", b"FETCH ", b"LIST ", b"STATUS ", b"1 ", b"(", b")", b" ",
     b"NIL", b'"x"', b'"', b"\\", b"{3}\r\n", b"{0}\r\n", b"~{2}\r\n", b"{99999999999}\r\n", b"\r\n", b"[", b"]",
     b"BODY[", b"BODYSTRUCTURE ", b"ENVELOPE ", b"UID ", b"FLAGS ", b"\\Seen", b"&", b"-", b"\x00", b"\xff",
     b"[UIDVALIDITY ", b"[COPYUID 1 1:2 3:4]", b"ESEARCH ", b"VANISHED ", b"0", b"4294967296"]
)  # fmt: skip


def only_typed_errors(conn: ClientConnection, data: bytes) -> None:
    try:
        conn.receive_data(data)
        drain(conn)
        conn.receive_data(b"")
        drain(conn)
    except (RemoteProtocolError, LimitError):
        assert conn.state is ClientState.ERROR


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_typed_errors(data: bytes) -> None:
    only_typed_errors(ready(max_line_length=200, max_literal_size=100), data)
    only_typed_errors(ClientConnection(), data)


@SETTINGS
@given(st.lists(IMAP_TOKENS, max_size=40))
def test_imap_shaped_noise_raises_only_typed_errors(tokens: list[bytes]) -> None:
    data = b"".join(tokens)
    only_typed_errors(ready(max_literal_size=1000), data)
    only_typed_errors(ready(max_literal_size=1000), b"* 1 FETCH " + data)
    only_typed_errors(ClientConnection(), b"* OK " + data)


def sent_argument(conn: ClientConnection, command: object) -> bytes:
    """The octets the client sends for ``command``, answering "+" for literals."""
    wire = conn.send(command)  # type: ignore[arg-type]
    while conn.state is ClientState.APPENDING_LITERAL:
        conn.receive_data(b"+ go\r\n")
        drain(conn)
        wire += conn.send_literal()
    return wire


def echo(conn: ClientConnection, wire: bytes, head: bytes) -> Event:
    tag = conn.current_tag
    assert tag is not None
    argument = wire[len(tag) + 1 + len(head) : -2]
    argument = re.sub(rb"\{(\d+)\+\}\r\n", rb"{\1}\r\n", argument)  # servers send plain literals
    conn.receive_data(b'* LIST () "/" ' + argument + b"\r\n" + tag.encode() + b" OK\r\n")
    return drain(conn)[0]


@SETTINGS
@given(st.binary(max_size=60).filter(lambda b: b"\x00" not in b), st.booleans())
def test_mailbox_bytes_round_trip(name: bytes, literal_plus: bool) -> None:
    conn = ClientConnection(tls=True)
    conn.receive_data(b"* OK [CAPABILITY IMAP4rev1%s] hi\r\n" % (b" LITERAL+" if literal_plus else b""))
    drain(conn)
    conn.send(Login(username="u", password="p"))
    conn.receive_data(b"a001 OK%s\r\n" % (b" [CAPABILITY IMAP4rev1 LITERAL+]" if literal_plus else b""))
    drain(conn)
    wire = sent_argument(conn, Select(mailbox=name))
    event = echo(conn, wire, b"SELECT ")
    assert isinstance(event, ListResponse) and event.raw_name == name


@SETTINGS
@given(st.text(max_size=30).filter(lambda s: all(not 0xD800 <= ord(c) <= 0xDFFF for c in s)))
def test_mailbox_text_round_trip_through_modified_utf7(name: str) -> None:
    conn = ready()
    conn.receive_data(b"a003 OK\r\n")
    drain(conn)
    wire = sent_argument(conn, Select(mailbox=name))
    event = echo(conn, wire, b"SELECT ")
    assert isinstance(event, ListResponse) and event.name == name


FLAG = st.from_regex(r"\\?[A-Za-z$][A-Za-z0-9$_.-]{0,10}", fullmatch=True).filter(lambda f: f.lower() != "\\recent")


@SETTINGS
@given(st.lists(FLAG, max_size=5))
def test_flags_round_trip(flags: list[str]) -> None:
    conn = ready()
    conn.receive_data(b"a003 OK\r\n")
    drain(conn)
    wire = conn.send(UidStore(uids=1, flags=tuple(flags), mode=""))
    flag_list = wire[wire.index(b"(") : -2]
    conn.receive_data(b"* 1 FETCH (FLAGS " + flag_list + b")\r\na004 OK\r\n")
    event = drain(conn)[0]
    assert isinstance(event, FetchResponse) and event.flags == tuple(flags)
