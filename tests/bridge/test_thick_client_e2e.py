"""End to end on the sandbox: a thick client gets its PSC tokens from the bridge, never from PSC.

What the bridge issue asks to show, with every component real (sandbox fronts, mock PSC,
bridge under uvicorn, ``mssante.client.Mailbox``, Chromium):

1. a browser login driven in Chromium ends with a token source in the thick client;
2. a PER Mailbox fed by the bridge keeps working across several access token lifetimes,
   re-authenticating with renewed tokens each time the operator closes its sessions;
3. a PSC logout (back-channel logout to the bridge) closes every IMAP/SMTP session within 2 s;
4. no token minted by the mock is left in the test's directories, traces or logs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mssante.bridge import BridgeClient, BridgeTokenSource, TokenCipher
from mssante.client import ConnectionSettings, Mailbox, MailboxOptions, SessionSupervisor, TrustSettings
from mssante.discovery import DNSPythonResolver
from mssante.errors import PSCError
from mssante.message import Draft, Sender
from mssante.sandbox.runner import Sandbox
from mssante.secret import Secret
from mssante.trace import JSONLinesSink
from tests.bridge._support import (
    CHROMIUM,
    MARIE,
    MintedTokens,
    base_url,
    bind,
    chromium_login,
    files_containing,
    sandbox_bridge,
    sandbox_config_for_bridge,
)

PER = "marie.curie@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"
LAB = "sil.labo@mss.sandbox.test"
PRODUCT = "E2E0000001"
ACCESS_TOKEN_LIFE = 2.0


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state directory for the module: the test PKI and PSC key are made once."""
    return tmp_path_factory.mktemp("e2e-sandbox") / "state"


@pytest.fixture
def minted(monkeypatch: pytest.MonkeyPatch) -> MintedTokens:
    return MintedTokens().install(monkeypatch)


class SeenTokens:
    """A TokenSource in front of the bridge's: remembers each token handed to the Mailbox, and when."""

    def __init__(self, source: BridgeTokenSource) -> None:
        self.source = source
        self.handed: list[tuple[float, str]] = []

    async def token(self, *, fresh: bool = False) -> Secret:
        token = await self.source.token(fresh=fresh)
        self.handed.append((time.time(), token.reveal()))
        return token

    def on_end(self, callback: Callable[[Any], Any]) -> None:
        self.source.on_end(lambda _source: callback(self))

    @property
    def ended(self) -> asyncio.Event:
        return self.source.ended


@dataclass
class Rig:
    """A sandbox with a bridge in front of its mock PSC, and a thick client registered there."""

    sb: Sandbox
    client: BridgeClient
    bridge_url: str
    tmp: Path

    def mailbox(self, credentials: Any, **options: Any) -> Mailbox:
        info = self.sb.info
        hosts = {info[p][f]["host"]: "127.0.0.1" for p in ("imap", "smtp") for f in ("psc", "authcli")}
        return Mailbox(PER, kind="PER", credentials=credentials, tls=TrustSettings(ca_bundle=Path(info["ca_bundle"])),
                       resolver=DNSPythonResolver(nameservers=[info["dns"]["host"]], port=info["dns"]["port"]),
                       traces=JSONLinesSink(self.tmp / "traces.jsonl"), product_reference=PRODUCT,
                       options=MailboxOptions(connection=ConnectionSettings(
                           resolve=hosts, connect_timeout=5, command_timeout=10), **options))


@contextlib.asynccontextmanager
async def rig(tmp: Path, sandbox_dir: Path, cipher: TokenCipher, *,
              access_token: float = ACCESS_TOKEN_LIFE) -> AsyncIterator[Rig]:
    sock = bind()  # the bridge's port must be known before the sandbox registers its back-channel URI
    url = base_url(sock)
    async with Sandbox(sandbox_config_for_bridge(url, access_token=access_token), sandbox_dir) as sb, \
            sandbox_bridge(sb.info, sock, tmp, cipher=cipher) as bridge:
        secret = await bridge.core.add_installation("poste-e2e")
        async with BridgeClient(url, "poste-e2e", secret, margin=0.8, timeout=10) as client:
            yield Rig(sb=sb, client=client, bridge_url=url, tmp=tmp)
            sb.journal.export_jsonl(tmp / "journal.jsonl")  # searched for tokens too


