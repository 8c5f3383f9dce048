"""SASL on the IMAP driver without SASL-IR (continuation + JSON error challenge), and the ref2 §2.4 retry flow."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import pytest

from mssante.client import Backoff, TrustSettings
from mssante.client._auth import BALCredentials, with_auth_retry
from mssante.credentials import ClientCertificate, StaticTokenSource
from mssante.errors import AuthUnavailable, NotAuthorized, PSCError, TokenRejected, UsageError
from mssante.secret import Secret
from mssante.wire.sasl import ClientMechanism
from tests.client.test_imap_driver_support import BAL, HOST, TOKEN, Recorder, mailbox, read_line, scripted_server
from tests.trust._pki import MiniPKI


async def test_xoauth2_over_continuation_with_json_error(tmp_path: Path) -> None:
    pki = MiniPKI(tmp_path / "pki", "http://127.0.0.1:9/crl")
    leaf = pki.leaf("imap", dns_names=(HOST,))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(leaf.cert_path, leaf.key_path)
    connections: list[int] = []
    answers: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
        connections.append(1)
        writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
        tag = (await read_line(reader, rec)).split(b" ")[0]
        writer.write(tag + b" OK go\r\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        tag = (await read_line(reader, rec)).split(b" ")[0]  # CAPABILITY (no SASL-IR)
        writer.write(b"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\n" + tag + b" OK done\r\n")
        line = await read_line(reader, rec)
        assert line.rstrip().endswith(b"AUTHENTICATE XOAUTH2")  # no initial response on the line
        tag = line.split(b" ")[0]
        writer.write(b"+ \r\n")
        answers.append(base64.b64decode(await read_line(reader, rec)))
        error = base64.b64encode(b'{"status":"401","schemes":"bearer"}')
        writer.write(b"+ " + error + b"\r\n")
        answers.append(await read_line(reader, rec))
        writer.write(tag + b" NO [AUTHENTICATIONFAILED] invalid token\r\n")
        await writer.drain()

    trust = TrustSettings(ca_bundle=pki.bundle(), revocation="off")
    async with scripted_server(script) as (port, _), asyncio.timeout(20), mailbox(port, trust) as box:
        with pytest.raises(TokenRejected, match="freshly obtained") as info:
            await box.list()
    assert info.value.imap_code == "AUTHENTICATIONFAILED"
    assert len(connections) == 2  # one retry, on a new connection, never a third
    assert answers[0] == f"user={BAL}\x01auth=Bearer {TOKEN}\x01\x01".encode()
    assert answers[1] == b"\r\n"  # XOAUTH2: an empty answer to the JSON error challenge
    assert TOKEN not in str(info.value)


class _Source:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def token(self, *, fresh: bool = False) -> Secret:
        self.calls.append(fresh)
        return Secret(f"tok{len(self.calls)}")


async def _flow(failures: list[Exception], source: _Source, sleeps: list[float]) -> int:
    attempts = 0

    async def attempt(mechanism: ClientMechanism) -> int:
        nonlocal attempts
        attempts += 1
        if failures:
            raise failures.pop(0)
        return attempts

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    creds = BALCredentials(BAL, "PER", source, app_password=Secret("x"))
    return await with_auth_retry(creds, attempt, backoff=Backoff(initial=1, maximum=4, attempts=2), sleep=sleep)


async def test_retry_rules_without_a_server() -> None:
    source, sleeps = _Source(), list[float]()
    assert await _flow([TokenRejected("no")], source, sleeps) == 2
    assert source.calls == [False, True] and sleeps == []

    source = _Source()
    with pytest.raises(TokenRejected, match="freshly obtained"):
        await _flow([TokenRejected("no"), TokenRejected("no"), TokenRejected("no")], source, sleeps)
    assert source.calls == [False, True]

    source = _Source()
    with pytest.raises(NotAuthorized):
        await _flow([NotAuthorized("no")], source, sleeps)
    assert source.calls == [False]

    source = _Source()
    assert await _flow([AuthUnavailable("later"), AuthUnavailable("later")], source, sleeps) == 3
    assert len(sleeps) == 2 and 0.8 <= sleeps[0] <= 1.2 and 1.6 <= sleeps[1] <= 2.4  # jittered, growing

    with pytest.raises(AuthUnavailable):
        await _flow([AuthUnavailable("x")] * 3, _Source(), [])
    with pytest.raises(PSCError):
        await _flow([PSCError("over", oauth_error="invalid_grant")], _Source(), [])


def test_kind_and_credentials_must_match(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(UsageError):
        BALCredentials(BAL, "APP", StaticTokenSource("t"), app_password=Secret("x"))
    with pytest.raises(UsageError):
        BALCredentials(BAL, "PER", ClientCertificate(cert=cert, key=cert), app_password=Secret("x"))
    secret = "eyJ-a-token-that-must-not-show"
    assert secret not in repr(BALCredentials(BAL, "ORG", StaticTokenSource(secret), app_password=Secret("x")))
