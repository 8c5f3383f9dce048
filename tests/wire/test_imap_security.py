"""Attack and abuse transcripts: STARTTLS injection, credentials before TLS, PREAUTH, limits, garbage."""

from __future__ import annotations

import pytest

from mssante.errors import LimitError, LocalProtocolError, RemoteProtocolError, StartTLSError
from mssante.secret import Secret
from mssante.wire.imap import (
    NEED_DATA,
    Authenticate,
    Capability,
    CapabilityResponse,
    ClientConnection,
    ClientState,
    ConnectionEnded,
    Event,
    Greeting,
    Login,
    Noop,
    ResponseCode,
    Select,
    StartTLS,
    Tagged,
    UidFetch,
)


def drain(conn: ClientConnection) -> list[Event]:
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
        if isinstance(event, ConnectionEnded):
            break
    return events


def feed(conn: ClientConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return drain(conn)


def plaintext() -> ClientConnection:
    conn = ClientConnection()
    feed(conn, b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] ready\r\n")
    return conn


# -- STARTTLS (RFC 3501 §6.2.1, RFC 2595 §3.1, CVE-2011-0411) -------------------------------------


def test_starttls_happy_path_forgets_capabilities() -> None:
    conn = plaintext()
    assert conn.send(StartTLS()) == b"a001 STARTTLS\r\n"
    assert conn.state is ClientState.STARTTLS_PENDING
    (tagged,) = feed(conn, b"a001 OK Begin TLS negotiation now\r\n")
    assert isinstance(tagged, Tagged) and tagged.ok
    assert conn.state is ClientState.TLS_HANDSHAKE
    with pytest.raises(LocalProtocolError):
        conn.send(Capability())  # nothing may be sent before the handshake
    conn.tls_established()
    assert conn.tls and conn.state is ClientState.NOT_AUTHENTICATED
    assert conn.capabilities is None  # RFC 3501 §6.2.1: discard what was learnt in plaintext
    conn.send(Capability())
    events = feed(conn, b"* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2\r\na002 OK\r\n")
    assert isinstance(events[0], CapabilityResponse) and conn.has("AUTH=XOAUTH2") and not conn.has("LOGINDISABLED")


def test_starttls_ok_with_injected_plaintext_in_the_same_read() -> None:
    conn = plaintext()
    conn.send(StartTLS())
    conn.receive_data(b"a001 OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
    with pytest.raises(StartTLSError) as info:
        conn.next_event()
    assert info.value.requirement == "RFC 3501 §6.2.1"
    assert conn.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        conn.tls_established()


def test_starttls_ok_split_then_injection_in_a_later_read() -> None:
    conn = plaintext()
    conn.send(StartTLS())
    assert feed(conn, b"a001 OK Begin") == []
    assert len(feed(conn, b" TLS\r\n")) == 1
    with pytest.raises(StartTLSError):
        conn.receive_data(b"* OK injected\r\n")  # plaintext before tls_established()
    assert conn.state is ClientState.ERROR


def test_starttls_refused_stays_plaintext() -> None:
    conn = plaintext()
    conn.send(StartTLS())
    (tagged,) = feed(conn, b"a001 NO [PRIVACYREQUIRED] no TLS today\r\n")
    assert isinstance(tagged, Tagged) and tagged.code is not None and tagged.code.name == "PRIVACYREQUIRED"
    assert not conn.tls and conn.state is ClientState.NOT_AUTHENTICATED
    with pytest.raises(LocalProtocolError):
        conn.send(Login(username="u", password="p"))
    with pytest.raises(LocalProtocolError):
        conn.tls_established()


def test_credentials_never_before_tls() -> None:
    conn = plaintext()
    with pytest.raises(LocalProtocolError) as info:
        conn.send(Authenticate(mechanism="PLAIN", initial_response=b"\x00u\x00p"))
    assert info.value.requirement == "RFC 8314 §3"
    with pytest.raises(LocalProtocolError):
        conn.send(Login(username="u", password=Secret("hunter2")))
    assert conn.state is ClientState.NOT_AUTHENTICATED and conn.current_tag is None
    # The escape hatch is explicit and named.
    loose = ClientConnection(allow_plaintext_auth=True)
    feed(loose, b"* OK hi\r\n")
    assert loose.send(Login(username="u", password="p")) == b"a001 LOGIN u p\r\n"


def test_preauth_greeting_is_surfaced() -> None:
    conn = ClientConnection()
    (greeting,) = feed(conn, b"* PREAUTH [CAPABILITY IMAP4rev1] logged in as mallory\r\n")
    assert isinstance(greeting, Greeting) and greeting.preauth
    assert conn.state is ClientState.AUTHENTICATED
    with pytest.raises(LocalProtocolError):
        conn.send(StartTLS())  # RFC 3501 §6.2.1: STARTTLS only in the not-authenticated state
    with pytest.raises(RemoteProtocolError):
        feed(ClientConnection(), b"* 1 EXISTS\r\n")  # not a greeting


def test_preauth_outside_greeting_is_a_protocol_error() -> None:
    conn = plaintext()
    with pytest.raises(RemoteProtocolError):
        feed(conn, b"* PREAUTH sneaky\r\n")


def test_bye_greeting() -> None:
    conn = ClientConnection()
    code = ResponseCode(name="UNAVAILABLE", raw="UNAVAILABLE")
    assert feed(conn, b"* BYE [UNAVAILABLE] too busy\r\n")[0] == Greeting(status="BYE", code=code, text="too busy")
    assert conn.state is ClientState.LOGOUT


# -- peer errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"a999 OK who are you\r\n",  # unknown tag
        b"+ go ahead\r\n",  # continuation with nothing to continue
        b"garbage\r\n",
        b"* 12 FETCH (UID)\r\n",
        b"* 12 FETCH (FLAGS (\\Seen) UID 1\r\n",
        b"* OK [UIDVALIDITY nope] x\r\n",
        b'* 1 FETCH (INTERNALDATE "31-Foo-2026 00:00:00 +0000")\r\n',
        b"* 1 FETCH (UID 123456789012345678901234567890)\r\n",
        b"* 1 FETCH (BODY " + b"(" * 200 + b")\r\n",
    ],
)
def test_nonsense_from_the_server(data: bytes) -> None:
    conn = plaintext()
    conn.send(Noop())
    with pytest.raises(RemoteProtocolError) as info:
        feed(conn, data)
    assert len(str(info.value)) < 300
    assert data.split(b"\r\n")[0][:8].decode("ascii", "replace") in str(info.value)  # the offending line, truncated
    assert conn.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        conn.next_event()