@pytest.fixture
def no_token_left(tmp_path: Path, sandbox_dir: Path, minted: MintedTokens, caplog: pytest.LogCaptureFixture,
                  capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], None]]:
    """Requirement 4 (ECO.1.2.5): the check a test calls once everything is stopped."""
    caplog.set_level(logging.DEBUG)
    # pymap's protocol dump at DEBUG needs a context variable the sandbox's IMAP front never
    # sets: with it on, every IMAP connection fails at the greeting (see the report). Not
    # caplog.set_level(..., logger="pymap"): that would lower the capture handler to INFO too.
    pymap = logging.getLogger("pymap")
    level = pymap.level
    pymap.setLevel(logging.INFO)

    def check() -> None:
        assert minted.access, "the mock minted no access token: nothing was tested"
        out, err = capfd.readouterr()
        # The tokens, and the access tokens as they travel in SASL XOAUTH2 (base64), if a
        # protocol dump had kept them.
        secrets = minted.every | {xoauth2(t) for t in minted.access}
        searched = {p.name for p in tmp_path.iterdir()}
        assert {"bridge.sqlite3", "bridge-audit.jsonl", "traces.jsonl", "journal.jsonl"} <= searched, searched
        assert files_containing([tmp_path, sandbox_dir], secrets) == []
        logs = caplog.text + out + err
        leaked = [i for i, t in enumerate(minted.access) if t in logs or xoauth2(t) in logs]
        assert leaked == [], f"access tokens #{leaked} of {len(minted.access)} appear in the captured logs"
        assert not any(t in logs for t in minted.other), "a refresh or ID token appears in the captured logs"

    try:
        yield check
    finally:
        pymap.setLevel(level)


