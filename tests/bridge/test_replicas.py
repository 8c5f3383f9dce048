"""Two bridge replicas on one Redis: one session, one refresh, events across replicas."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from mssante.bridge import BridgeClient, BridgeTokenSource, TokenCipher
from mssante.secret import Secret
from tests.bridge._support import LIFETIMES, MARIE, Bridge, running_bridge, world
from tests.bridge.test_flows import check_token, scan, wait_ended


class _Held:
    """The replicas' time, moved by the test only (PSC keeps the real one): whether their token is about to
    expire is decided by the test, not by how long a loaded machine takes between two requests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def past_margin(self, *bridges: Bridge, session_id: str) -> None:
        """Move to just inside the refresh margin of the newest token the replicas hold: every request then
        finds it about to expire; a token PSC issues after it expires no earlier, so it stays usable."""
        _, obtained, expires, _ = max((b.core._memory[session_id] for b in bridges if session_id in b.core._memory),
                                      key=lambda entry: entry[3])
        margin = min(bridges[0].config.refresh_margin, (expires - obtained) / 2)
        self.now = max(self.now, expires - margin / 2)


async def test_two_replicas_refresh_exactly_once(
    tmp_path: Path, state_dir: Path, cipher: TokenCipher, redis_url: str
) -> None:
    async with world(tmp_path, state_dir, replicas=2, lifetimes=replace(LIFETIMES, access_token=600)) as w, \
            running_bridge(w, 0, cipher=cipher, store=redis_url, refresh_ahead=False) as a, \
            running_bridge(w, 1, cipher=cipher, store=redis_url, refresh_ahead=False) as b:
        # Refreshes asked for by clients only: one ahead of time (B holds the twin's stream) could
        # land between two requests on a slow machine and make the replicas' tokens differ.
        held = _Held()
        a.core.clock = b.core.clock = held
        secret = await a.core.add_installation("cabinet-r")
        urls = [w.config(0).base_url, w.config(1).base_url]
        async with BridgeClient(urls[0], "cabinet-r", secret, margin=0.2) as ca, \
                BridgeClient(urls[1], "cabinet-r", secret, margin=0.2) as cb:
            source = await ca.login_with_ciba(MARIE)
            twin = BridgeTokenSource(cb, source.session_id, Secret(source._secret.reveal()), margin=0.2)
            twin.listen()
            await asyncio.wait_for(twin.listening.wait(), 2)
            first = await source.token()
            assert (await twin.token()) == first  # replica B answers with A's token (shared, encrypted)
            assert w.recorder.refreshes == 0

            async def burst(fresh: bool) -> set[str]:
                sources = [BridgeTokenSource(c, source.session_id, Secret(source._secret.reveal()), margin=0.2)
                           for c in (ca, cb) * 6]
                got = await asyncio.gather(*(s.token(fresh=fresh) for s in sources))
                return {t.reveal() for t in got}

            for round_ in range(2):  # tokens about to expire: 12 concurrent requests on both replicas
                held.past_margin(a, b, session_id=source.session_id)
                before = w.recorder.refreshes
                tokens = await burst(fresh=False)
                assert w.recorder.refreshes == before + 1, f"round {round_}: refreshed more than once"
                assert len(tokens) == 1
                check_token(w, Secret(tokens.pop()))
            before = w.recorder.refreshes
            tokens = await burst(fresh=True)  # after [AUTHENTICATIONFAILED] on many connections
            assert w.recorder.refreshes == before + 1 and len(tokens) == 1
            assert a.core.refreshes + b.core.refreshes == w.recorder.refreshes

            await source.logout()  # DELETE on replica A; the stream is held by replica B
            await wait_ended(twin)
            assert twin.end_reason == "logout"
            await twin.aclose()
        assert scan(tmp_path, w.recorder.issued) == []
