"""A UIDVALIDITY change is reported when the watch's SELECT finds it (RFC 3501 §2.3.1.1), even for a folder left
empty; before, only the next message's publication reported it (a review found a recreated empty folder reported
nothing, its checkpoint keeping the old UIDVALIDITY)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.fleet import BALSpec, FleetStore, Worker
from tests.client.test_mailbox_support import running_sandbox
from tests.fleet._support import APPS, Events, app, connector, fleet_config, raw
from tests.fleet.test_worker import QUICK, running

pytestmark = pytest.mark.slow


async def test_an_emptied_folder_with_a_new_uidvalidity_is_reported_at_select(tmp_path: Path,
                                                                              store: FleetStore) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
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
        await sb.store.reset(address)  # the folder deleted and created again, empty: every UID changed
        engine.create(engine.account(address), "Suivi", subscribed=True)
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
