"""``mssante fleet``: the desired set, a worker process, status and the consumer-group reader, in French."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import mssante.cli
from mssante.fleet import FleetStore
from tests.client.test_mailbox_support import running_sandbox
from tests.fleet._support import APPS, STRUCTURE, TOKEN_LIKE, Events, certificates, fleet_config, raw, until_held
from tests.fleet.conftest import RedisServer

pytestmark = pytest.mark.slow


def _cli(argv: list[str]) -> int:
    try:
        mssante.cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(_cli, ["fleet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_desired_set_from_the_command_line(redis_server: RedisServer,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    r = ("--redis", redis_server.url)
    code, out, _ = await cli(capsys, "add", APPS[0], "--kind", "APP", "--ref", STRUCTURE, *r)
    assert code == 0 and out == f"BAL ajoutée : {APPS[0]} (applicative, référence {STRUCTURE}, dossier INBOX)\n"
    code, _, err = await cli(capsys, "add", APPS[1], "--kind", "PER", "--ref", TOKEN_LIKE, *r)
    assert code == 2 and "jamais un secret" in err and TOKEN_LIKE not in err
    code, out, _ = await cli(capsys, "list", *r)
    assert out == f"{APPS[0]} [APP, référence {STRUCTURE}] non surveillée\n"
    code, out, _ = await cli(capsys, "list", "--json", *r)
    assert [row["address"] for row in json.loads(out)] == [APPS[0]]
    code, out, _ = await cli(capsys, "remove", APPS[0], *r)
    assert code == 0 and out == f"BAL retirée : {APPS[0]}\n"
    code, _, err = await cli(capsys, "remove", APPS[0], *r)
    assert code == 2 and "BAL inconnue" in err
    code, out, _ = await cli(capsys, "list", *r)
    assert out == "Aucune BAL dans la flotte.\n"
    code, _, err = await cli(capsys, "list", "--redis", "redis://127.0.0.1:1/0")
    assert code == 3 and "Redis injoignable" in err


async def test_a_worker_process_publishes_and_the_lps_reads_with_a_group(
        tmp_path: Path, redis_server: RedisServer, store: FleetStore, capsys: pytest.CaptureFixture[str]) -> None:
    r = ("--redis", redis_server.url)
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(90):
        bals = APPS[:2]
        for address in bals:
            assert (await cli(capsys, "add", address, "--kind", "APP", "--ref", STRUCTURE, *r))[0] == 0
        dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
        hosts = [sb.info[p][f]["host"] for p in ("imap", "smtp") for f in ("psc", "authcli")]
        worker = subprocess.Popen(  # noqa: ASYNC220 - a worker process, waited for below
            [sys.executable, "-m", "mssante", "fleet", "worker", "--capacity", "10", "--id", "w-cli",
             "--ca-bundle", sb.info["ca_bundle"], "--certificates", str(certificates(sb, tmp_path / "certs")),
             "--dns", dns, *(f"--resolve={h}=127.0.0.1" for h in hosts), "--lease-ttl", "1", "--idle-refresh", "2",
             "--drain-timeout", "600", *r], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            await until_held(store, bals, lambda h: all(v == "w-cli" for v in h.values()))
            for address in bals:
                await sb.store.deliver(address, raw(address, f"cr-{address[:8]}"))
            await Events(store).until(lambda seen: sum(e.kind == "message" for e in seen) == 2)
            code, out, _ = await cli(capsys, "events", "--group", "dpi", "--consumer", "dpi-1", "--json", *r)
            read = [json.loads(line) for line in out.splitlines()]
            assert code == 0 and sorted(e["subject"] for e in read) == ["cr-service0", "cr-service1"]
            assert {e["bal"] for e in read} == set(bals) and all(e["uid"] == "1" for e in read)
            code, out, _ = await cli(capsys, "events", "--group", "dpi", "--consumer", "dpi-1", *r)
            assert code == 0 and out == ""  # acknowledged: not read again
            code, out, _ = await cli(capsys, "events", "--group", "autre", "--consumer", "a-1", "--no-ack", *r)
            assert "nouveau message UID 1" in out and "« cr-service0 »" in out  # another group reads it all
            async with asyncio.timeout(10):
                while (await store.workers()).get("w-cli", {}).get("published") != "2":  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # the worker's heartbeat is the event
            code, out, _ = await cli(capsys, "status", "--json", *r)
            status = json.loads(out)
            assert status["bals"] == 2 and status["held"] == 2 and status["workers"]["w-cli"]["published"] == 2
            assert {g["name"]: g["pending"] for g in status["groups"]} == {"dpi": 0, "autre": 2}
            lag = status["lag"]  # per BAL: arrival → publication of its last message
            assert lag["bals"] == 2 and {w["bal"] for w in lag["worst"]} == set(bals)
            assert all(w["lag_ms"] >= 0 for w in lag["worst"]) and lag["max_ms"] >= lag["p50_ms"] >= 0
            code, out, _ = await cli(capsys, "status", *r)
            assert "Workers actifs : 1" in out and "w-cli : 2/10 BAL, 2 messages publiés" in out
            assert "0 BAL cédées par relève, 0 reçues par relève, 0 en connexion" in out
            assert "Retard par BAL (arrivée → publication du dernier message) : médiane" in out
        finally:
            worker.send_signal(signal.SIGTERM)
            _, err = await asyncio.to_thread(worker.communicate, timeout=20)
        assert worker.returncode == 0, err
        # alone: no peer to hand its BALs to, it released them at once (not after its 600-s drain)
        assert "Worker w-cli arrêté, baux rendus (0 BAL cédées par relève depuis son démarrage)" in err
        assert "en cours d'arrêt : ses BAL passent aux autres workers par relève (au plus 600 s)" in err
        logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        claimed = [entry for entry in logs if entry.get("event") == "claimed"]
        assert claimed and claimed[0]["worker"] == "w-cli" and claimed[0]["level"] == "INFO"
        assert set((await until_held(store, bals, lambda h: True)).values()) == {None}  # released at once