def xoauth2(token: str) -> str:
    return base64.b64encode(f"user={PER}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def auths(sb: Sandbox, since: float) -> list[Any]:
    return [r for r in sb.journal.records(bal=PER, since=since) if r.auth_at is not None]


# -- 1. Browser login in Chromium ---------------------------------------------------------------------

@pytest.mark.browser
async def test_browser_login_in_chromium(tmp_path: Path, sandbox_dir: Path, cipher: TokenCipher,
                                         minted: MintedTokens, no_token_left: Callable[[], None]) -> None:
    pytest.importorskip("playwright.async_api", reason="playwright is not installed (pip install playwright)")
    if shutil.which(str(CHROMIUM)) is None:
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    # A token that outlives the browser's run, however slow the machine: this test is about the
    # login; renewal across short lifetimes is test_per_mailbox_works_across_token_lifetimes's.
    async with rig(tmp_path, sandbox_dir, cipher, access_token=120) as r:
        pending = await r.client.begin_browser_login()
        assert pending.url.startswith(r.sb.info["psc"]["issuer"] + "/protocol/openid-connect/auth?")
        landed, text = await chromium_login(pending.url, tmp_path / "chromium-profile", national_id=MARIE,
                                            until=r.bridge_url + "/callback?")
        assert "code=" in landed and "Connexion réussie" in text
        source = await pending.wait(10)
        assert source.subject == MARIE
        claims = r.sb.psc.validate_access_token((await source.token()).reveal())
        assert claims["preferred_username"] == MARIE and claims["azp"] == r.sb.info["psc"]["client_id"]
        # The token the browser login produced opens the professional's BAL.
        async with r.mailbox(source) as box:
            assert await box.list("INBOX") == []
        assert [a.auth_result for a in auths(r.sb, 0)] == ["OK"]
        await source.logout()
        assert source.end_reason == "logout"
    assert len(minted.access) == 1  # one login, no refresh needed within the token's life
    no_token_left()


# -- 2. Several token lifetimes --------------------------------------------------------------------------

async def test_per_mailbox_works_across_token_lifetimes(tmp_path: Path, sandbox_dir: Path, cipher: TokenCipher,
                                                        minted: MintedTokens,
                                                        no_token_left: Callable[[], None]) -> None:
    async with rig(tmp_path, sandbox_dir, cipher) as r:
        sb = r.sb
        shown: list[str] = []
        source = await r.client.login_with_ciba(MARIE, on_binding=shown.append, max_wait=10)
        assert shown and source.subject == MARIE
        seen = SeenTokens(source)
        start = time.time()
        done: list[str] = []
        async with r.mailbox(seen) as box:
            rounds = 0
            while time.time() - start < 4 * ACCESS_TOKEN_LIFE:
                rounds += 1
                subject = f"Suivi patient {rounds}"
                sent = await box.send(Draft(sender=Sender(address=PER, label="Dr Marie CURIE"), to=(APP,),
                                            subject=subject, text="Bonjour,\nsuivi du patient.\n"))
                assert sent.accepted == (APP,) and sent.sent_uid is not None
                done.append(f"send {rounds}")
                await sb.store.deliver(PER, (f"From: {LAB}\r\nTo: {PER}\r\nSubject: Résultat {rounds}\r\n"
                                             f"Message-ID: <r{rounds}@labo.test>\r\n\r\nRésultat.\r\n").encode())
                inbox = await box.list("INBOX")
                assert len(inbox) == rounds and inbox[-1].subject == f"Résultat {rounds}"
                assert (await box.fetch(inbox[-1].uid)).parsed.subject == f"Résultat {rounds}"
                sent_copy = await box.fetch(sent.sent_uid, await box.special_folder("\\Sent"))
                assert sent_copy.parsed.subject == subject
                done.append(f"list/fetch {rounds}")
                # The operator closes the BAL's sessions (restart, idle timeout): the next
                # operations must reconnect and authenticate again, with a token valid now.
                assert await sb.faults.end_sessions(PER, mode="bye" if rounds % 2 else "drop") >= 1
                await asyncio.sleep(0.4)
        elapsed = time.time() - start
        assert rounds >= 4, f"only {rounds} rounds in {elapsed:.1f} s"
        assert done == [f"{op} {i}" for i in range(1, rounds + 1) for op in ("send", "list/fetch")]

        # The APP BAL received every message.
        received = await sb.store.list_messages(APP)
        assert [m.headers.get("Subject") for m in received] == [f"Suivi patient {i}" for i in range(1, rounds + 1)]

        # The journal: one IMAP and one SMTP authentication per round, all accepted at the first
        # try (the bridge renewed the token before it expired), spread over several lifetimes.
        records = auths(sb, start - 1)
        results = [(rec.protocol, rec.auth_result) for rec in records]
        assert all(result == "OK" for _, result in results), results
        assert {p for p, _ in results} == {"imap", "smtp"}
        assert len(records) >= 2 * rounds
        span = max(rec.auth_at for rec in records) - min(rec.auth_at for rec in records)
        assert span > 3 * ACCESS_TOKEN_LIFE

        # The tokens presented: each minted by the mock, renewed along the way, and each one
        # handed out while still valid (the front checked it; here its exp is checked too).
        handed = [t for _, t in seen.handed]
        assert len(handed) == len(records)  # one token per authentication, no retry with a fresh one
        assert set(handed) <= set(minted.access)
        assert len(set(handed)) >= 4, f"{len(set(handed))} distinct tokens over {elapsed:.1f} s"
        for at, token in seen.handed:
            claims = _claims(token)
            assert claims["iat"] - 1 <= at < claims["exp"] and claims["preferred_username"] == MARIE
        await source.logout()
    no_token_left()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# -- 3. PSC logout closes every session within 2 s ---------------------------------------------------------

async def test_psc_logout_closes_every_session_within_2s(tmp_path: Path, sandbox_dir: Path, cipher: TokenCipher,
                                                         minted: MintedTokens,
                                                         no_token_left: Callable[[], None]) -> None:
    async with rig(tmp_path, sandbox_dir, cipher) as r:
        sb = r.sb
        source = await r.client.login_with_ciba(MARIE, max_wait=10)
        await asyncio.wait_for(source.listening.wait(), 2)
        box = r.mailbox(source)
        events: list[str] = []
        async with SessionSupervisor(on_event=lambda e: events.append(e.kind)) as supervisor:
            arrived: asyncio.Queue[str] = asyncio.Queue()
            supervisor.add(box, on_message=lambda _box, summary: arrived.put_nowait(summary.subject or ""))
            await box.send(Draft(sender=Sender(address=PER), to=(APP,), subject="Avant déconnexion", text="Bonjour"))
            # The watch is live: a message delivered to the BAL ends its IDLE (recorded once done)
            # and reaches on_message; then the watch goes back to IDLE.
            await _until(lambda: any(_watching(rec) for rec in sb.journal.records(bal=PER)), 5, "no watch")
            await sb.store.deliver(PER, f"From: {LAB}\r\nTo: {PER}\r\nSubject: Nouveau\r\n\r\nCorps.\r\n".encode())
            assert await asyncio.wait_for(arrived.get(), 5) == "Nouveau"
            await _until(lambda: any(_idled(rec) for rec in sb.journal.records(bal=PER)), 2, "no IDLE recorded")
            await asyncio.sleep(0.3)  # back in IDLE
            live = sb.journal.records(bal=PER)
            assert {rec.protocol for rec in live if rec.ended_at is None} == {"imap", "smtp"}
            assert len(sb.faults.sessions(PER)) >= 3  # IDLE, IMAP commands (Sent copy), SMTP

            # The professional logs out at PSC: back-channel logout to the bridge, event to the client.
            started, wall = time.monotonic(), time.time()
            assert await sb.psc.end_session(MARIE) == 1
            await asyncio.wait_for(box.ended.wait(), 2 - (time.monotonic() - started))
            await _until(lambda: all(rec.ended_at is not None for rec in sb.journal.records(bal=PER))
                         and not sb.faults.sessions(PER), 2 - (time.monotonic() - started),
                         "sessions still open at the front")
            took = time.monotonic() - started
            assert took < 2.0
            assert all(rec.ended_at is not None and rec.ended_at < wall + 2.0 for rec in sb.journal.records(bal=PER))
            assert source.end_reason == "backchannel_logout"
            await _until(lambda: supervisor.status(PER) == "ended", 1, "the supervisor did not see the end")
            assert "ended" in events
            with pytest.raises(PSCError) as info:
                await box.list("INBOX")
            assert info.value.oauth_error == "invalid_grant"
            with pytest.raises(PSCError):
                await source.token()
        # No session was reopened after the end.
        assert all(rec.started_at < wall for rec in sb.journal.records(bal=PER))
    no_token_left()


def _watching(record: Any) -> bool:
    return record.protocol == "imap" and record.ended_at is None and any(
        c.command.split()[1:3] == ["SELECT", "INBOX"] for c in record.commands) and any(
        c.command.split()[1:3] == ["UID", "SEARCH"] for c in record.commands)


def _idled(record: Any) -> bool:
    return record.protocol == "imap" and record.ended_at is None and any(
        c.command.split()[1:2] == ["IDLE"] for c in record.commands)


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + max(within, 0)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(0.02)
