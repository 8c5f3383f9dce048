"""STARTTLS attacks as wire transcripts: each refused with a typed error, and no credential octet on the wire."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.client import ConnectionSettings, IMAPConnection, TrustSettings
from mssante.client._tls import TLSClient
from mssante.errors import MssanteError, StartTLSError, TrustError
from mssante.message import Draft, Sender
from tests.client.test_imap_driver_support import TOKEN, Recorder, mailbox, read_line, scripted_server
from tests.trust._pki import MiniPKI


@pytest.fixture
def trust(tmp_path: Path) -> TrustSettings:
    pki = MiniPKI(tmp_path / "pki", "http://127.0.0.1:9/crl")
    return TrustSettings(ca_bundle=pki.bundle())


async def stripped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
    # A man in the middle removed STARTTLS and invites the client to log in at once.
    writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=PLAIN SASL-IR] please log in\r\n")
    await writer.drain()
    while line := await read_line(reader, rec):
        tag = line.split(b" ")[0]
        writer.write(tag + b" OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] sure\r\n")
        await writer.drain()


async def stripped_late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
    # No capability in the greeting; the CAPABILITY answer lacks STARTTLS.
    writer.write(b"* OK ready\r\n")
    while line := await read_line(reader, rec):
        tag = line.split(b" ")[0]
        writer.write(b"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n" + tag + b" OK done\r\n")
        await writer.drain()


async def injected_same_write(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
    # CVE-2011-0411 pattern: plaintext right after the STARTTLS OK, in the same segment.
    writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
    tag = (await read_line(reader, rec)).split(b" ")[0]
    writer.write(tag + b" OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
    await writer.drain()
    await read_line(reader, rec)


async def injected_next_write(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
    writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
    tag = (await read_line(reader, rec)).split(b" ")[0]
    writer.write(tag + b" OK Begin TLS\r\n")
    await writer.drain()
    writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n")
    await writer.drain()
    await read_line(reader, rec)


async def preauth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
    # PREAUTH skips the not-authenticated state, hence STARTTLS (RFC 3501 §6.2.1).
    writer.write(b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome back\r\n")
    await writer.drain()
    await read_line(reader, rec)


async def auth_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
    # The server offers STARTTLS but answers it by asking for authentication first.
    writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=XOAUTH2 SASL-IR] ready\r\n")
    while line := await read_line(reader, rec):
        tag = line.split(b" ")[0]
        writer.write(tag + b" NO [PRIVACYREQUIRED] authenticate first, then STARTTLS\r\n")
        await writer.drain()


@pytest.mark.parametrize(
    ("script", "errors"),
    [
        (stripped, StartTLSError),
        (stripped_late, StartTLSError),
        (injected_same_write, StartTLSError),
        (injected_next_write, (StartTLSError, TrustError)),  # caught in the buffer, or breaks the handshake
        (preauth, StartTLSError),
        (auth_first, StartTLSError),
    ],
)
async def test_starttls_attack_is_refused_without_sending_credentials(
    trust: TrustSettings, script: object, errors: type[MssanteError] | tuple[type[MssanteError], ...]
) -> None:
    async with (
        scripted_server(script) as (port, recorder),  # type: ignore[arg-type]
        asyncio.timeout(20),
        mailbox(port, trust) as box,
    ):
        with pytest.raises(errors) as info:
            await box.list()
    assert not recorder.saw_credentials(), bytes(recorder.received)
    assert "eyJ" not in str(info.value)
    if script is stripped:
        assert bytes(recorder.received) == b""  # the greeting's capabilities were enough to refuse


async def test_driver_refuses_preauth_directly(trust: TrustSettings) -> None:
    settings = ConnectionSettings(connect_timeout=5, resolve={"imap.test": "127.0.0.1"})
    async with scripted_server(preauth) as (port, recorder):
        with pytest.raises(StartTLSError, match="PREAUTH"):
            await IMAPConnection.open("imap.test", port, tls=TLSClient.build(trust), settings=settings)
    assert bytes(recorder.received) == b""


async def smtp_stripped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
    writer.write(b"220 smtp.test ESMTP\r\n")
    while line := await read_line(reader, rec):
        if line.upper().startswith(b"EHLO"):
            writer.write(b"250-smtp.test\r\n250-AUTH XOAUTH2 PLAIN\r\n250 SIZE 1000000\r\n")
        else:
            writer.write(b"250 2.0.0 OK\r\n")
        await writer.drain()


async def test_smtp_starttls_stripped_is_refused(trust: TrustSettings) -> None:
    draft = Draft(sender=Sender(address="jean.dupont@hopital.mss.test"), to=("x@mss.test",), subject="s", text="t")
    async with (
        scripted_server(smtp_stripped) as (port, recorder),
        asyncio.timeout(20),
        mailbox(port, trust, smtp=True) as box,
    ):
        with pytest.raises(StartTLSError):
            await box.send(draft)
    assert b"EHLO" in bytes(recorder.received)
    assert b"AUTH" not in bytes(recorder.received).upper() and TOKEN.encode() not in bytes(recorder.received)
