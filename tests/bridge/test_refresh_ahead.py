"""Refresh ahead: sessions whose client listens are refreshed by the bridge, spread, a bounded number at a time."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mssante.bridge import BridgeClient, BridgeConfig, BridgeTokenSource, TokenCipher
from mssante.bridge._audit import Audit
from mssante.bridge._core import AHEAD_FROM, AHEAD_TO, BridgeCore, UrgentFirst
from mssante.bridge._sqlite import SQLiteStore
from mssante.errors import ConfigError
from mssante.psc import PSCClient, PSCSettings
from mssante.secret import Secret
from tests.bridge._support import LOUIS, MARIE, World, running_bridge, world
from tests.bridge.test_flows import check_token

SETTINGS = PSCSettings(issuer="https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet", client_id="x",
                       client_secret="y")


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait for ``condition`` (polled: the scheduler has no public event), failing after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_plans_spread_within_the_window_and_before_the_margin(cipher: TokenCipher) -> None:
    """10,000 sessions whose tokens came in the same second are planned evenly over 28 s of their 120 s life."""
    config = BridgeConfig(psc=SETTINGS, refresh_margin=20.0)
    psc = PSCClient(SETTINGS)
    core = BridgeCore(config, store=SQLiteStore(":memory:"), psc=psc, cipher=cipher, audit=Audit(None))
    core._random = random.Random(7)
    try:
        plans = [core.plan_ahead(f"s{i}", 1000.0, 1120.0) for i in range(10_000)]
        assert min(plans) >= 1000 + 120 * AHEAD_FROM and max(plans) <= 1120 - 20  # PSC's 120 s tokens
        busiest = max(sum(1 for p in plans if int(p) == s) for s in range(1072, 1100))
        assert busiest < 1.3 * 10_000 / 28, "a burst of logins stays a burst"
        short = [core.plan_ahead("t", 0.0, 2.0) for _ in range(100)]  # a 2 s token: the margin is halved
        assert all(2 * AHEAD_FROM <= p <= min(2 * AHEAD_TO, 1.0 + 1e-9) or p == 1.0 for p in short)
        assert core._ahead_at["t"] == short[-1]  # one live plan per session, the latest
    finally:
        await psc.aclose()
    with pytest.raises(ConfigError, match="refresh_concurrency"):
        BridgeConfig(psc=SETTINGS, refresh_concurrency=0)


async def _listening(w: World, bridge: Any, client: BridgeClient, who: str) -> Any:
    source = await client.login_with_ciba(who)
    await asyncio.wait_for(source.listening.wait(), 5)
    await until(lambda: source.session_id in bridge.core._ahead_at)
    return source


async def test_listening_sessions_are_refreshed_without_asking(tmp_path: Path, state_dir: Path,
                                                               cipher: TokenCipher) -> None:
    async with world(tmp_path, state_dir) as w, \
            running_bridge(w, cipher=cipher, refresh_ahead=True, refresh_margin=0.2) as bridge:
        secret = await bridge.core.add_installation("cab-ahead")
        async with BridgeClient(w.config().base_url, "cab-ahead", secret, margin=0.2) as client:
            source = await _listening(w, bridge, client, MARIE)
            await until(lambda: bridge.core.refreshes >= 2)  # two lives of 2 s, no token asked
            check_token(w, await source.token())  # the token the bridge got ahead
            # The client stops listening: its session leaves the schedule and is refreshed on demand only.
            session_id = source.session_id
            await source.aclose()
            await until(lambda: session_id not in bridge.core._subscribers)
            await until(lambda: session_id not in bridge.core._ahead_at)


class _Overlap:
    """The most refreshes seen at PSC at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0


def _slow_psc(core: Any) -> _Overlap:
    """Make the bridge's PSC answer refreshes 0.2 s late, counting how many overlap (unbounded ones would)."""
    overlap, real = _Overlap(), core.psc.refresh

    async def counted(*args: Any, **kwargs: Any) -> Any:
        overlap.in_flight += 1
        overlap.most = max(overlap.most, overlap.in_flight)
        try:
            await asyncio.sleep(0.2)  # a slow PSC, not a wait for an event: it makes refreshes overlap
            return await real(*args, **kwargs)
        finally:
            overlap.in_flight -= 1

    core.psc.refresh = counted
    return overlap


async def test_refreshes_ahead_run_a_bounded_number_at_a_time(tmp_path: Path, state_dir: Path,
                                                              cipher: TokenCipher) -> None:
    async with world(tmp_path, state_dir) as w, \
            running_bridge(w, cipher=cipher, refresh_ahead=True, refresh_margin=0.2,
                           refresh_concurrency=1) as bridge:
        core = bridge.core
        overlap = _slow_psc(core)
        secret = await core.add_installation("cab-bound")
        async with BridgeClient(w.config().base_url, "cab-bound", secret, margin=0.2) as client:
            sources = [await _listening(w, bridge, client, who) for who in (MARIE, LOUIS, MARIE, LOUIS)]
            await until(lambda: core.refreshes >= 8)
            assert overlap.most == 1
            for source in sources:
                assert not source.ended.is_set()
                await source.aclose()


