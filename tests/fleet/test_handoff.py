"""A PER/ORG BAL handed to the fleet by delegation at the bridge: no session secret on any worker, none in Redis.

The LPS (installation ``cabinet``) signs the professional in by CIBA against the sandbox's mock
PSC, then delegates the session to the fleet's own installation (``flotte``). Redis holds the BALs
with the session id as their reference; each worker holds the fleet's installation credential only
(its configuration), and gets tokens and events as a delegate. Workers on two "machines" (two
connectors, two bridge clients) take the BAL over from each other; the owner's revocation, or the
end of the session, stops the watches with a ``psc-session-ended`` event (ECO.1.2.6); and a scan of
every Redis key and value finds no secret and no token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mssante.bridge import Bridge, BridgeClient, BridgeTokenSource, RateLimit, TokenCipher
from mssante.client import Backoff
from mssante.fleet import BALSpec, FleetStore, MailboxConnector, Worker
from mssante.sandbox.runner import Sandbox
from tests.bridge._support import MARIE, MintedTokens, base_url, bind, sandbox_bridge, sandbox_config_for_bridge
from tests.client.test_mailbox_support import ORG, PER, options, resolver, running_sandbox, trust
from tests.fleet._support import APPS, Events, app, certificates, fleet_config, raw
from tests.fleet.test_bridge_fleet import QUICK, running  # the same quick worker and its runner

pytestmark = pytest.mark.slow

@contextlib.asynccontextmanager
async def handed_over(tmp_path: Path, store: FleetStore, **bridge_changes: Any
                      ) -> AsyncIterator[tuple[Sandbox, Bridge, BridgeTokenSource, str, set[str]]]:
    """The sandbox, the bridge, the LPS's session (delegated to ``flotte``), the fleet's secret, the secrets."""
    sock = bind()
    url = base_url(sock)
    config = fleet_config(sandbox_config_for_bridge(url, access_token=3.0))
    async with running_sandbox(tmp_path, config) as sb, \
            sandbox_bridge(sb.info, sock, tmp_path, cipher=TokenCipher.generate(), **bridge_changes) as bridge, \
            asyncio.timeout(120):
        lps_secret = await bridge.core.add_installation("cabinet")
        fleet_secret = await bridge.core.add_installation("flotte")
        async with BridgeClient(url, "cabinet", lps_secret, timeout=10) as lps:
            session = await lps.login_with_ciba(MARIE, on_binding=lambda _code: None, max_wait=10)
            assert await session.delegate("flotte") == ["flotte"]  # the whole handoff: one call of the LPS
            for address, kind in ((PER, "PER"), (ORG, "ORG")):
                await store.add(BALSpec(address=address, kind=kind, ref=session.session_id))  # type: ignore[arg-type]
            assert session._secret is not None
            yield sb, bridge, session, fleet_secret, {lps_secret, fleet_secret, session._secret.reveal()}


def machine(sb: Sandbox, bridge_client: BridgeClient, certs: Path | None = None) -> MailboxConnector:
    """A worker machine's connector: the fleet's bridge client, no session secrets directory (and APP certificates)."""
    return MailboxConnector(tls=trust(sb), bridge=bridge_client, resolver=resolver(sb),
                            certificates=certificates(sb, certs) if certs is not None else None,
                            options=options(sb, backoff=Backoff(initial=0.2, maximum=0.5)))


async def redis_dump(store: FleetStore) -> str:
    """Every key and every value of the fleet's Redis, as text."""
    r = store.redis
    out = []
    async for key in r.scan_iter(match="*", count=1000):
        kind = await r.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            value: object = await r.get(key)
        elif kind == "hash":
            value = await r.hgetall(key)
        elif kind == "set":
            value = await r.smembers(key)
        elif kind == "zset":
            value = await r.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await r.lrange(key, 0, -1)
        elif kind == "stream":
            value = await r.xrange(key)
        else:
            value = kind
        out.append(f"{key!r} {value!r}")
    return "\n".join(out)


