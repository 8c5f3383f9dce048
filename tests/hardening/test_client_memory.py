"""Issue 13, bounded memory: a hostile IMAP server cannot make the client keep what it sends.

The server answers STARTTLS (before TLS, so no certificate is needed) with a flood; the client
must fail with PeerLimitError (a LimitError whose fault is the server's), not grow until a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.client._config import ConnectionSettings
from mssante.client._imap import IMAPConnection
from mssante.client._tls import TLSClient
from mssante.errors import LimitError, PeerLimitError, RemoteProtocolError
from mssante.wire.imap import ClientState
from tests._hypothesis import examples
from tests.wire.test_imap_properties import drain, ready

Writer = asyncio.StreamWriter
Answer = Callable[[Writer], Awaitable[None]]


@contextlib.asynccontextmanager
async def hostile(
    answer: Answer, greeting: bytes = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hostile\r\n"
) -> AsyncIterator[int]:
    """A server that sends ``greeting``, reads one line, then runs ``answer``; yields its port.

    Its handlers are cancelled and their sockets closed when the block ends.
    """
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            writer.write(greeting)
            await reader.readline()
            await answer(writer)
        except OSError:
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def open_against(port: int) -> None:
    settings = ConnectionSettings(connect_timeout=60, command_timeout=60)
    tls = TLSClient(context=ssl.create_default_context(), bundle=None, crls=None)
    await IMAPConnection.open("127.0.0.1", port, tls=tls, settings=settings, server_name="localhost")


def lines(line: bytes, count: int) -> Answer:
    async def send(writer: Writer) -> None:
        for _ in range(count // 1000):
            writer.write(line * 1000)
            await writer.drain()
        await asyncio.Event().wait()  # then silence: only a limit can end the command early

    return send


async def test_a_flood_of_small_untagged_lines_is_refused_by_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(IMAPConnection, "max_kept_responses", 5000)
    async with hostile(lines(b"* OK x\r\n", 20_000)) as port:
        with pytest.raises(PeerLimitError, match="5001 responses") as info:
            await open_against(port)
    assert info.value.fault == "peer" and isinstance(info.value, LimitError)


async def test_a_flood_of_long_untagged_lines_is_refused_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(IMAPConnection, "max_kept_octets", 1 << 20)
    async with hostile(lines(b"* OK " + b"y" * 8000 + b"\r\n", 1000)) as port:
        with pytest.raises(PeerLimitError, match="during STARTTLS"):
            await open_against(port)


async def test_a_held_literal_beyond_the_response_bound_is_refused_when_announced() -> None:
    async def answer(writer: Writer) -> None:
        writer.write(b'* LIST () "/" {%d}\r\n' % (17 << 20))
        await writer.drain()
        await asyncio.Event().wait()  # not one octet of the literal is sent

    async with hostile(answer) as port:
        with pytest.raises(PeerLimitError, match="16777216 octets held"):
            await open_against(port)


# -- the engine alone (sans-IO) ------------------------------------------------------------------
def test_many_literals_in_one_response_are_bounded_by_the_response_size() -> None:
    conn = ready(max_response_size=10_000, stream_literals_over=None)
    piece = b" BODY[%d] {3000}\r\n" + b"m" * 3000
    conn.receive_data(b"* 1 FETCH (UID 1" + b"".join(piece % i for i in range(1, 5)))
    with pytest.raises(PeerLimitError, match="10000 octets held"):
        drain(conn)
    assert conn.state is ClientState.ERROR


def test_streamed_literals_are_not_counted_as_held() -> None:
    conn = ready(max_response_size=10_000, stream_literals_over=1000)
    piece = b" BODY[%d] {3000}\r\n" + b"m" * 3000
    conn.receive_data(b"* 1 FETCH (UID 1" + b"".join(piece % i for i in range(1, 6)) + b")\r\na003 OK\r\n")
    events = drain(conn)
    assert sum(len(getattr(e, "data", b"")) for e in events) == 15_000


def test_engine_limits_are_the_peers_fault() -> None:
    conn = ready(max_line_length=100)
    conn.receive_data(b"* OK " + b"x" * 200)
    with pytest.raises(PeerLimitError) as info:
        drain(conn)
    assert info.value.fault == "peer"


# -- SMTP: aiosmtplib bounds replies; the client says whose fault it is ---------------------------
@pytest.mark.parametrize(
    ("greeting", "error"),
    [
        (b"220-" + b"g" * 70 + b"\r\n", PeerLimitError),  # repeated: a multi-line greeting of 40 KB
        (b"22O not a reply\r\n", RemoteProtocolError),
    ],
)
async def test_an_oversized_or_invalid_smtp_greeting_gives_a_peer_error(greeting: bytes, error: type) -> None:
    from mssante.client._smtp import SMTPSubmission
    from mssante.secret import Secret
    from mssante.wire.sasl import PlainClient

    data = greeting * 600 if error is PeerLimitError else greeting
    async with hostile(lines(b"", 0), greeting=data) as port:
        with pytest.raises(error) as info:
            await SMTPSubmission.open(
                "127.0.0.1",
                port,
                tls=TLSClient(context=ssl.create_default_context(), bundle=None, crls=None),
                settings=ConnectionSettings(connect_timeout=30, command_timeout=30),
                mechanism=PlainClient("u", Secret("p")),
                server_name="localhost",
            )
    assert info.value.fault == "peer"


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=6), st.integers(1000, 12_000))
def test_a_response_is_refused_exactly_when_it_holds_more_than_the_cap(sizes: list[int], cap: int) -> None:
    lines = [b"* 1 FETCH (UID 1"]
    literals = []
    for index, size in enumerate(sizes):
        lines[-1] += b" BODY[%d] {%d}" % (index + 1, size)
        literals.append(b"L" * size)
        lines.append(b"")
    lines[-1] += b")"
    wire = b"".join(line + b"\r\n" + literal for line, literal in zip(lines, [*literals, b""], strict=True))
    held = sum(map(len, lines)) + sum(sizes)
    conn = ready(max_response_size=cap, stream_literals_over=None)
    conn.receive_data(wire)
    if held > cap:
        with pytest.raises(PeerLimitError):
            drain(conn)
    else:
        (event,) = drain(conn)
        assert [v for _, v in event.items][1:] == literals  # type: ignore[union-attr]
