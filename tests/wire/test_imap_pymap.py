"""Integration: a ~50-line asyncio driver on the sans-IO engine, against a real pymap server over loopback.

STARTTLS (throwaway self-signed certificate), LOGIN, SELECT, UID FETCH ENVELOPE/BODYSTRUCTURE/FLAGS,
APPEND, IDLE woken by a second connection's APPEND, LOGOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from argparse import Namespace
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mssante.errors import CommandFailed, ConnectionClosed, StartTLSError
from mssante.wire.imap import (
    NEED_DATA,
    Append,
    Capability,
    ClientConnection,
    ClientState,
    ConnectionEnded,
    Continuation,
    ContinuationPurpose,
    Event,
    ExistsResponse,
    FetchResponse,
    Greeting,
    Idle,
    ListMailboxes,
    ListResponse,
    LiteralChunk,
    Login,
    Logout,
    Select,
    StartTLS,
    StreamedLiteral,
    Tagged,
    UidFetch,
)

pymap_dict = pytest.importorskip("pymap.backend.dict")
pymap_imap = pytest.importorskip("pymap.imap")
proxyprotocol_reader = pytest.importorskip("proxyprotocol.reader")


# -- the example driver (what mssante.net will do, in ~50 lines) ---------------------------------


class Client:
    """Minimal asyncio driver: feeds the engine, writes what it returns."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: ClientConnection) -> None:
        self.reader, self.writer, self.conn = reader, writer, conn
        self.literals_sent = 0

    @classmethod
    async def connect(cls, port: int, **options: object) -> tuple[Client, Greeting]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer, ClientConnection(**options))  # type: ignore[arg-type]
        greeting = await client.next_event()
        assert isinstance(greeting, Greeting)
        return client, greeting

    async def next_event(self) -> Event:
        while (event := self.conn.next_event()) is NEED_DATA:
            self.conn.receive_data(await self.reader.read(65536))
        assert not isinstance(event, type(NEED_DATA))
        if isinstance(event, ConnectionEnded):
            raise ConnectionClosed("server closed the connection")
        return event

    async def command(self, command: object) -> tuple[Tagged, list[Event]]:
        self.writer.write(self.conn.send(command))  # type: ignore[arg-type]
        untagged: list[Event] = []
        while True:
            event = await self.next_event()
            if isinstance(event, Continuation) and event.purpose is ContinuationPurpose.LITERAL:
                self.writer.write(self.conn.send_literal())
                self.literals_sent += 1
            elif isinstance(event, Tagged):
                if not event.ok:
                    code = event.code.name if event.code else None
                    raise CommandFailed(f"{event.command}: {event.text}", imap_code=code)
                return event, untagged
            else:
                untagged.append(event)

    async def starttls(self, context: ssl.SSLContext) -> None:
        await self.command(StartTLS())
        await self.writer.start_tls(context, server_hostname="localhost")
        self.conn.tls_established()

    @contextlib.asynccontextmanager
    async def idle(self) -> AsyncIterator[AsyncIterator[Event]]:
        self.writer.write(self.conn.send(Idle()))
        started = await self.next_event()
        assert isinstance(started, Continuation) and started.purpose is ContinuationPurpose.IDLE

        async def updates() -> AsyncIterator[Event]:
            while True:
                yield await self.next_event()

        try:
            yield updates()
        finally:
            self.writer.write(self.conn.idle_done())
            while not isinstance(await self.next_event(), Tagged):
                pass

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


# -- a pymap server with a throwaway certificate ----------------------------------------------------


def make_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
async def pymap_server(tmp_path: Path) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    cert, key = make_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    args = Namespace(
        host="127.0.0.1", port=0, debug=False, cert=str(cert), key=str(key), tls=True, passlib_cfg=None,
        proxy_protocol=None, inherited_sockets=None, demo_data=True, demo_user="demouser", demo_password="demopass",
    )  # fmt: skip
    backend, config = await pymap_dict.DictBackend.init(
        args, ssl_context=server_context, reject_dnsbl=False, invalid_user_sleep=0.0
    )
    async with contextlib.AsyncExitStack() as stack:
        await backend.start(stack)
        handler = proxyprotocol_reader.ProxyProtocolReader(config.proxy_protocol).get_callback(
            pymap_imap.IMAPServer(backend.login, config)
        )
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        client_context = ssl.create_default_context(cafile=str(cert))
        try:
            yield server.sockets[0].getsockname()[1], client_context
        finally:
            server.close()
            await server.wait_closed()


async def login(port: int, context: ssl.SSLContext, **options: object) -> Client:
    client, greeting = await Client.connect(port, **options)
    assert greeting.status == "OK" and client.conn.has("STARTTLS")
    await client.starttls(context)
    assert client.conn.tls and client.conn.capabilities is None
    await client.command(Capability())
    assert client.conn.capabilities is not None
    await client.command(Login(username="demouser", password="demopass"))
    assert client.conn.state is ClientState.AUTHENTICATED
    assert client.conn.has("LITERAL+") and client.conn.has("IDLE")  # from the LOGIN OK [CAPABILITY] code
    return client