async def test_delegated_session_watched_by_workers_refreshed_then_revoked(
        tmp_path: Path, store: FleetStore, monkeypatch: pytest.MonkeyPatch) -> None:
    minted = MintedTokens().install(monkeypatch)
    async with handed_over(tmp_path, store) as (sb, bridge, session, fleet_secret, secrets):
        url = bridge.config.base_url
        events = Events(store)
        async with BridgeClient(url, "flotte", fleet_secret, timeout=10) as first_machine, \
                BridgeClient(url, "flotte", fleet_secret, timeout=10) as second_machine:
            a = machine(sb, first_machine)
            worker_a = Worker(store, a, settings=QUICK, worker_id="w-a")
            async with running(worker_a):
                for address in (PER, ORG):
                    await sb.store.deliver(address, raw(address, f"avant {address[:5]}"))
                await events.until(lambda seen: len(events.messages()) == 2)
                source, users = a._sources[session.session_id]
                assert source.delegated and users == 2  # one delegate source for the two BALs of the session
                first = await source.token()
                # the bridge refreshes the delegated session ahead (the delegate listens); the worker's next
                # connection, after a drop, authenticates with a token it got again through the delegate path
                async with asyncio.timeout(30):
                    while (await source.token()).reveal() == first.reveal():  # noqa: ASYNC110 - a new token is the event
                        await asyncio.sleep(0.1)
                assert bridge.core.refreshes >= 1
                await sb.faults.end_sessions(PER, "drop")
                await sb.store.deliver(PER, raw(PER, "apres coupure"))
                await events.until(lambda seen: (PER, "apres coupure") in events.messages())
            # worker_a stopped (leases released): another machine, same configuration, takes the BALs over
            b = machine(sb, second_machine)
            async with running(Worker(store, b, settings=QUICK, worker_id="w-b")):
                await sb.store.deliver(ORG, raw(ORG, "sur b"))
                await events.until(lambda seen: (ORG, "sur b") in events.messages())
                assert b._sources[session.session_id][0].delegated
                # the owner revokes the delegation: both watches stop, each with its event (ECO.1.2.6)
                await session.revoke("flotte")
                seen = await events.until(lambda seen: sum(e.kind == "psc-session-ended" for e in seen) == 2)
                stopped = {e.bal: e.fields for e in seen if e.kind == "psc-session-ended"}
                assert stopped.keys() == {PER, ORG}
                # by the revocation event, or by the bridge's 404 to a token request of a BAL still connecting
                assert all("not (or no longer) delegated" in f["reason"] for f in stopped.values()), stopped
                assert (await store.stopped()).keys() == {PER, ORG}
                async with asyncio.timeout(10):
                    while b._sources:  # noqa: ASYNC110 - the last BAL of the session closes its listener
                        await asyncio.sleep(0.05)
            assert not session.ended.is_set()  # the LPS's own session goes on
            await session.token(fresh=True)
        assert sorted(events.messages()) == sorted([(PER, "avant marie"), (ORG, "avant secre"),
                                                    (PER, "apres coupure"), (ORG, "sur b")])
        dump = await redis_dump(store)
        assert session.session_id in dump  # the reference, and nothing else of the session
        leaked = [s for s in secrets | minted.every if s and s in dump]
        assert not leaked, "a secret or a token reached Redis"
        assert len(minted.access) >= 2


async def test_the_session_end_stops_the_delegated_watch(tmp_path: Path, store: FleetStore) -> None:
    async with handed_over(tmp_path, store) as (sb, bridge, session, fleet_secret, _secrets):
        events = Events(store)
        async with BridgeClient(bridge.config.base_url, "flotte", fleet_secret, timeout=10) as fleet_bridge:
            connector = machine(sb, fleet_bridge)
            async with running(Worker(store, connector, settings=QUICK, worker_id="w-end")):
                await sb.store.deliver(PER, raw(PER, "bonjour"))
                await events.until(lambda seen: (PER, "bonjour") in events.messages())
                await session.logout()  # the owner logs the professional out: the delegation ends with it
                seen = await events.until(lambda seen: sum(e.kind == "psc-session-ended" for e in seen) == 2)
                assert {e.bal for e in seen if e.kind == "psc-session-ended"} == {PER, ORG}
                assert (await store.stopped()).keys() == {PER, ORG}


async def test_a_session_never_delegated_stops_its_bals_only(tmp_path: Path, store: FleetStore) -> None:
    async with handed_over(tmp_path, store) as (sb, bridge, session, fleet_secret, _secrets):
        await session.revoke("flotte")  # the LPS changed its mind before any worker started
        await store.add(app(APPS[0]))
        events = Events(store)
        async with BridgeClient(bridge.config.base_url, "flotte", fleet_secret, timeout=10) as fleet_bridge, \
                running(Worker(store, machine(sb, fleet_bridge, tmp_path / "certs"), settings=QUICK,
                               worker_id="w-none")):
            seen = await events.until(lambda seen: sum(e.kind == "psc-session-ended" for e in seen) == 2)
            ended = {e.bal: e.fields["reason"] for e in seen if e.kind == "psc-session-ended"}
            assert ended.keys() == {PER, ORG}
            assert all("not_delegated" in reason for reason in ended.values()), ended
            await sb.store.deliver(APPS[0], raw(APPS[0], "toujours"))  # the other BALs are not affected
            await events.until(lambda seen: (APPS[0], "toujours") in events.messages())
        assert not session.ended.is_set()


async def test_a_fleet_over_its_bridge_rate_limit_waits_and_watches(tmp_path: Path, store: FleetStore) -> None:
    """Every request of the fleet counts for its one installation: refused 429, the worker retries (ECO.1.2.7)."""
    async with handed_over(tmp_path, store, per_installation=RateLimit(rate=1, burst=6)) as \
            (sb, bridge, _session, fleet_secret, _secrets):
        url = bridge.config.base_url
        async with httpx2.AsyncClient(base_url=url, auth=httpx2.BasicAuth("flotte", fleet_secret),
                                      trust_env=False) as drain:
            while (await drain.get("/delegated/none/events")).status_code != 429:  # empty the fleet's bucket
                pass
        events = Events(store)
        statuses: list[int] = []

        async def seen(response: httpx2.Response) -> None:
            statuses.append(response.status_code)

        async with BridgeClient(url, "flotte", fleet_secret, timeout=10) as fleet_bridge:
            fleet_bridge.http.event_hooks["response"].append(seen)
            async with running(Worker(store, machine(sb, fleet_bridge), settings=QUICK, worker_id="w-limited")):
                for address in (PER, ORG):
                    await sb.store.deliver(address, raw(address, f"limite {address[:5]}"))
                await events.until(lambda seen: len(events.messages()) == 2)
        assert 429 in statuses and 200 in statuses, statuses
        assert not [e for e in events.seen if e.kind != "message"]  # no BAL stopped by a 429
        assert not await store.stopped()
