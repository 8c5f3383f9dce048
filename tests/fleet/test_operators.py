"""The fleet-wide connect limit is per operator: the domains one operator hosts share its bucket (a review found
the bucket keyed by BAL domain, so fifty hospital domains of one operator got fifty times its limit)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import mssante.cli
from mssante.errors import UsageError
from mssante.fleet import FleetStore, Worker, WorkerSettings
from tests.fleet._support import APPS, apps_watched
from tests.fleet.test_worker import running, until

pytestmark = pytest.mark.slow


async def test_the_domains_of_one_operator_share_its_bucket(tmp_path: Path, store: FleetStore) -> None:
    async with apps_watched(tmp_path, store) as (sb, _, boxes), asyncio.timeout(60):
        settings = WorkerSettings(capacity=10, lease_ttl=3.0, connect_rate=50, operators={"MSS.Sandbox.Test": "op1"})
        worker = Worker(store, boxes, settings=settings)
        async with running(worker):
            await until(lambda: all(len(sb.faults.sessions(a)) == 1 for a in APPS))
        keys = {k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:connect:*")}
        assert keys == {store.keys.operator("op1")}  # not one bucket per domain


def test_bad_operator_options_are_refused_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        mssante.cli.main(["--lang", "en", "fleet", "worker", "--capacity", "1", "--ca-bundle", __file__,
                          "--operator", "mss.sandbox.test"])
    assert exit_.value.code != 0
    assert "--operator must be NAME=VALUE, not 'mss.sandbox.test'" in capsys.readouterr().err
    with pytest.raises(UsageError):
        WorkerSettings(operator_rate=0)
