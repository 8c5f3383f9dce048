"""Handover against Dovecot 2.3 with several sessions per imap process (``client_limit`` > 1, the setting of
large installations and of bench_fleet.py): the BALs moved by handover are notified through IDLE on their new
session, within a second, not after ``mailbox_idle_check_interval`` (30 s).

Why it could fail: Dovecot watches a mailbox once per imap process for all its sessions and stops when one of them
leaves IDLE or closes; a taker already in IDLE then hears of nothing for 30 s (measured 29.6 s; a p99 of 27 s in a
benchmark run with handovers). The taker enters IDLE only once its previous holder said its session is closed
(test_handover_idle.py checks that order on the sandbox's journal)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from mssante.client import Backoff
from mssante.discovery import ManualServers
from mssante.fleet import FleetStore, MailboxConnector, Worker
from tests.client.test_mailbox_support import options, running_sandbox, trust
from tests.fleet._support import APPS, Events, app, certificates, fleet_config, raw, until_held
from tests.fleet.test_handover import HANDOVER, settled
from tests.fleet.test_worker import running, until
from tests.interop.dovecot import DovecotServer, skip_unless_dovecot

pytestmark = [pytest.mark.dovecot, pytest.mark.slow]

#: several sessions per imap process, as in bench_fleet.py and large installations
_SHARED_PROCESSES = """
service imap {
  service_count = 0
  client_limit = 100
  process_limit = 1
}
"""


class SharedProcessDovecot(DovecotServer):
    def _write_files(self) -> None:
        super()._write_files()
        with (self.work_dir / "etc" / "dovecot.conf").open("a") as conf:
            conf.write(_SHARED_PROCESSES)
        self._chown_tree()


async def test_a_bal_handed_over_on_dovecot_is_notified_at_once_not_after_the_check_interval(
        tmp_path: Path, store: FleetStore) -> None:
    skip_unless_dovecot()
    config = fleet_config()
    async with running_sandbox(tmp_path / "sb", config) as sb, asyncio.timeout(120):
        psc = sb.info["psc"]
        dovecot = SharedProcessDovecot(pki=sb.pki, introspection_url=psc["issuer"] + "/introspect",
                                       client_id=psc["client_id"], client_secret=psc["client_secret"], config=config,
                                       login_service_count=0)
        await asyncio.to_thread(dovecot.start)
        try:
            imap = ManualServers(imap=(config.host_name("imap", "authcli"), dovecot.imap_port))
            boxes = MailboxConnector(tls=trust(sb), certificates=certificates(sb, tmp_path / "certs"), servers=imap,
                                     options=options(sb, backoff=Backoff(initial=0.2, maximum=0.5)))
            for address in APPS:
                await store.add(app(address))
            events = Events(store)
            # the previous holder looks for handovers every 0.5 s: the taker's session is up long before it closes
            settings = replace(HANDOVER, presence_interval=0.5)
            w1, w2 = (Worker(store, boxes, settings=settings, worker_id=n) for n in ("w1", "w2"))
            async with running(w1):
                await until(lambda: len(w1.watches) == 4 and settled(w1), within=60)
                async with running(w2):
                    held = await until_held(store, APPS, lambda h: Counter(h.values()) == {"w1": 2, "w2": 2})
                    moved = sorted(a for a, w in held.items() if w == "w2")
                    await until(lambda: w2.figures.handovers_in == 2 and settled(w2) and w1.figures.handovers_out == 2
                                and all(w2.watches[a].idle_after is None for a in moved), within=60)
                    # w1's sessions of the moved BALs are closed: Dovecot's own watch of their mailboxes went
                    # with them; w2's IDLE, started after, has its own
                    delivered = time.monotonic()
                    for address in moved:
                        reply = await asyncio.to_thread(dovecot.sink.deliver_lmtp, f"labo@{config.domain}", address,
                                                        raw(address, f"{address}-apres"))
                        assert reply.startswith("2"), reply
                    await events.until(lambda seen: len(events.messages()) == 2)
                    waited = time.monotonic() - delivered
        finally:
            await asyncio.to_thread(dovecot.stop)
    assert sorted(events.messages()) == [(a, f"{a}-apres") for a in moved]
    # IDLE notifies within a second; the check interval is 30 s: 15 s tells them apart on any machine
    assert waited < 15, waited
