"""Workers against the sandbox and a real redis-server: balance, takeover, nothing missed or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mssante.client import ConnectLimiter, Mailbox
from mssante.errors import PSCError
from mssante.fleet import BALSpec, FleetStore, MailboxConnector, Worker, WorkerSettings
from mssante.psc import PSCSession
from mssante.sandbox.runner import Sandbox
from tests.client.test_mailbox_support import MARIE, PER, per_mailbox, psc_session, running_sandbox, short_tokens
from tests.fleet._support import APPS, Events, app, apps_watched, connector, fleet_config, raw, until_held
from tests.fleet.conftest import RedisServer

pytestmark = pytest.mark.slow

QUICK = WorkerSettings(capacity=10, lease_ttl=1.0, connect_rate=50, connect_burst=10)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.shutdown()
        try:
            await task
        except asyncio.CancelledError:
            # The worker's own end, cancelled: expected. The test's bound (an ``asyncio.timeout`` around the
            # block) cancelling us while a stop hangs must fail the test, not pass it late: a CI run passed
            # after 122 s against a 120-s bound, its timeout swallowed here.
            if (current := asyncio.current_task()) is not None and current.cancelling():
                raise


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the worker's own state is the event
            await asyncio.sleep(0.02)


async def redis_contents(store: FleetStore) -> str:
    """Every key and value of the Redis database, as one string."""
    out = []
    async for key in store.redis.scan_iter():
        kind = await store.redis.type(key)
        value = {"string": store.redis.get, "hash": store.redis.hgetall, "zset": lambda k: store.redis.zrange(k, 0, -1),
                 "stream": store.redis.xrange}[kind](key)
        out.append(f"{key}={await value}")
    return "\n".join(out)


async def deliver(sb: Sandbox, subjects: dict[str, list[str]]) -> None:
    for address, names in subjects.items():
        for name in names:
            await sb.store.deliver(address, raw(address, name))


async def test_workers_balance_and_take_over_a_dead_one_nothing_missed_or_doubled(
        tmp_path: Path, store: FleetStore) -> None:
    async with apps_watched(tmp_path, store) as (sb, events, boxes), asyncio.timeout(120):
        # the lease TTL, the safety net (test_presence.py: faster); 3 s, room to look at the dead worker's leases
        ttl_only = replace(QUICK, lease_ttl=3.0, presence_interval=None)
        w1, w2 = (Worker(store, boxes, settings=ttl_only, worker_id=name) for name in ("w1", "w2"))
        async with running(w1):
            await until_held(store, APPS, lambda h: all(v == "w1" for v in h.values()))
            await deliver(sb, {a: [f"{a}-1"] for a in APPS})
            await events.until(lambda seen: len(events.messages()) == 4)
            crashed = asyncio.create_task(w2.run())
            # w2 joins: w1 releases half, w2 claims them
            held = await until_held(store, APPS, lambda h: Counter(h.values()) == {"w1": 2, "w2": 2})
            w2_bals = [a for a, w in held.items() if w == "w2"]
            await deliver(sb, {a: [f"{a}-2"] for a in APPS})
            await events.until(lambda seen: len(events.messages()) == 8)
            # w2 dies without releasing anything (like kill -9); messages arrive while nobody watches its BALs
            crashed.cancel()
            # still its leases (looked at before its sessions finish closing, which can take a second)
            assert all(v == "w2" for a, v in (await until_held(store, APPS, lambda h: True)).items() if a in w2_bals)
            with contextlib.suppress(asyncio.CancelledError):
                await crashed
            await deliver(sb, {a: [f"{a}-3", f"{a}-4"] for a in APPS})
            await until_held(store, APPS, lambda h: all(v == "w1" for v in h.values()))
            await events.until(lambda seen: len(events.messages()) == 16)
        expected = {(a, f"{a}-{n}") for a in APPS for n in range(1, 5)}
        assert Counter(events.messages()) == Counter(expected)  # each once: none missed, none doubled
        assert all(json.loads(e.fields["x_mss"]) == {"X-MSS-NIL": "DEV000001"} for e in events.seen)
        assert w1.figures.takeovers >= 2
        # w1 shut down cleanly: its leases are released at once
        assert set((await until_held(store, APPS, lambda h: True)).values()) == {None}


async def test_a_bad_reference_gives_a_clear_error_and_the_others_go_on(tmp_path: Path, store: FleetStore) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        bad, good = APPS[0], APPS[1]
        await store.add(app(bad, ref="structure-inconnue"))
        await store.add(app(good))
        events = Events(store)
        async with running(Worker(store, connector(sb, tmp_path), settings=QUICK)):
            (error,) = [e for e in await events.until(lambda seen: any(e.kind == "bal-error" for e in seen))
                        if e.kind == "bal-error"]
            assert error.bal == bad and "structure-inconnue.pem does not exist" in error.fields["reason"]
            assert error.fields["bal_kind"] == "APP"
            await deliver(sb, {good: ["ok"], bad: ["perdu"]})
            await events.until(lambda seen: events.messages() == [(good, "ok")])
            assert (await store.stopped()).keys() == {bad}
        assert [e.kind for e in events.seen].count("bal-error") == 1  # reported once, not retried in a loop


async def test_a_bal_without_bridge_is_refused_by_the_standard_connector(tmp_path: Path, store: FleetStore) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        await store.add(BALSpec(address="marie.curie@mss.sandbox.test", kind="PER", ref="session-1"))
        events = Events(store)
        boxes: MailboxConnector = connector(sb, tmp_path)
        async with running(Worker(store, boxes, settings=QUICK)):
            seen = await events.until(lambda seen: bool(seen))
        assert seen[0].kind == "bal-error" and "no bridge configured for BAL PER" in seen[0].fields["reason"]


async def test_redis_restarting_mid_run_the_sessions_stay_and_publishing_resumes(
        tmp_path: Path, store: FleetStore, redis_server: RedisServer) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(90):
        bals = APPS[:2]
        for address in bals:
            await store.add(app(address))
        events = Events(store)
        worker = Worker(store, connector(sb, tmp_path), settings=WorkerSettings(lease_ttl=3.0, connect_rate=50))
        async with running(worker):
            await until_held(store, bals, lambda h: all(h.values()))
            await deliver(sb, {a: [f"{a}-avant"] for a in bals})
            await events.until(lambda seen: len(events.messages()) == 2)
            sessions = {a: worker.watches[a].state for a in bals}
            redis_server.stop()
            await deliver(sb, {a: [f"{a}-pendant"] for a in bals})
            # the watches see them over IMAP while Redis is down (last_uid moves before the publish)
            await until(lambda: all(s is not None and s.last_uid == 2 for s in sessions.values()))
            redis_server.start()
            await events.until(lambda seen: len(events.messages()) == 4)
            await deliver(sb, {a: [f"{a}-apres"] for a in bals})
            await events.until(lambda seen: len(events.messages()) == 6)
            assert all(worker.watches[a].state is sessions[a] for a in bals)  # the same watches
            assert all(s is not None and s.reconnects == 0 for s in sessions.values())  # IMAP sessions kept
        assert Counter(events.messages()) == Counter((a, f"{a}-{n}") for a in bals for n in ("avant", "pendant",
                                                                                             "apres"))


class SessionConnector:
    """PER BALs on a PSC session held by the test (the bridge's role); APP BALs as usual."""

    def __init__(self, sb: Sandbox, standard: MailboxConnector, session: PSCSession) -> None:
        self.sb, self.standard, self.session = sb, standard, session

    async def mailbox(self, spec: BALSpec, *, limiter: ConnectLimiter | None = None) -> Mailbox:
        if spec.kind == "PER":
            return per_mailbox(self.sb, self.session, address=spec.address)
        return await self.standard.mailbox(spec, limiter=limiter)

    async def close(self, box: Mailbox) -> None:
        await box.aclose()  # the PSC session belongs to the test


async def test_a_psc_session_end_stops_that_bal_with_an_event(tmp_path: Path, store: FleetStore) -> None:
    async with running_sandbox(tmp_path, fleet_config(short_tokens(2.0))) as sb, asyncio.timeout(60):
        client, session = await psc_session(sb)
        await store.add(BALSpec(address=PER, kind="PER", ref="session-marie"))
        await store.add(app(APPS[0]))
        events = Events(store)
        async with client, running(Worker(store, SessionConnector(sb, connector(sb, tmp_path), session),
                                          settings=QUICK)) :
            await deliver(sb, {PER: ["pour marie"], APPS[0]: ["pour le service"]})
            await events.until(lambda seen: len(events.messages()) == 2)
            token = (await session.token()).reveal()
            # PSC logout (ECO.1.2.6): the session's next refresh is refused, the BAL's watch stops
            assert await sb.psc.end_session(MARIE) >= 1
            with pytest.raises(PSCError):
                await session.token(fresh=True)
            seen = await events.until(lambda seen: any(e.kind == "psc-session-ended" for e in seen))
            ended = [e for e in seen if e.kind == "psc-session-ended"]
            assert [e.bal for e in ended] == [PER] and ended[0].fields["bal_kind"] == "PER"
            assert (await store.stopped()).keys() == {PER} and await store.holder(PER) is None
            await deliver(sb, {APPS[0]: ["encore"]})  # the other BAL goes on
            await events.until(lambda seen: (APPS[0], "encore") in events.messages())
        assert sorted(events.messages()) == sorted([(PER, "pour marie"), (APPS[0], "pour le service"),
                                                    (APPS[0], "encore")])
        everything = await redis_contents(store)
        assert PER in everything and token not in everything  # nothing secret was ever written to Redis


async def _curl(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("curl", "-s", "-w", "\n%{http_code}", url,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body.strip()


async def test_health_and_metrics_read_with_curl(tmp_path: Path, store: FleetStore,
                                                 redis_server: RedisServer) -> None:
    from mssante.fleet import serve_http

    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        await store.add(app(APPS[0]))
        worker = Worker(store, connector(sb, tmp_path), settings=QUICK, worker_id="w-http")
        server = await serve_http(worker, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        events = Events(store)
        try:
            assert await _curl(f"{base}/healthz") == (503, "leases not renewed (Redis unreachable or not started)")
            async with running(worker):
                await sb.store.deliver(APPS[0], raw(APPS[0], "m1"))
                await events.until(lambda seen: len(events.messages()) == 1)
                assert await _curl(f"{base}/healthz") == (200, "ok")
                code, metrics = await _curl(f"{base}/metrics")
                assert code == 200
                assert 'mssante_fleet_published_total{worker="w-http"} 1.0' in metrics
                assert 'mssante_fleet_bals{worker="w-http"} 1.0' in metrics
                assert 'mssante_fleet_healthy{worker="w-http"} 1.0' in metrics
                assert 'mssante_fleet_handovers_out_total{worker="w-http"} 0.0' in metrics
                assert 'mssante_fleet_handovers_in_total{worker="w-http"} 0.0' in metrics
                assert 'mssante_fleet_connecting{worker="w-http"} 0.0' in metrics
                assert 'mssante_fleet_heap_trims_total{worker="w-http"}' in metrics
                assert (await _curl(f"{base}/autre"))[0] == 404
                redis_server.stop()  # leases cannot be renewed: unhealthy after two TTLs
                async with asyncio.timeout(10):
                    while (await _curl(f"{base}/healthz"))[0] != 503:  # noqa: ASYNC110 - the endpoint is the event
                        await asyncio.sleep(0.1)
                redis_server.start()
                async with asyncio.timeout(10):
                    while (await _curl(f"{base}/healthz"))[0] != 200:  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
        finally:
            server.close()


async def published_then_recreated(sb: Sandbox, store: FleetStore, tmp_path: Path) -> tuple[str, Events, Any]:
    """A BAL's folder "Suivi" with two messages published, then deleted and created again while no worker watches:
    every UID changed (RFC 3501 §2.3.1.1). Returns the BAL, the stream's reader and the checkpoint before."""
    address = APPS[0]
    engine = sb.store.engine
    engine.create(engine.account(address), "Suivi", subscribed=True)
    await store.add(BALSpec(address=address, kind="APP", ref=app(address).ref, folder="Suivi"))
    events = Events(store)
    for name in ("s1", "s2"):
        await sb.store.deliver(address, raw(address, name), folder="Suivi")
    async with running(Worker(store, connector(sb, tmp_path), settings=QUICK)):
        await events.until(lambda seen: len(events.messages()) == 2)
    before = await store.checkpoint(address)
    await sb.store.reset(address)
    engine.create(engine.account(address), "Suivi", subscribed=True)
    return address, events, before


async def test_a_uidvalidity_change_is_reported_and_the_folder_published_again(
        tmp_path: Path, store: FleetStore) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        address, events, before = await published_then_recreated(sb, store, tmp_path)
        await sb.store.deliver(address, raw(address, "nouveau"), folder="Suivi")
        async with running(Worker(store, connector(sb, tmp_path), settings=QUICK)):
            seen = await events.until(lambda seen: len(events.messages()) == 3)
        changed = [e for e in seen if e.kind == "uidvalidity-changed"]
        assert before is not None and len(changed) == 1 and changed[0].fields["previous"] == str(before.uidvalidity)
        assert changed[0].uidvalidity != before.uidvalidity and changed[0].fields["previous_uid"] == "2"
        last = seen[-1]
        assert (last.fields["subject"], last.uid, last.uidvalidity) == ("nouveau", 1, changed[0].uidvalidity)
        assert seen.index(changed[0]) < seen.index(last)


async def test_an_emptied_folder_with_a_new_uidvalidity_is_reported_at_select(tmp_path: Path,
                                                                              store: FleetStore) -> None:
    """Reported at the SELECT that finds it, even for a folder left empty; before, only the next message's
    publication reported it, and a recreated empty folder was not reported at all."""
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        address, events, before = await published_then_recreated(sb, store, tmp_path)
        async with running(Worker(store, connector(sb, tmp_path), settings=QUICK)):
            seen = await events.until(lambda seen: any(e.kind == "uidvalidity-changed" for e in seen))
            (changed,) = [e for e in seen if e.kind == "uidvalidity-changed"]
            assert before is not None and changed.fields["previous"] == str(before.uidvalidity)
            assert changed.fields["previous_uid"] == "2" and changed.uidvalidity != before.uidvalidity
            after = await store.checkpoint(address)
            assert after is not None and (after.uidvalidity, after.uid) == (changed.uidvalidity, 0)
            await sb.store.deliver(address, raw(address, "nouveau"), folder="Suivi")
            seen = await events.until(lambda seen: len(events.messages()) == 3)
        assert [e.kind for e in seen].count("uidvalidity-changed") == 1  # not again with the next message
        assert (seen[-1].fields["subject"], seen[-1].uid) == ("nouveau", 1)