async def test_refreshes_asked_for_wait_their_turn_in_the_bridge(tmp_path: Path, state_dir: Path,
                                                                 cipher: TokenCipher) -> None:
    """Many clients whose tokens expire together: at most psc_concurrency refreshes at PSC, all answered."""
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher, psc_concurrency=2) as bridge:
        core = bridge.core
        overlap = _slow_psc(core)
        secret = await core.add_installation("cab-turns")
        async with BridgeClient(w.config().base_url, "cab-turns", secret, margin=0.2) as client:
            sources = [await client.login_with_ciba(who) for who in (MARIE, LOUIS, MARIE, LOUIS, MARIE)]
            tokens = await asyncio.gather(*(source.token(fresh=True) for source in sources))
            assert core.refreshes == 5 and overlap.most == 2
            for token in tokens:
                check_token(w, token)
            for source in sources:
                await source.aclose()


async def test_refreshes_waiting_for_psc_go_earliest_expiry_first() -> None:
    """10,000 sessions on a loaded machine: refreshes ahead (a third of the token's life left) queued before a
    client's own refresh (seconds left) went first at PSC, and that client's token expired while it waited."""
    gate = UrgentFirst(1)
    order: list[float] = []
    entered = asyncio.Event()

    async def refresh(due: float) -> None:
        async with gate.slot(due):
            order.append(due)
            await entered.wait()

    holder = asyncio.create_task(refresh(0.0))
    await until(lambda: order == [0.0])
    queued = []
    for due in (1100.0, 1090.0, 1010.0, 1100.0):  # three ahead, one urgent, queued in that order
        queued.append(asyncio.create_task(refresh(due)))
        await until(lambda: gate.waiting == len(queued))
    gone = asyncio.create_task(refresh(1000.0))  # the most urgent, but its request is cancelled while it waits
    await until(lambda: gate.waiting == 5)
    gone.cancel()
    entered.set()
    await asyncio.gather(holder, *queued)
    assert order == [0.0, 1010.0, 1090.0, 1100.0, 1100.0]
    async with gate.slot(0.0):  # the cancelled waiter did not keep the place
        assert gate.waiting == 0


async def test_requests_for_a_session_being_refreshed_share_it_without_polling(
    tmp_path: Path, state_dir: Path, cipher: TokenCipher
) -> None:
    """Fifty requests meet one refresh under way: they await it (one PSC call), none polls the lock."""
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge:
        core = bridge.core
        real_refresh, real_wait, real_access = core.psc.refresh, core._await_change, core.access_token
        polls = 0
        arrived: list[bool] = []  # requests of the fifty twins that reached the core
        all_in = asyncio.Event()

        async def access_token(record: Any, *, fresh: bool = False) -> Any:
            if len(arrived) < 50:
                arrived.append(fresh)
                if len(arrived) == 50:
                    all_in.set()
            return await real_access(record, fresh=fresh)

        async def slow(*args: Any, **kwargs: Any) -> Any:
            # the refresh stays under way until all fifty requests have arrived, however loaded the machine
            await asyncio.wait_for(all_in.wait(), 120)
            return await real_refresh(*args, **kwargs)

        async def counted(session_id: str) -> None:
            nonlocal polls
            polls += 1
            await real_wait(session_id)

        core.psc.refresh = slow  # type: ignore[method-assign]
        core._await_change = counted  # type: ignore[method-assign]
        secret = await core.add_installation("cab-share")
        async with BridgeClient(w.config().base_url, "cab-share", secret, margin=0.2) as client:
            source = await client.login_with_ciba(MARIE)
            twins = [BridgeTokenSource(client, source.session_id, Secret(source._secret.reveal()), margin=0.2)
                     for _ in range(50)]
            core.access_token = access_token  # type: ignore[method-assign]
            tokens = {t.reveal() for t in await asyncio.gather(*(twin.token(fresh=True) for twin in twins))}
            assert core.refreshes == 1 and polls == 0 and len(tokens) == 1
            check_token(w, Secret(tokens.pop()))
            await source.aclose()


async def test_refresh_ahead_looks_at_the_shared_cache_only_after_another_replica_refreshed(
    cipher: TokenCipher, redis_url: str
) -> None:
    """10,000 sessions on Redis: every refresh ahead read the shared token twice (before and after the lock) to
    find a replica's newer token, although none had been announced. It reads it once a replica announces one
    (``session_changed`` with a higher version), or when events may have been lost."""
    from mssante.bridge._records import RESYNC
    from mssante.bridge._redis import RedisStore

    store = RedisStore(redis_url, prefix=f"test-young-{random.randrange(10**9)}:")
    psc = PSCClient(SETTINGS)
    core = BridgeCore(BridgeConfig(psc=SETTINGS, store=redis_url), store=store, psc=psc, cipher=cipher,
                      audit=Audit(None))
    await core.start()
    reads = [0]
    real = store.get_cached_token

    async def counted(session_id: str) -> Any:
        reads[0] += 1
        return await real(session_id)

    store.get_cached_token = counted  # type: ignore[method-assign]
    try:
        now = time.time()
        core._memory["s1"] = (Secret("ours"), now - 90, now + 30, 1)  # 3/4 of its life gone: due ahead
        core._latest.add("s1")
        assert await core._young("s1") is None and reads[0] == 0  # ours is the latest: refresh, no read
        # Another replica refreshed: its token is shared, then announced.
        await store.cache_token("s1", cipher.encrypt(Secret("theirs"), context="s1/access"), now, now + 120, 2)
        await store.publish("s1", "session_changed", {"version": 2})
        await until(lambda: "s1" not in core._latest)
        assert await core._young("s1") == (now, now + 120) and reads[0] == 1  # theirs is young: no refresh
        core._latest.add("s1")
        core._on_event("", RESYNC, {})  # events may have been lost: look again
        assert await core._young("s1") == (now, now + 120) and reads[0] == 2
    finally:
        await core.aclose()
        await psc.aclose()