def test_sasl_challenge_must_be_base64() -> None:
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK hi\r\n")
    conn.send(Authenticate(mechanism="PLAIN"))
    with pytest.raises(RemoteProtocolError):
        feed(conn, b"+ not base64!\r\n")


def test_error_during_login_withholds_the_line() -> None:
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK hi\r\n")
    conn.send(Login(username="u", password=Secret("hunter2")))
    with pytest.raises(RemoteProtocolError) as info:
        feed(conn, b"* 1 FETCH error in LOGIN u hunter2\r\n")  # a broken server echoes our line
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(Login(username="u", password="hunter2"))
    assert "hunter2" not in repr(Authenticate(mechanism="PLAIN", initial_response=b"hunter2"))


def test_eof_inside_a_response() -> None:
    conn = plaintext()
    conn.send(Noop())
    conn.receive_data(b"* 1 FETCH (BODY[] {10}\r\nabc")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_eof_between_responses() -> None:
    conn = plaintext()
    assert feed(conn, b"") == [ConnectionEnded()]
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


# -- limits -----------------------------------------------------------------------------------------


def test_oversized_literal_makes_the_connection_unusable() -> None:
    conn = ClientConnection(tls=True, max_literal_size=1000)
    feed(conn, b"* OK hi\r\n")
    conn.send(Login(username="u", password="p"))
    feed(conn, b"a001 OK\r\n")
    conn.send(Select(mailbox="INBOX"))
    feed(conn, b"a002 OK\r\n")
    conn.send(UidFetch(uids="1", items=("BODY[]",)))
    conn.receive_data(b"* 1 FETCH (BODY[] {1001}\r\n")
    with pytest.raises(LimitError):
        conn.next_event()
    assert conn.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


def test_literal_at_the_limit_is_fine() -> None:
    conn = ClientConnection(tls=True, max_literal_size=1000)
    feed(conn, b"* OK hi\r\n")
    conn.send(Noop())
    events = feed(conn, b"* 1 FETCH (BODY[] {1000}\r\n" + b"x" * 1000 + b")\r\na001 OK\r\n")
    assert len(events) == 2


def test_line_length_limit_without_crlf() -> None:
    conn = ClientConnection(max_line_length=100)
    conn.receive_data(b"* OK " + b"x" * 95)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"y")
    with pytest.raises(LimitError):
        conn.next_event()
    assert conn.state is ClientState.ERROR


def test_line_length_limit_with_crlf() -> None:
    conn = ClientConnection(max_line_length=100)
    conn.receive_data(b"* OK " + b"x" * 200 + b"\r\n")
    with pytest.raises(LimitError):
        conn.next_event()


def test_too_many_literals_in_one_response() -> None:
    conn = ClientConnection(max_literals=3)
    feed(conn, b"* OK hi\r\n")
    conn.receive_data(b"* 1 FETCH (X {1}\r\na Y {1}\r\nb Z {1}\r\nc W {1}\r\nd)\r\n")
    with pytest.raises(LimitError):
        conn.next_event()


def test_tag_prefix_is_validated() -> None:
    with pytest.raises(LocalProtocolError):
        ClientConnection(tag_prefix="a+")
    with pytest.raises(LocalProtocolError):
        ClientConnection(tag_prefix="a b")
