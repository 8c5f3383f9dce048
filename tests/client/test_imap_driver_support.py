"""A scripted IMAP/SMTP server on 127.0.0.1 that records every octet it receives (helpers, no tests)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mssante.client import ConnectionSettings, Mailbox, MailboxOptions, TrustSettings
from mssante.credentials import StaticTokenSource
from mssante.discovery import ManualServers

#: Looks like a PSC JWT; the tests check that these octets never reach a scripted server in clear.
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzY3JpcHRlZC1zZXJ2ZXItdGVzdCJ9.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"
BAL = "jean.dupont@hopital.mss.test"
HOST = "imap.test"


@dataclass
class Recorder:
    """What the scripted server received (plaintext phase, and after TLS when it does TLS)."""

    received: bytearray = field(default_factory=bytearray)

    def saw_credentials(self) -> bool:
        data = bytes(self.received)
        return b"AUTHENTICATE" in data.upper() or b"LOGIN" in data.upper() or TOKEN.encode() in data


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Recorder], Awaitable[None]]


async def read_line(reader: asyncio.StreamReader, recorder: Recorder) -> bytes:
    """One client line (recorded)."""
    line = await reader.readline()
    recorder.received += line
    return line


@contextlib.asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[tuple[int, Recorder]]:
    """Serve ``script`` to each connection on 127.0.0.1; yield the port and the recorder."""
    recorder = Recorder()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer, recorder)
            with contextlib.suppress(Exception):
                recorder.received += await asyncio.wait_for(reader.read(65536), 1.0)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], recorder
    finally:
        server.close()
        await server.wait_closed()


def mailbox(port: int, trust: TrustSettings, *, host: str = HOST, smtp: bool = False) -> Mailbox:
    """A PER mailbox on the scripted server (as IMAP server, or as submission server), with a static token."""
    connection = ConnectionSettings(connect_timeout=5, command_timeout=5, resolve={host: "127.0.0.1"})
    servers = ManualServers(submission=(host, port)) if smtp else ManualServers(imap=(host, port))
    return Mailbox(BAL, kind="PER", credentials=StaticTokenSource(TOKEN), servers=servers, tls=trust,
                   product_reference="DEV000001", options=MailboxOptions(connection=connection))


async def tls_imap_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, recorder: Recorder,
                           context: ssl.SSLContext, *, before_idle: bytes = b"") -> None:
    """A well-behaved server: STARTTLS with ``context``, then XOAUTH2 and a tiny empty INBOX.

    IDLE is answered with ``before_idle`` (untagged updates) then ``+ idling``, until ``DONE``.
    """
    writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] scripted\r\n")
    tag = (await read_line(reader, recorder)).split(b" ")[0]
    writer.write(tag + b" OK Begin TLS now\r\n")
    await writer.drain()
    await writer.start_tls(context)
    while line := await read_line(reader, recorder):
        tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
        verb = rest.split(b" ")[0].upper()
        if verb == b"CAPABILITY":
            writer.write(b"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR IDLE\r\n" + tag + b" OK done\r\n")
        elif verb == b"AUTHENTICATE":
            writer.write(tag + b" OK [CAPABILITY IMAP4rev1 IDLE] authenticated\r\n")
        elif verb == b"SELECT":
            selected = b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"
            writer.write(selected + tag + b" OK [READ-WRITE] s\r\n")
        elif verb == b"UID":
            writer.write(b"* SEARCH\r\n" + tag + b" OK done\r\n")
        elif verb == b"IDLE":
            writer.write(before_idle + b"+ idling\r\n")
            await writer.drain()
            if (await read_line(reader, recorder)).strip().upper() != b"DONE":
                return
            writer.write(tag + b" OK IDLE terminated\r\n")
        elif verb == b"LOGOUT":
            writer.write(b"* BYE bye\r\n" + tag + b" OK done\r\n")
            await writer.drain()
            return
        else:
            writer.write(tag + b" BAD unexpected\r\n")
        await writer.drain()


def write_pem(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` and return it."""
    path.write_bytes(data)
    return path
