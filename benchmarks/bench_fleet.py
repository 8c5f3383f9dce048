"""Benchmark: a fleet of worker processes on Redis against ``Mailbox.watch`` in one process, same run.

Run: ``.venv/bin/python benchmarks/bench_fleet.py [--bals 40] [--workers 4] [--kills 1] [--messages 60]``
(not a test; loopback only, bounded: about a minute at the defaults). Starts Debian's ``redis-server``,
the sandbox operator (in this process, BAL APP on its AUTH_CLI front) and ``mssante fleet worker``
processes; delivers messages at random BALs while one worker is killed with SIGKILL ``--kills`` times
(a replacement is started after each takeover). Then the baseline: one process watching the same BALs
with ``Mailbox.watch``, the same messages.

Reported, fleet and baseline side by side:

* every delivered message published exactly once (``missed``, ``duplicated``);
* ``takeover_s_max``: from SIGKILL until every BAL of the dead worker is leased by another one;
* ``p50_ms``/``p99_ms``: from delivery (the sandbox stored it) to the event read from the stream (to the
  message yielded by ``watch`` for the baseline), and ``p99_ms_steady`` without the messages of BALs
  orphaned by a kill;
* ``rss_mib_per_1000_bals``: RSS growth of the workers from empty to holding every BAL, per 1,000 BALs
  (at a small scale each worker's one-time costs dominate: read it with ``rss_mib_worker_*``);
* ``max_connects_per_s``: IMAP connections the server saw in any one second (the limit: ``--connect-rate``
  per worker).

The sandbox (pymap, in this process) is the server here: the absolute latencies include its cost and this
process's. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fleet._support import STRUCTURE, certificates, raw
from tests.fleet.conftest import RedisServer

from mssante import testing
from mssante.client import Backoff, ConnectionSettings, MailboxOptions, TrustSettings, WatchState
from mssante.discovery import DNSPythonResolver
from mssante.fleet import BALSpec, FleetStore, MailboxConnector
from mssante.sandbox.config import BALConfig, default_config
from mssante.sandbox.runner import Sandbox

LEASE_TTL = 2.0


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class Bench:
    def __init__(self, args: argparse.Namespace, sb: Sandbox, tmp: Path, redis_url: str) -> None:
        self.args, self.sb, self.tmp, self.redis_url = args, sb, tmp, redis_url
        self.bals = [f"svc{i}@{sb.info['domain']}" for i in range(args.bals)]
        self.certs = certificates(sb, tmp / "certs")
        self.dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
        self.hosts = [sb.info[p][f]["host"] for p in ("imap", "smtp") for f in ("psc", "authcli")]
        self.rng = random.Random(args.seed)

    def spawn_worker(self, name: str) -> subprocess.Popen[bytes]:
        capacity = math.ceil(self.args.bals / (self.args.workers - 1)) + 1  # room for a dead worker's share
        return subprocess.Popen(
            [sys.executable, "-m", "mssante", "fleet", "worker", "--redis", self.redis_url, "--id", name,
             "--capacity", str(capacity), "--ca-bundle", self.sb.info["ca_bundle"], "--certificates",
             str(self.certs), "--dns", self.dns, *(f"--resolve={h}=127.0.0.1" for h in self.hosts),
             "--lease-ttl", str(LEASE_TTL), "--connect-rate", str(self.args.connect_rate), "--idle-refresh", "5",
             *(["--no-x-mss"] if self.args.no_x_mss else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def watched(self) -> bool:
        return all(self.sb.faults.sessions(b) for b in self.bals)

    async def until(self, condition: Any, within: float) -> None:
        async with asyncio.timeout(within):
            while not await condition():  # noqa: ASYNC110 - lease keys and sessions have no event to wait on
                await asyncio.sleep(0.05)

    async def holders(self, store: FleetStore) -> dict[str, str | None]:
        values = await store.redis.mget([store.keys.lease(b) for b in self.bals])
        return {b: (v.split("|")[0] if v else None) for b, v in zip(self.bals, values, strict=True)}

    async def deliver(self, subject: str, delivered: dict[str, float], per_bal: dict[str, str]) -> None:
        bal = self.rng.choice(self.bals)
        per_bal[subject] = bal
        delivered[subject] = time.time()
        await self.sb.store.deliver(bal, raw(bal, subject))

    def connects_per_s(self, since: float) -> int:
        starts = [int(r.started_at) for r in self.sb.journal.records(since=since) if r.protocol == "imap"]
        return max(Counter(starts).values(), default=0)

    # -- the fleet ---------------------------------------------------------------------------------
    async def fleet(self) -> dict[str, Any]:
        args = self.args
        store = FleetStore.from_url(self.redis_url)
        workers = {f"w{i}": self.spawn_worker(f"w{i}") for i in range(args.workers)}
        await self.until(lambda: _alive(store, len(workers)), 30)
        empty_rss = statistics.mean(_rss_mib(p.pid) for p in workers.values())
        started = time.time()
        for bal in self.bals:
            await store.add(BALSpec(address=bal, kind="APP", ref=STRUCTURE))

        async def all_held() -> bool:
            return all((await self.holders(store)).values()) and self.watched()

        await self.until(all_held, 120)
        ready_s = time.time() - started
        loaded_rss = statistics.mean(_rss_mib(p.pid) for p in workers.values())
        # growth of all workers together, per BAL: includes each worker's one-time costs (TLS, first sessions)
        rss = (loaded_rss - empty_rss) * len(workers) / len(self.bals) * 1000
        delivered: dict[str, float] = {}
        per_bal: dict[str, str] = {}
        published: Counter[str] = Counter()
        seen_at: dict[str, float] = {}
        stop_reading = asyncio.Event()

        async def read() -> None:
            last = "0"
            while not stop_reading.is_set():
                for event in await store.events(last, block_ms=200):
                    last = event.id
                    if event.kind == "message":
                        published[event.fields["subject"]] += 1
                        seen_at.setdefault(event.fields["subject"], time.time())

        reader = asyncio.create_task(read())
        takeovers: list[float] = []
        orphaned: set[str] = set()
        kill_at = {round((k + 1) * args.messages / (args.kills + 1)) for k in range(args.kills)}
        interval = 1 / args.rate
        watchers: list[asyncio.Task[None]] = []

        async def takeover(victim: str, its: list[str], killed: float) -> None:
            async def taken() -> bool:
                now = await self.holders(store)
                return all(now[b] not in (None, victim) for b in its)

            await self.until(taken, 3 * LEASE_TTL + 30)
            takeovers.append(time.time() - killed)
            name = f"{victim}r"
            workers[name] = self.spawn_worker(name)  # a replacement joins (and is given BALs back)
            await self.until(lambda: _alive(store, args.workers), 30)

        for index in range(args.messages):
            if index in kill_at:
                await asyncio.gather(*watchers)  # the previous kill is taken over, its replacement started
                victim = self.rng.choice(sorted(w for w, p in workers.items() if p.poll() is None))
                its = [b for b, w in (await self.holders(store)).items() if w == victim]
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                orphaned.update(its)
                watchers.append(asyncio.create_task(takeover(victim, its, time.time())))
            await self.deliver(f"fleet{index:05d}", delivered, per_bal)
            await asyncio.sleep(interval)
        await asyncio.gather(*watchers)

        async def all_published() -> bool:
            return all(s in published for s in delivered)

        with contextlib.suppress(TimeoutError):
            await self.until(all_published, 3 * LEASE_TTL + 30)
        stop_reading.set()
        await reader
        latencies = [(seen_at[s] - t) * 1000 for s, t in delivered.items() if s in seen_at]
        steady = [(seen_at[s] - t) * 1000 for s, t in delivered.items() if s in seen_at and per_bal[s] not in orphaned]
        result = {
            "bals": args.bals, "workers": args.workers, "delivered": len(delivered),
            "published": sum(published.values()), "missed": sum(1 for s in delivered if s not in published),
            "duplicated": sum(n - 1 for n in published.values() if n > 1),
            "takeover_s_max": round(max(takeovers, default=0.0), 2), "p50_ms": round(_pct(latencies, 0.5), 1),
            "p99_ms": round(_pct(latencies, 0.99), 1), "p99_ms_steady": round(_pct(steady, 0.99), 1),
            "rss_mib_per_1000_bals": round(rss, 1), "ready_s": round(ready_s, 1),
            "rss_mib_worker_empty": round(empty_rss, 1), "rss_mib_worker_loaded": round(loaded_rss, 1),
            "max_connects_per_s": self.connects_per_s(started),
            "connect_limit_per_s": args.connect_rate * args.workers, "kills": len(takeovers),
        }
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers.values():
            process.wait(30)
        await store.aclose()
        return result

    # -- the baseline: Mailbox.watch in one process --------------------------------------------------
    async def baseline(self) -> dict[str, Any]:
        args = self.args
        await self.sb.faults.end_sessions()
        started = time.time()
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--baseline-child", json.dumps({
                "bals": self.bals, "ca": self.sb.info["ca_bundle"], "certs": str(self.certs), "dns": self.dns,
                "hosts": self.hosts}), stdout=asyncio.subprocess.PIPE)
        assert child.stdout is not None
        first = json.loads(await child.stdout.readline())
        empty_rss = first["rss"]
        loaded_rss = 0.0

        async def watching() -> bool:
            return self.watched()

        await self.until(watching, 120)
        ready_s = time.time() - started
        loaded_rss = _rss_mib(child.pid)
        rss = (loaded_rss - empty_rss) / len(self.bals) * 1000
        delivered: dict[str, float] = {}
        per_bal: dict[str, str] = {}
        seen: Counter[str] = Counter()
        seen_at: dict[str, float] = {}

        async def read() -> None:
            assert child.stdout is not None
            while line := await child.stdout.readline():
                subject = json.loads(line)["subject"]
                if not subject.startswith("base"):
                    continue  # the fleet's messages, already in the folders
                seen[subject] += 1
                seen_at.setdefault(subject, time.time())

        reader = asyncio.create_task(read())
        for index in range(args.messages):
            await self.deliver(f"base{index:05d}", delivered, per_bal)
            await asyncio.sleep(1 / args.rate)

        async def all_seen() -> bool:
            return all(s in seen for s in delivered)

        with contextlib.suppress(TimeoutError):
            await self.until(all_seen, 30)
        child.send_signal(signal.SIGTERM)
        await child.wait()
        reader.cancel()
        latencies = [(seen_at[s] - t) * 1000 for s, t in delivered.items() if s in seen_at]
        return {"bals": args.bals, "workers": 1, "delivered": len(delivered), "published": sum(seen.values()),
                "missed": sum(1 for s in delivered if s not in seen),
                "duplicated": sum(n - 1 for n in seen.values() if n > 1), "takeover_s_max": None,
                "p50_ms": round(_pct(latencies, 0.5), 1), "p99_ms": round(_pct(latencies, 0.99), 1),
                "rss_mib_per_1000_bals": round(rss, 1), "ready_s": round(ready_s, 1),
                "rss_mib_worker_empty": round(empty_rss, 1), "rss_mib_worker_loaded": round(loaded_rss, 1),
                "max_connects_per_s": self.connects_per_s(started)}


async def _alive(store: FleetStore, count: int) -> bool:
    return len(await store.workers()) >= count


async def _baseline_child(config: dict[str, Any]) -> None:
    """Watch every BAL with Mailbox.watch in this one process; print each message's subject."""
    host, _, port = config["dns"].rpartition(":")
    connector = MailboxConnector(
        tls=TrustSettings(ca_bundle=Path(config["ca"])), certificates=Path(config["certs"]),
        resolver=DNSPythonResolver(nameservers=[host], port=int(port)),
        options=MailboxOptions(connection=ConnectionSettings(resolve=dict.fromkeys(config["hosts"], "127.0.0.1"),
                                                             idle_refresh=5), backoff=Backoff(initial=0.2)))
    print(json.dumps({"rss": _rss_mib(os.getpid())}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def one(address: str) -> None:
        box = await connector.mailbox(BALSpec(address=address, kind="APP", ref=STRUCTURE))
        async with box, contextlib.aclosing(box.watch(state=WatchState())) as watcher:  # from now on
            async for summary in watcher:
                print(json.dumps({"bal": address, "subject": summary.subject}), flush=True)

    tasks = []
    for address in config["bals"]:
        tasks.append(asyncio.create_task(one(address)))
        await asyncio.sleep(1 / 50)  # the same pace as the fleet's limiter, in batches of one
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp, durable=False)
        redis.start()
        try:
            base = default_config()
            extra = tuple(BALConfig(address=f"svc{i}@{base.domain}", kind="APP", structure_id=STRUCTURE)
                          for i in range(args.bals))
            async with testing.running_sandbox(tmp / "sandbox", replace(base, bals=base.bals + extra)) as sb:
                bench = Bench(args, sb, tmp, redis.url)
                fleet = await bench.fleet()
                baseline = await bench.baseline()
        finally:
            redis.stop()
    print(f"{'':24}{'fleet':>12}{'Mailbox.watch':>16}")
    for key in ("bals", "workers", "delivered", "published", "missed", "duplicated", "takeover_s_max", "p50_ms",
                "p99_ms", "rss_mib_per_1000_bals", "rss_mib_worker_empty", "rss_mib_worker_loaded", "ready_s",
                "max_connects_per_s"):
        print(f"{key:24}{fleet.get(key)!s:>12}{baseline.get(key)!s:>16}")
    print(json.dumps({**fleet, "baseline": baseline}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bals", type=int, default=40)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=1)
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--rate", type=float, default=10.0, help="messages delivered per second")
    parser.add_argument("--connect-rate", type=float, default=20.0, help="connections per second per worker")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-x-mss", action="store_true", help="workers do not fetch X-MSS header fields")
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.workers < 2:
        parser.error("--workers must be at least 2 (one is killed)")
    if options.baseline_child:
        asyncio.run(_baseline_child(json.loads(options.baseline_child)))
    else:
        asyncio.run(main(options))
