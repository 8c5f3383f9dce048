"""PER and ORG BALs watched by a worker through the bridge, end to end.

The LPS signs the professional in at the bridge (CIBA against the sandbox's mock PSC) and hands the
fleet the session *reference*: its id goes to Redis, its secret to the worker's directory. The
worker's standard connector gets tokens from the bridge on demand (``BridgeTokenSource``), one
source for both BALs of the session. A PSC logout (back-channel logout to the bridge) stops both
watches, each with a ``psc-session-ended`` event (ECO.1.2.6); the APP BAL goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mssante.bridge import BridgeClient, TokenCipher
from mssante.client import Backoff
from mssante.fleet import BALSpec, FleetStore, MailboxConnector, Worker, WorkerSettings
from tests.bridge._support import MARIE, base_url, bind, sandbox_bridge, sandbox_config_for_bridge
from tests.client.test_mailbox_support import ORG, PER, options, resolver, running_sandbox, trust
from tests.fleet._support import APPS, Events, app, certificates, fleet_config, raw

pytestmark = pytest.mark.slow

QUICK = WorkerSettings(capacity=10, lease_ttl=1.0, connect_rate=50, connect_burst=10)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.shutdown()
        await task


async def test_per_and_org_through_the_bridge_until_the_psc_session_ends(tmp_path: Path, store: FleetStore) -> None:
    sock = bind()  # the bridge's port must be known before the sandbox registers its back-channel URI
    url = base_url(sock)
    config = fleet_config(sandbox_config_for_bridge(url, access_token=3.0))
    async with running_sandbox(tmp_path, config) as sb, \
            sandbox_bridge(sb.info, sock, tmp_path, cipher=TokenCipher.generate()) as bridge, asyncio.timeout(90):
        secret = await bridge.core.add_installation("flotte")
        async with BridgeClient(url, "flotte", secret, timeout=10) as lps, \
                BridgeClient(url, "flotte", secret, timeout=10) as worker_bridge:
            source = await lps.login_with_ciba(MARIE, on_binding=lambda _code: None, max_wait=10)
            sessions = tmp_path / "sessions"
            sessions.mkdir(mode=0o700)
            (sessions / source.session_id).write_text(source._secret.reveal())  # the LPS hands the session over
            for address, kind in ((PER, "PER"), (ORG, "ORG")):
                await store.add(BALSpec(address=address, kind=kind, ref=source.session_id))  # type: ignore[arg-type]
            await store.add(app(APPS[0]))
            connector = MailboxConnector(tls=trust(sb), certificates=certificates(sb, tmp_path / "certs"),
                                         bridge=worker_bridge, session_secrets=sessions, resolver=resolver(sb),
                                         options=options(sb, backoff=Backoff(initial=0.2, maximum=0.5)))
            events = Events(store)
            worker = Worker(store, connector, settings=QUICK, worker_id="w-bridge")
            async with running(worker):
                for address in (PER, ORG, APPS[0]):
                    await sb.store.deliver(address, raw(address, f"pour {address[:6]}"))
                await events.until(lambda seen: len(events.messages()) == 3)
                # one token source (and one event listener at the bridge) for the two BALs of the session
                boxes = [worker.watches[a] for a in (PER, ORG)]
                assert all(w.state is not None for w in boxes)
                assert len(connector._sources) == 1 and connector._sources[source.session_id][1] == 2
                # the professional logs out at PSC: back-channel logout to the bridge, which tells the worker
                assert await sb.psc.end_session(MARIE) >= 1
                seen = await events.until(lambda seen: sum(e.kind == "psc-session-ended" for e in seen) == 2)
                ended = {e.bal: e for e in seen if e.kind == "psc-session-ended"}
                assert ended.keys() == {PER, ORG}
                assert {e.fields["bal_kind"] for e in ended.values()} == {"PER", "ORG"}
                assert (await store.stopped()).keys() == {PER, ORG}
                await sb.store.deliver(APPS[0], raw(APPS[0], "encore"))  # the APP BAL goes on
                await events.until(lambda seen: (APPS[0], "encore") in events.messages())
                async with asyncio.timeout(10):
                    while connector._sources:  # noqa: ASYNC110 - the last BAL of the session closes its listener
                        await asyncio.sleep(0.05)
        assert sorted(events.messages()) == sorted([(PER, "pour marie."), (ORG, "pour secret"),
                                                    (APPS[0], "pour servic"), (APPS[0], "encore")])
        everything = [str(v) for e in events.seen for v in e.fields.values()]
        assert source.session_id not in " ".join(everything)  # the reference is not even in the events
