"""Shared material for the SMTP front tests: test PKI, mock PSC, an in-memory store, a front."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mssante.errors import UsageError
from mssante.sandbox.config import SandboxConfig, default_config
from mssante.sandbox.fronts._adapters import PKICertificateChecker, PSCTokenVerifier
from mssante.sandbox.fronts.authz import AccessDecider, FrontKind
from mssante.sandbox.fronts.delivery import MailDelivery
from mssante.sandbox.fronts.faults import Faults
from mssante.sandbox.fronts.journal import Journal
from mssante.sandbox.fronts.smtp import SubmissionFront
from mssante.sandbox.pki import TestPKI
from mssante.sandbox.pki.records import IssuedCert
from mssante.sandbox.psc import MockPSC

CFG = default_config()
DOMAIN = CFG.domain
PER = f"marie.curie@{DOMAIN}"
ORG = f"secretariat.cardio@{DOMAIN}"
APP = f"dpi.hopital@{DOMAIN}"
LAB_APP = f"sil.labo@{DOMAIN}"
MARIE, LOUIS = "899700000001", "899700000002"
CLIENT_ID = "mssante-sandbox"


class Clock:
    """A clock the tests can move forward (token expiry without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class MemoryDelivery:
    """A tiny in-memory :class:`MailDelivery` (BALs of the config), with a way to wait for mail."""

    def __init__(self, config: SandboxConfig = CFG) -> None:
        self._config = config
        self.boxes: dict[tuple[str, str], list[bytes]] = {}
        self._changed = asyncio.Event()

    def has_mailbox(self, address: str) -> bool:
        return self._config.bal(address) is not None

    async def deliver(self, address: str, message: bytes, *, folder: str = "INBOX") -> None:
        if not self.has_mailbox(address):
            raise UsageError(f"no BAL {address}")
        self.boxes.setdefault((address.lower(), folder), []).append(message)
        self._changed.set()

    def box(self, address: str, folder: str = "INBOX") -> list[bytes]:
        return self.boxes.get((address.lower(), folder), [])

    async def wait_for(self, address: str, count: int = 1, folder: str = "INBOX") -> list[bytes]:
        async with asyncio.timeout(5.0):
            while len(self.box(address, folder)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.box(address, folder)


@dataclass
class Material:
    """Slow-to-build things shared by a test module: PKI, mock PSC, certificates."""

    root: Path
    pki: TestPKI
    psc: MockPSC
    clock: Clock
    app_cert: IssuedCert
    lab_cert: IssuedCert
    negative: dict[str, IssuedCert]

    def token(self, national_id: str = MARIE) -> str:
        return str(self.psc.issue_tokens_for_tests(national_id, CLIENT_ID)["access_token"])

    def client_context(self, cert: IssuedCert | None = None) -> ssl.SSLContext:
        return self.pki.client_ssl_context(cert)


def build_material(root: Path) -> Material:
    clock = Clock()
    pki = TestPKI.load_or_create(root / "pki", server_names=CFG.server_names, crl_base_url="http://127.0.0.1:9")
    psc = MockPSC(CFG, issuer="http://127.0.0.1:9/auth/realms/esante-wallet", state_dir=root / "psc", clock=clock)
    return Material(
        root=root, pki=pki, psc=psc, clock=clock,
        app_cert=pki.issue_client_cert(CFG.structures[0], "DPI HOPITAL"),
        lab_cert=pki.issue_client_cert(CFG.structures[1], "SIL LABO"),
        negative=pki.issue_negative_certs(CFG.structures[0]),
    )


@dataclass
class Env:
    """A started front and everything around it."""

    front: SubmissionFront
    port: int
    journal: Journal
    faults: Faults
    delivery: Any
    material: Material
    kind: FrontKind
    extra: dict[str, Any] = field(default_factory=dict)

    def records(self) -> list[Any]:
        return self.journal.records(front=f"smtp-{self.kind}")


async def start_env(material: Material, kind: FrontKind, delivery: MailDelivery | None = None, **kwargs: Any) -> Env:
    faults = Faults()
    journal = Journal()
    decider = AccessDecider(CFG, PSCTokenVerifier(material.psc), PKICertificateChecker(material.pki), faults)
    ctx = material.pki.server_ssl_context(require_client_cert=kind == "authcli")
    store = delivery if delivery is not None else MemoryDelivery()
    front = SubmissionFront(CFG, decider, journal, faults, store, ctx, front=kind, **kwargs)
    port = await front.start("127.0.0.1", 0)
    return Env(front=front, port=port, journal=journal, faults=faults, delivery=store, material=material, kind=kind)


def xoauth2(user: str, token: str) -> str:
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def message(sender: str, rcpt: str, subject: str = "Test", body: str = "Bonjour, corps secret du message.\r\n",
            extra: str = "") -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\nMessage-ID: <{time.time_ns()}@lps.test>\r\n"
        f"X-MSS-NIL: DEV935997\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


class Challenges:
    """An smtplib auth object that answers the first challenge with XOAUTH2 and keeps what it saw."""

    def __init__(self, user: str, token: str) -> None:
        self.user, self.token = user, token
        self.seen: list[bytes] = []

    def __call__(self, challenge: bytes | None = None) -> str:
        if challenge is None:
            return xoauth2(self.user, self.token)
        self.seen.append(challenge)
        return xoauth2(self.user, self.token) if len(self.seen) == 1 else ""


def smtp_connect(env: Env, cert: IssuedCert | None = None, ehlo_again: bool = True) -> smtplib.SMTP:
    """Blocking: connect, EHLO, STARTTLS, EHLO. Run it in a thread."""
    client = smtplib.SMTP("127.0.0.1", env.port, timeout=10)
    client.ehlo("lps.test")
    client.starttls(context=env.material.client_context(cert))
    if ehlo_again:
        client.ehlo("lps.test")
    return client


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)
