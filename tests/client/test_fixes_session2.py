"""Session 2 fixes: addresses through the injected resolver, closed mailboxes and the PSC session end,
the exception behind a watch reconnection, and the supervisor's opt-in PSC session check."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mssante.bridge.client import BridgeTokenSource
from mssante.client import (
    Backoff,
    ConnectionSettings,
    Mailbox,
    MailboxEvent,
    MailboxOptions,
    SessionSupervisor,
    SupervisorEvent,
    TrustSettings,
)
from mssante.credentials import ClientCertificate
from mssante.discovery import DNSPythonResolver, ManualServers, SRVRecord
from mssante.errors import AuthUnavailable, ConnectError, ConnectionClosed, DiscoveryError, PSCError, UsageError
from mssante.psc import PSCSession, TokenSet
from mssante.secret import Secret
from mssante.testing import FakeClock
from mssante.trace import MemorySink
from tests.client.test_mailbox_support import APP, PER, per_mailbox, psc_session, running_sandbox, short_tokens

_FAST = Backoff(initial=0.01, maximum=0.02, jitter=0.0, attempts=1)
_NOWHERE = ManualServers(imap=("127.0.0.1", 9), submission=("127.0.0.1", 9))
_NO_REVOCATION = TrustSettings(revocation="off")


@pytest.fixture
def cert(tmp_path: Path) -> ClientCertificate:
    """A certificate that is never loaded (these mailboxes open no TLS connection)."""
    for name in ("unused.pem", "unused.key"):
        (tmp_path / name).write_text("")
    return ClientCertificate(cert=tmp_path / "unused.pem", key=tmp_path / "unused.key")


async def _until(predicate: Any, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


# -- 1. host addresses through the injected resolver ---------------------------------------------


class _SRVOnly:
    """A resolver written before ``resolve_address`` existed (SRV only)."""

    def __init__(self, inner: DNSPythonResolver) -> None:
        self.inner = inner

    async def resolve_srv(self, name: str) -> Sequence[SRVRecord]:
        return await self.inner.resolve_srv(name)


class _Addresses(_SRVOnly):
    """SRV from the sandbox DNS, addresses from a fixed list (and every lookup recorded)."""

    def __init__(self, inner: DNSPythonResolver, addresses: list[str]) -> None:
        super().__init__(inner)
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve_address(self, host: str) -> list[str]:
        self.asked.append(host)
        return list(self.addresses)


def _sandbox_dns(sb: Any) -> DNSPythonResolver:
    return DNSPythonResolver(nameservers=[sb.info["dns"]["host"]], port=sb.info["dns"]["port"])


def _plain(**changes: Any) -> MailboxOptions:
    """Fast options with no ``resolve`` mapping: the addresses must come from somewhere else."""
    return MailboxOptions(connection=ConnectionSettings(connect_timeout=10, command_timeout=10, **changes),
                          backoff=_FAST, poll_interval=0.5)


@pytest.mark.slow
async def test_srv_targets_resolve_through_the_injected_resolver(sandbox_state: Path) -> None:
    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(60):
        dns = _sandbox_dns(sb)
        target = sb.info["imap"]["authcli"]["host"].lower()
        assert await dns.resolve_address(target) == ["127.0.0.1"]  # A first (the sandbox has no AAAA)
        with pytest.raises(DiscoveryError, match="NXDOMAIN"):
            await dns.resolve_address(f"nothing.{sb.info['domain']}")

        # The resolver alone: SRV records and the fronts' addresses from the private DNS.
        bal = next(b for b in sb.info["bals"] if b["address"] == APP)
        cert = ClientCertificate(cert=Path(bal["cert"]), key=Path(bal["key"]))
        trust = TrustSettings(ca_bundle=Path(sb.info["ca_bundle"]))
        events: list[MailboxEvent] = []
        async with Mailbox(APP, kind="APP", credentials=cert, resolver=dns, tls=trust, options=_plain()) as box:
            box.add_listener(events.append)
            assert isinstance(await box.folders(), list)
            async with box.imap_session() as conn:
                assert conn.server_name == target  # TLS still checks the SRV target name
        assert any(e.kind == "connected" and e.detail == f"imap {target}" for e in events)

        # Several addresses: an unreachable one is skipped (nothing listens on 127.0.0.2).
        several = _Addresses(dns, ["127.0.0.2", "127.0.0.1"])
        async with Mailbox(APP, kind="APP", credentials=cert, resolver=several, tls=trust, options=_plain()) as box:
            await box.folders()
        assert several.asked == [target]

        # ``resolve`` stays an override: the resolver is not asked for a mapped host.
        mapped = _Addresses(dns, ["192.0.2.1"])  # TEST-NET: would fail if used
        options = _plain(resolve={target: "127.0.0.1"})
        async with Mailbox(APP, kind="APP", credentials=cert, resolver=mapped, tls=trust, options=options) as box:
            await box.folders()
        assert mapped.asked == []

        # A resolver without resolve_address: the system resolver, which does not know the sandbox.
        async with Mailbox(APP, kind="APP", credentials=cert, resolver=_SRVOnly(dns), tls=trust,
                           options=_plain()) as box:
            with pytest.raises(ConnectError):
                await box.folders()
            # ... and with the mapping, as before.
        async with Mailbox(APP, kind="APP", credentials=cert, resolver=_SRVOnly(dns), tls=trust,
                           options=options) as box:
            await box.folders()


async def test_a_failed_address_lookup_is_a_connection_failure(cert: ClientCertificate) -> None:
    class Nothing(_SRVOnly):
        async def resolve_srv(self, name: str) -> Sequence[SRVRecord]:
            return [SRVRecord(priority=20, weight=0, port=143, target="imap.authcli.example.test")]

        async def resolve_address(self, host: str) -> list[str]:
            raise DiscoveryError(f"{host}: no such domain (NXDOMAIN)")

    box = Mailbox("dpi@example.test", kind="APP", credentials=cert, resolver=Nothing(None),  # type: ignore[arg-type]
                  tls=_NO_REVOCATION, options=MailboxOptions(backoff=_FAST))
    with pytest.raises(ConnectError) as info:
        await box.folders()
    assert isinstance(info.value.__cause__, DiscoveryError)
    await box.aclose()


# -- 2. closed mailboxes no longer react to the end of the PSC session ---------------------------


class _Owner:
    async def refresh(self, tokens: TokenSet) -> TokenSet:
        raise PSCError("refused", oauth_error="invalid_grant")

    def _session_ended(self, session: PSCSession) -> None:
        return None


def _session() -> PSCSession:
    tokens = TokenSet(access_token=Secret("at"), expires_at=time.time() + 300, refresh_token=Secret("rt"))
    return PSCSession(_Owner(), tokens, margin=10)


def _bridge_source() -> BridgeTokenSource:
    return BridgeTokenSource(None, "s1", Secret("secret"))  # type: ignore[arg-type] - never asked for a token


def _per(credentials: Any, traces: MemorySink | None = None) -> Mailbox:
    return Mailbox("marie@example.test", kind="PER", credentials=credentials, servers=_NOWHERE,
                   tls=_NO_REVOCATION, traces=traces)


@pytest.mark.parametrize("make", [_session, _bridge_source], ids=["psc-session", "bridge"])
async def test_a_closed_mailbox_ignores_the_end_of_the_psc_session(make: Any) -> None:
    source = make()
    traces = MemorySink()
    events: list[MailboxEvent] = []
    box = _per(source, traces)
    box.add_listener(events.append)
    await box.aclose()
    if isinstance(source, PSCSession):
        source.end("logout")
    else:
        source._end("logout")
    assert box.end_reason is None and not box.ended.is_set()
    assert [e.kind for e in events] == ["closed"]
    assert not any(r.action == "disconnect" for r in traces.records)
    box.end("late")  # a no-op on a closed mailbox
    assert box.end_reason is None
    with pytest.raises(UsageError):
        await box.list()


@pytest.mark.parametrize("make", [_session, _bridge_source], ids=["psc-session", "bridge"])
async def test_the_token_source_forgets_closed_mailboxes(make: Any) -> None:
    source = make()
    refs = []
    for _ in range(3):
        box = _per(source)
        refs.append(weakref.ref(box))
        await box.aclose()
    del box
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
    assert len(source._callbacks) == 0
    still_open = _per(source)  # an open mailbox still ends with the session
    if isinstance(source, PSCSession):
        source.end("logout")
    else:
        source._end("logout")
    # a bridge source says why (the same words on every path: its event stream, a 404, a mailbox made after)
    assert still_open.end_reason == ("the PSC session ended" if isinstance(source, PSCSession)
                                     else "the PSC session is over (logout)")


async def test_remove_on_end_is_harmless_for_an_unknown_callback() -> None:
    session = _session()
    session.remove_on_end(lambda _s: None)
    source = _bridge_source()
    source.remove_on_end(lambda _s: None)


# -- 3. the exception behind a watch reconnection reaches the events -----------------------------


class _Flaky(Mailbox):
    """Refuses with [UNAVAILABLE], then drops, then stops (no network)."""

    failures: list[Exception]

    async def open_imap(self) -> Any:
        if self.failures:
            raise self.failures.pop(0)
        await self.aclose()
        raise ConnectionClosed("closed")


def _flaky(cert: ClientCertificate, failures: list[Exception]) -> _Flaky:
    box = _Flaky(APP, kind="APP", credentials=cert, servers=_NOWHERE, tls=_NO_REVOCATION,
                 options=MailboxOptions(backoff=_FAST))
    box.failures = failures
    return box


async def test_watch_disconnections_carry_their_exception(cert: ClientCertificate) -> None:
    unavailable = AuthUnavailable("server busy", imap_code="UNAVAILABLE")
    drop = ConnectError("connection reset")
    box = _flaky(cert, [unavailable, drop])
    events: list[MailboxEvent] = []
    box.add_listener(events.append)
    async with asyncio.timeout(5):
        assert [m async for m in box.watch()] == []
    assert [(e.kind, e.error) for e in events if e.kind == "disconnected"] == [
        ("disconnected", unavailable), ("disconnected", drop)]


async def test_supervisor_events_tell_unavailable_from_a_drop(cert: ClientCertificate) -> None:
    unavailable = AuthUnavailable("server busy", imap_code="UNAVAILABLE")
    drop = ConnectError("connection reset")
    box = _flaky(cert, [unavailable, drop])
    events: list[SupervisorEvent] = []
    async with SessionSupervisor(on_event=events.append, backoff=_FAST) as sup:
        sup.add(box)
        await _until(lambda: sup.status(APP) == "stopped", 5)
    errors = [e.error for e in events if e.kind == "disconnected"]
    assert errors == [unavailable, drop]
    assert isinstance(errors[0], AuthUnavailable) and errors[0].imap_code == "UNAVAILABLE"


# -- 4. the supervisor's opt-in PSC session check ------------------------------------------------


class _Revocable:
    """A token source whose PSC session can be revoked (no back-channel: nobody is told)."""

    def __init__(self) -> None:
        self.calls = 0
        self.revoked = False
        self.unavailable = False

    async def token(self, *, fresh: bool = False) -> Secret:
        self.calls += 1
        if self.revoked:
            raise PSCError("the PSC session is over (revoked)", oauth_error="invalid_grant")
        if self.unavailable:
            raise AuthUnavailable("PSC is unreachable", imap_code="UNAVAILABLE")
        return Secret("at")


class _Idle(Mailbox):
    """A mailbox whose IMAP session is open and idle: it asks for no token until its sessions end."""

    async def open_imap(self) -> Any:
        await self.ended.wait()
        raise ConnectionClosed("aborted")


def _idle(source: Any, kind: str = "PER", address: str = PER) -> _Idle:
    return _Idle(address, kind=kind, credentials=source, servers=_NOWHERE, tls=_NO_REVOCATION,  # type: ignore[arg-type]
                 options=MailboxOptions(backoff=_FAST))


async def test_psc_check_ends_an_idle_bal_whose_session_was_revoked() -> None:
    source = _Revocable()
    box = _idle(source)
    events: list[SupervisorEvent] = []
    clock = FakeClock()
    async with SessionSupervisor(on_event=events.append, backoff=_FAST, psc_check=60.0, clock=clock) as sup:
        sup.add(box)
        await clock.wait_for_sleepers()  # the check waits its period on the supervisor's clock
        await clock.advance(120)
        assert source.calls == 2
        source.unavailable = True  # a PSC outage does not end the BAL (ECO.1.2.7)
        await clock.advance(120)
        assert source.calls == 4 and sup.status(PER) == "running"
        source.unavailable, source.revoked = False, True
        await clock.advance(60)
        await _until(lambda: sup.status(PER) == "ended", 2)
        assert box.end_reason is not None and "revoked" in box.end_reason
        calls = source.calls
        await clock.advance(3600)  # an hour later
        assert source.calls == calls and clock.sleepers == 0  # no more checks once the BAL ended
    assert any(e.kind == "ended" and e.address == PER for e in events)


async def test_psc_check_is_off_by_default_and_skips_app_bals(cert: ClientCertificate) -> None:
    source = _Revocable()
    source.revoked = True
    box = _idle(source)
    clock = FakeClock()
    async with SessionSupervisor(backoff=_FAST, clock=clock) as sup:
        sup.add(box)
        await clock.advance(24 * 3600)  # a day of the supervisor's time, in no time
        assert source.calls == 0 and sup.status(PER) == "running" and clock.sleepers == 0
    app = _flaky(cert, [])
    async with SessionSupervisor(backoff=_FAST, psc_check=0.05) as sup:
        sup.add(app)
        await _until(lambda: sup.status(APP) == "stopped", 2)
        assert sup._entry(APP).psc_watch is None


@pytest.mark.parametrize("bad", [0, -1.0])
def test_psc_check_must_be_positive(bad: float) -> None:
    with pytest.raises(UsageError):
        SessionSupervisor(psc_check=bad)


@pytest.mark.slow
async def test_psc_check_against_the_sandbox_psc(sandbox_state: Path) -> None:
    """A real PSCSession: a PSC logout without back-channel ends the idle BAL within a few checks."""
    clock = FakeClock(start=time.time())  # shared by the mock PSC, the session and the supervisor
    async with running_sandbox(sandbox_state, short_tokens(2.0), clock=clock) as sb, asyncio.timeout(60):
        client, session = await psc_session(sb, clock=clock)
        box = per_mailbox(sb, session)
        async with client, SessionSupervisor(backoff=_FAST, psc_check=0.2, clock=clock) as sup:
            sup.add(box)
            await _until(lambda: len(sb.faults.sessions(PER)) == 1, 10)
            assert await sb.psc.end_session(session.national_id or "899700000001") >= 1
            # the access token is still cached: the check refreshes only near its expiry, which the
            # test brings by moving the clock (0.2 s checks, a 2 s token refreshed 0.5 s ahead)
            for _ in range(20):
                if sup.status(PER) == "ended":
                    break
                await clock.advance(0.2)
            await _until(lambda: sup.status(PER) == "ended", 15)
            assert session.ended.is_set()
            await _until(lambda: not sb.faults.sessions(PER), 2)