MESSAGE = (
    b"From: Dr A <a@example.mssante.fr>\r\nTo: b@example.mssante.fr\r\n"
    b"Subject: =?utf-8?q?R=C3=A9sultats?=\r\nMessage-ID: <itest@mssante>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour.\r\n"
)


async def test_session_against_pymap(pymap_server: tuple[int, ssl.SSLContext]) -> None:
    port, context = pymap_server
    async with asyncio.timeout(20):
        client = await login(port, context)
        _, untagged = await client.command(ListMailboxes())
        assert {e.name for e in untagged if isinstance(e, ListResponse)} >= {"INBOX", "Sent", "Trash"}

        _, untagged = await client.command(Select(mailbox="INBOX"))
        exists = next(e.count for e in untagged if isinstance(e, ExistsResponse))
        assert client.conn.state is ClientState.SELECTED and exists > 0

        _, untagged = await client.command(UidFetch(uids="1:*", items=("ENVELOPE", "BODYSTRUCTURE", "FLAGS")))
        fetches = [e for e in untagged if isinstance(e, FetchResponse)]
        assert len(fetches) == exists
        assert all(f.uid and f.envelope and f.bodystructure and f.flags is not None for f in fetches)

        wire = client.conn.send(Append(mailbox="INBOX", message=MESSAGE, flags=("\\Seen",)))
        assert wire.endswith(b"+}\r\n" + MESSAGE + b"\r\n")
        client.writer.write(wire)
        while not isinstance(tagged := await client.next_event(), Tagged):  # LITERAL+: one write, no "+"
            pass
        assert tagged.code is not None and tagged.code.name == "APPENDUID"
        new_uid = next(iter(tagged.code.data.uids))  # type: ignore[union-attr]

        _, untagged = await client.command(UidFetch(uids=new_uid, items=("ENVELOPE", "BODY.PEEK[]", "FLAGS")))
        (fetch,) = [e for e in untagged if isinstance(e, FetchResponse)]
        assert fetch.get("BODY[]") == MESSAGE and fetch.flags is not None and "\\Seen" in fetch.flags
        # The engine keeps what the server sent: pymap decodes RFC 2047 itself and sends UTF-8.
        assert fetch.envelope is not None and fetch.envelope.subject in (
            b"=?utf-8?q?R=C3=A9sultats?=",
            "Résultats".encode(),
        )

        # IDLE on the first connection, APPEND from a second one (sync literal: capabilities unknown).
        other = await login(port, context, max_non_sync_literal=0)
        async with client.idle() as updates:
            # max_non_sync_literal=0: a synchronizing literal, sent after the server's "+".
            append = asyncio.create_task(other.command(Append(mailbox="INBOX", message=MESSAGE)))
            async for event in updates:
                if isinstance(event, ExistsResponse):
                    assert event.count == exists + 2
                    break
            await append
        assert other.literals_sent == 1 and client.literals_sent == 0
        assert client.conn.state is ClientState.SELECTED

        await other.command(Logout())
        await other.close()
        await client.command(Logout())
        assert client.conn.state is ClientState.LOGOUT
        await client.close()


async def test_streamed_body_against_pymap(pymap_server: tuple[int, ssl.SSLContext]) -> None:
    port, context = pymap_server
    async with asyncio.timeout(20):
        client, _ = await Client.connect(port, stream_literals_over=64)
        await client.starttls(context)
        await client.command(Login(username="demouser", password="demopass"))
        await client.command(Append(mailbox="INBOX", message=MESSAGE * 50))
        await client.command(Select(mailbox="INBOX"))
        _, untagged = await client.command(UidFetch(uids="*", items=("BODY.PEEK[]",)))
        body = b"".join(e.data for e in untagged if isinstance(e, LiteralChunk))
        (fetch,) = [e for e in untagged if isinstance(e, FetchResponse)]
        assert body == MESSAGE * 50 and fetch.get("BODY[]") == StreamedLiteral(size=len(body))
        await client.command(Logout())
        await client.close()


async def test_plaintext_login_refused_before_starttls(pymap_server: tuple[int, ssl.SSLContext]) -> None:
    # pymap trusts loopback and would accept this LOGIN (ecosystem.md §1 pitfall 1): the engine must not send it.
    port, _ = pymap_server
    client, _ = await Client.connect(port)
    with pytest.raises(Exception) as info:
        client.conn.send(Login(username="demouser", password="demopass"))
    assert type(info.value).__name__ == "LocalProtocolError"
    assert not isinstance(info.value, StartTLSError)
    await client.close()
