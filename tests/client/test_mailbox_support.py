"""Shared helpers for the client facade tests against the sandbox operator (no tests here).

Kept in a ``test_mailbox*`` module (the tests of this directory share it by import).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from mssante import testing
from mssante.client import ConnectionSettings, Mailbox, MailboxOptions, TrustSettings
from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.credentials import CallbackTokenSource, ClientCertificate
from mssante.discovery import DNSPythonResolver
from mssante.message import Draft, Sender
from mssante.psc import PSCClient, PSCSession, PSCSettings, TokenSet
from mssante.sandbox.config import Lifetimes, SandboxConfig, default_config
from mssante.sandbox.runner import Sandbox
from mssante.secret import Secret
from mssante.trace import MemorySink

PER = "marie.curie@mss.sandbox.test"
ORG = "secretariat.cardio@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"
APP2 = "sil.labo@mss.sandbox.test"
MARIE = "899700000001"
CLIENT_ID = "mssante-sandbox"
PRODUCT = "DEV000001"


def running_sandbox(tmp_path: Path, config: SandboxConfig | None = None, *,
                    clock: Clock | None = None) -> AbstractAsyncContextManager[Sandbox]:
    """A sandbox operator on loopback for one test (its mock PSC on ``clock``)."""
    return testing.running_sandbox(tmp_path / "sandbox", config, clock=clock)


def short_tokens(seconds: float = 2.0) -> SandboxConfig:
    """The default sandbox with short-lived access tokens."""
    return replace(default_config(), lifetimes=Lifetimes(access_token=seconds))


def trust(sb: Sandbox) -> TrustSettings:
    """Trust the sandbox's IGC Santé-like CAs; CRLs come from its HTTP server (fail closed)."""
    return TrustSettings(ca_bundle=Path(sb.info["ca_bundle"]))


def resolver(sb: Sandbox) -> DNSPythonResolver:
    """The sandbox DNS (SRV records of the fronts)."""
    return DNSPythonResolver(nameservers=[sb.info["dns"]["host"]], port=sb.info["dns"]["port"])


def options(sb: Sandbox, **changes: Any) -> MailboxOptions:
    """Fast timeouts, the fronts' names mapped to 127.0.0.1 (certificates still checked by name)."""
    names = [sb.info[p][f]["host"] for p in ("imap", "smtp") for f in ("psc", "authcli")]
    connection = ConnectionSettings(connect_timeout=10, command_timeout=10, resolve=dict.fromkeys(names, "127.0.0.1"))
    base: dict[str, Any] = {"connection": connection, "poll_interval": 0.5}
    base.update(changes)
    return MailboxOptions(**base)


class MintingSource(CallbackTokenSource):
    """A token source minting a new PSC session's token from the mock PSC; counts what it gave."""

    def __init__(self, sb: Sandbox, national_id: str = MARIE) -> None:
        self.issued: list[str] = []

        async def fetch() -> tuple[Secret, float]:
            answer = sb.psc.issue_tokens_for_tests(national_id, CLIENT_ID)
            self.issued.append(answer["access_token"])
            return Secret(answer["access_token"]), float(answer["expires_in"])

        super().__init__(fetch, margin=0.5)
        self.national_id = national_id


async def psc_session(sb: Sandbox, national_id: str = MARIE, *,
                      clock: Clock = SYSTEM_CLOCK) -> tuple[PSCClient, PSCSession]:
    """A real :class:`PSCSession` (refresh, ended, on_end) over the sandbox's mock PSC, on ``clock``."""
    client = PSCClient(PSCSettings.from_sandbox(sb.info), clock=clock)
    answer = sb.psc.issue_tokens_for_tests(national_id, CLIENT_ID)
    session = client.open_session(TokenSet.from_response(answer, now=clock.now()), margin=0.5)
    return client, session


def per_mailbox(sb: Sandbox, source: Any, *, traces: MemorySink | None = None, address: str = PER,
                kind: str = "PER", **opts: Any) -> Mailbox:
    """A PER (or ORG) mailbox found by DNS SRV."""
    return Mailbox(address, kind=kind, credentials=source, resolver=resolver(sb), tls=trust(sb),  # type: ignore[arg-type]
                   traces=traces, product_reference=PRODUCT, options=options(sb, **opts))


def app_mailbox(sb: Sandbox, *, traces: MemorySink | None = None, address: str = APP, cert_of: str | None = None,
                **opts: Any) -> Mailbox:
    """An APP mailbox with its ORG AUTH_CLI certificate (or the one of BAL ``cert_of``)."""
    bal = next(b for b in sb.info["bals"] if b["address"] == (cert_of or address))
    cert = ClientCertificate(cert=Path(bal["cert"]), key=Path(bal["key"]))
    return Mailbox(address, kind="APP", credentials=cert, resolver=resolver(sb), tls=trust(sb), traces=traces,
                   product_reference=PRODUCT, options=options(sb, **opts))


def draft(sender: str, to: str, subject: str, text: str = "Bonjour, voici le compte rendu.") -> Draft:
    """A plain MSSanté message."""
    return Draft(sender=Sender(address=sender), to=(to,), subject=subject, text=text)


def raw_message(sender: str, to: str, subject: str) -> bytes:
    """A small message for ``store.deliver`` (what the operator delivers while we are away)."""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nCorps.\r\n").encode()
