"""/metrics read with curl: counters never go down when BALs move, stops by kind, operator waits."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from mssante.fleet import FleetStore, Worker, serve_http
from tests.client.test_mailbox_support import running_sandbox
from tests.fleet._support import APPS, Events, app, connector, fleet_config
from tests.fleet.test_worker import QUICK, _curl, running, until

pytestmark = pytest.mark.slow


def value(metrics: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with (at least) ``labels``."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}\{{([^}}]*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"no {name} {labels} in:\n{metrics}")


async def test_reconnects_never_go_down_when_a_bal_leaves_and_stops_are_counted_by_kind(
        tmp_path: Path, store: FleetStore) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        for address in APPS[:2]:
            await store.add(app(address))
        await store.add(app(APPS[2], ref="structure-inconnue"))
        worker = Worker(store, connector(sb, tmp_path), settings=QUICK, worker_id="w-m")
        server = await serve_http(worker, "127.0.0.1", 0)
        metrics_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/metrics"
        events = Events(store)
        try:
            async with running(worker):
                await events.until(lambda seen: any(e.kind == "bal-error" for e in seen))
                await until(lambda: all(len(sb.faults.sessions(a)) == 1 for a in APPS[:2]))
                await sb.faults.end_sessions(APPS[0], "drop")  # the operator drops the session: the watch reconnects
                await until(lambda: len(sb.faults.sessions(APPS[0])) == 1 and (state := worker.watches[APPS[0]].state)
                            is not None and state.reconnects == 1)
                code, metrics = await _curl(metrics_url)
                assert code == 200 and value(metrics, "mssante_fleet_reconnects_total", worker="w-m") == 1
                await store.remove(APPS[0])  # the BAL leaves this worker (moved, or no longer watched)
                await until(lambda: APPS[0] not in worker.watches)
                _, metrics = await _curl(metrics_url)
                # before: the sum over the BALs held now, 0 here: a Prometheus counter that went down (a "reset")
                assert value(metrics, "mssante_fleet_reconnects_total", worker="w-m") == 1
                assert value(metrics, "mssante_fleet_bals", worker="w-m") == 1
                assert value(metrics, "mssante_fleet_stops_total", worker="w-m", kind="bal-error") == 1
                assert value(metrics, "mssante_fleet_stops_total", worker="w-m", kind="psc-session-ended") == 0
                assert value(metrics, "mssante_fleet_operator_waits_total", worker="w-m") >= 0
                assert "# TYPE mssante_fleet_stops_total counter" in metrics
        finally:
            server.close()


async def test_reconnects_of_a_bal_gone_between_two_scrapes_still_count_in_the_metric_and_the_status(
        tmp_path: Path, store: FleetStore) -> None:
    """The total used to be the sum over the BALs held now, patched by the collector only for the watches a scrape
    had seen: a BAL that reconnected and left between two scrapes took its reconnections away, and the figure of
    ``mssante fleet status`` went down at every move or stop."""
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        for address in APPS[:2]:
            await store.add(app(address))
        worker = Worker(store, connector(sb, tmp_path), settings=QUICK, worker_id="w-r")
        server = await serve_http(worker, "127.0.0.1", 0)
        metrics_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/metrics"

        def figure() -> int:
            return int(worker._figures()["reconnects"])

        try:
            async with running(worker):
                await until(lambda: all(len(sb.faults.sessions(a)) == 1 for a in APPS[:2]))
                for _ in range(2):  # no scrape meanwhile
                    reconnects = figure()
                    await sb.faults.end_sessions(APPS[0], "drop")
                    await until(lambda r=reconnects: figure() == r + 1  # type: ignore[misc]
                                and len(sb.faults.sessions(APPS[0])) == 1)
                assert figure() == 2
                await store.remove(APPS[0])  # the BAL leaves this worker (a move or a stop leaves it the same way)
                await until(lambda: APPS[0] not in worker.watches)
                ticks = worker.ticks
                await until(lambda: worker.ticks >= ticks + 2)  # the figures written by a tick since
                _, metrics = await _curl(metrics_url)
                assert value(metrics, "mssante_fleet_reconnects_total", worker="w-r") == 2
                assert (await store.workers())["w-r"]["reconnects"] == "2"  # what `mssante fleet status` shows
                assert figure() == worker.figures.reconnects_ended == 2
                await sb.faults.end_sessions(APPS[1], "drop")  # the BAL still held adds to what left
                await until(lambda: figure() == 3)
                _, metrics = await _curl(metrics_url)
                assert value(metrics, "mssante_fleet_reconnects_total", worker="w-r") == 3
        finally:
            server.close()
