"""Two bridge replicas on one Redis: one session, one refresh, events across replicas."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mssante.bridge import BridgeClient, BridgeTokenSource, TokenCipher
from mssante.secret import Secret
from tests.bridge._support import MARIE, running_bridge, world
from tests.bridge.test_flows import check_token, scan, wait_ended


async def test_two_replicas_refresh_exactly_once(
    tmp_path: Path, state_dir: Path, cipher: TokenCipher, redis_url: str
) -> None:
    async with world(tmp_path, state_dir, replicas=2) as w, \
            running_bridge(w, 0, cipher=cipher, store=redis_url, refresh_ahead=False) as a, \
            running_bridge(w, 1, cipher=cipher, store=redis_url, refresh_ahead=False) as b:
        # Refreshes asked for by clients only: one ahead of time (B holds the twin's stream) could
        # land between two requests on a slow machine and make the replicas' tokens differ.
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
                await asyncio.sleep(1.3)  # 2 s tokens, 1 s refresh margin
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
