"""Fixtures and helpers for the IMAP front tests: test PKI, mock PSC, both fronts on loopback.

Import the fixtures into a test module (``from tests.sandbox._imap_support import imap_env, ...``).
Blocking clients (imaplib, imapclient) run in threads; curl and openssl run as subprocesses.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import imaplib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mssante.sandbox.config import default_config
from mssante.sandbox.fronts._adapters import PKICertificateChecker, PSCTokenVerifier
from mssante.sandbox.fronts.authz import AccessDecider
from mssante.sandbox.fronts.faults import Faults
from mssante.sandbox.fronts.imap import IMAPFront
from mssante.sandbox.fronts.journal import Journal
from mssante.sandbox.fronts.store import MailStore
from mssante.sandbox.pki import IssuedCert, TestPKI
from mssante.sandbox.psc import MockPSC

CFG = default_config()
PER = "marie.curie@mss.sandbox.test"
ORG = "secretariat.cardio@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"
LAB_APP = "sil.labo@mss.sandbox.test"
MARIE = "899700000001"
LOUIS = "899700000002"
CLIENT_ID = "mssante-sandbox"
HOST = "127.0.0.1"

T = TypeVar("T")


class Clock:
    """A clock the tests can move forward (token expiry without sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Certs:
    """Client certificates used by the AUTH_CLI tests."""

    hospital: IssuedCert  # OU 1750000001: opens dpi.hopital
    lab: IssuedCert  # OU 318751275100020: must not open dpi.hopital
    revoked: IssuedCert
    foreign: IssuedCert
    expired: IssuedCert


@dataclass
class PKIWorld:
    pki: TestPKI
    certs: Certs
    psc: MockPSC
    clock: Clock


_WORLD: list[PKIWorld] = []


@pytest.fixture(scope="session")
def pki_world(tmp_path_factory: pytest.TempPathFactory) -> PKIWorld:
    """One PKI and one mock PSC for the whole run (key generation is the slow part).

    Each test module imports this fixture, which makes it a distinct fixture per module; the
    module-level cache keeps a single PKI across them.
    """
    if _WORLD:
        return _WORLD[0]
    _WORLD.append(_make_world(tmp_path_factory.mktemp("imap-state")))
    return _WORLD[0]


def _make_world(state: Path) -> PKIWorld:
    pki = TestPKI.load_or_create(state / "pki", server_names=CFG.server_names, crl_base_url="http://127.0.0.1:1")
    hospital_st = CFG.structure("1750000001")
    lab_st = CFG.structure("318751275100020")
    assert hospital_st is not None and lab_st is not None
    negatives = pki.issue_negative_certs(hospital_st, cn="DPI NEGATIF")
    certs = Certs(
        hospital=pki.issue_client_cert(hospital_st, cn="DPI HOPITAL"),
        lab=pki.issue_client_cert(lab_st, cn="SIL LABO"),
        revoked=negatives["revoked"],
        foreign=negatives["foreign"],
        expired=negatives["expired"],
    )
    clock = Clock()
    psc = MockPSC(CFG, issuer="http://127.0.0.1:1/auth/realms/esante-wallet", state_dir=state / "psc", clock=clock)
    return PKIWorld(pki=pki, certs=certs, psc=psc, clock=clock)


@dataclass
class IMAPEnv:
    """Both fronts running on loopback, with their shared pieces."""

    world: PKIWorld
    journal: Journal
    faults: Faults
    store: MailStore
    psc_front: IMAPFront
    authcli_front: IMAPFront

    @property
    def psc_port(self) -> int:
        return self.psc_front.port

    @property
    def authcli_port(self) -> int:
        return self.authcli_front.port

    @property
    def ca_file(self) -> Path:
        return self.world.pki.ca_bundle_path

    def token(self, national_id: str = MARIE) -> str:
        return str(self.world.psc.issue_tokens_for_tests(national_id, CLIENT_ID)["access_token"])

    def client_context(self, cert: IssuedCert | None = None) -> ssl.SSLContext:
        return self.world.pki.client_ssl_context(cert)

    async def records(self, front: str) -> list[Any]:
        """The front's sessions, once the server has closed every one of them.

        The client a test drives has finished when the test looks; the server may still be
        recording its side (a TLS 1.3 refusal is seen by the client first): wait for that event.
        """
        def ended() -> list[Any]:
            found = self.journal.records(front=front)
            return found if found and all(r.ended_at is not None for r in found) else []

        return await self.journal.wait_for(ended)


async def start_env(world: PKIWorld, *, max_literal: int | None = None) -> IMAPEnv:
    journal, faults = Journal(), Faults()
    store = MailStore(CFG)
    decider = AccessDecider(CFG, PSCTokenVerifier(world.psc), PKICertificateChecker(world.pki), faults)
    psc_front = IMAPFront(CFG, decider, journal, faults, store, world.pki.server_ssl_context(), front="psc",
                          max_literal=max_literal)
    authcli_front = IMAPFront(CFG, decider, journal, faults, store,
                              world.pki.server_ssl_context(require_client_cert=True), front="authcli",
                              max_literal=max_literal)
    await psc_front.start(HOST, 0)
    await authcli_front.start(HOST, 0)
    return IMAPEnv(world, journal, faults, store, psc_front, authcli_front)


@pytest.fixture
async def imap_env(pki_world: PKIWorld) -> AsyncIterator[IMAPEnv]:
    """Fresh store, journal and faults; both fronts listening on 127.0.0.1."""
    env = await start_env(pki_world)
    try:
        yield env
    finally:
        pki_world.clock.offset = 0.0
        await env.psc_front.aclose()
        await env.authcli_front.aclose()


# ---------------------------------------------------------------------------- client helpers


def message(subject: str = "Compte rendu", to: str = PER, body: str = "Bonjour.\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "expediteur@mss.sandbox.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{time.time_ns()}@mss.sandbox.test>"
    msg.set_content(body)
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="cr.pdf")
    return bytes(msg)


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


def imaplib_psc_login(env: IMAPEnv, user: str, token: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(HOST, env.psc_port, timeout=10)
    client.starttls(env.client_context())
    client.authenticate("XOAUTH2", lambda _challenge: xoauth2(user, token))
    return client


async def run(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class RawIMAP:
    """A minimal line-level IMAP client over asyncio streams, for exact wire checks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> RawIMAP:
        reader, writer = await asyncio.open_connection(HOST, port)
        raw = cls(reader, writer)
        greeting = await raw.line()
        assert greeting.startswith("* OK"), greeting
        return raw

    async def line(self) -> str:
        data = await asyncio.wait_for(self.reader.readline(), 10)
        return data.decode("utf-8", "replace").rstrip("\r\n")

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def command(self, tag: str, text: str) -> list[str]:
        """Send ``tag text`` and return every line up to the tagged one."""
        await self.send(f"{tag} {text}\r\n")
        return await self.until(tag)

    async def until(self, tag: str) -> list[str]:
        lines = []
        while True:
            line = await self.line()
            lines.append(line)
            if line.startswith(tag + " ") or line == "":
                return lines

    async def starttls(self, ctx: ssl.SSLContext) -> None:
        lines = await self.command("s1", "STARTTLS")
        assert lines[-1].startswith("s1 OK"), lines
        await self.writer.start_tls(ctx, server_hostname=HOST)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
