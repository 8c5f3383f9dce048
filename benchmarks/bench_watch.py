"""Benchmark: many BALs watched (IDLE) by one client process, the sandbox in another.

Run: ``.venv/bin/python benchmarks/bench_watch.py [--bals 1000] [--probes 30]`` (loopback only, bounded).

Every BAL APP is started at the same instant (no ramp-up): discovery (SRV + A through the sandbox
DNS), connect, STARTTLS, AUTHENTICATE, SELECT, IDLE. Measured, in this process only (the sandbox
is a child process):

* **watch.connected_at_once**: how many of them connect (``connected`` event) within the
  deadline; the goal is all of them (issue 14 goal 3);
* **watch.kib_per_bal**: resident memory growth of the client (``VmRSS``) once every watcher
  idles, divided by the number of BALs (after one warm-up BAL: imports, TLS client, CRLs); the
  goal is at most 60 KiB (TLS connection, buffers, tasks). The ``extra`` field holds the figure
  with asyncio's stock TLS upgrade (a 256 KiB read buffer per connection), measured on the same
  sandbox in the same run, each variant in a fresh process, for comparison;
* notification latency (delivery over IMAP APPEND → ``watch`` yields), median and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _client_world import SENDER, rss_kib, sandbox_mailbox, sandbox_process
from _rows import Row

from mssante.client import Mailbox
from mssante.trust import CRLCache


async def _watch_all(info: dict[str, Any], n: int, probes: int, *, deadline: float) -> dict[str, Any]:
    addresses = [f"app{i:05d}@{info['domain']}" for i in range(n)]
    crls = CRLCache()
    arrivals: dict[str, asyncio.Queue[float]] = {a: asyncio.Queue() for a in addresses}
    connected: set[str] = set()
    all_in = asyncio.Event()
    # Warm up with one more BAL (imports, the shared TLS client, CRLs, DNS answers): the figure is
    # what each further watched BAL costs.
    warm = sandbox_mailbox(info, SENDER, crls=crls, resolve=False)
    async with warm:
        await warm.folders()
    gc.collect()
    rss_before = rss_kib()
    boxes = [sandbox_mailbox(info, a, cert_of=SENDER, crls=crls, resolve=False) for a in addresses]

    def on_event(event: Any) -> None:
        if event.kind == "connected":
            connected.add(event.address)
            if len(connected) == n:
                all_in.set()

    async def run(box: Mailbox) -> None:
        async with contextlib.aclosing(box.watch()) as messages:
            async for _ in messages:
                arrivals[box.address].put_nowait(time.perf_counter())

    for box in boxes:
        box.add_listener(on_event)
    started = time.perf_counter()
    tasks = [asyncio.create_task(run(box)) for box in boxes]  # all at the same instant
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), deadline)
    setup = time.perf_counter() - started
    count = len(connected)
    # Connected means authenticated; SELECT and IDLE follow. Let them settle before reading RSS
    # (a benchmark, not a test: a short pause, then two readings a second apart, the higher kept).
    await asyncio.sleep(2.0)
    gc.collect()
    first = rss_kib()
    await asyncio.sleep(1.0)
    rss_after = max(first, rss_kib())
    latencies: list[float] = []
    if count == n and probes:
        probe_box = sandbox_mailbox(info, SENDER, crls=crls)
        async with probe_box:
            for i in range(probes):
                address = random.choice(addresses)
                message = f"From: {SENDER}\r\nTo: {address}\r\nSubject: probe {i}\r\n\r\nx\r\n".encode()
                sent = time.perf_counter()
                # An APPEND into the watched BAL's INBOX through its own IMAP (the certificate is the structure's).
                other = sandbox_mailbox(info, address, cert_of=SENDER, crls=crls)
                async with other:
                    await other.append("INBOX", message, flags=())
                latencies.append(await asyncio.wait_for(arrivals[address].get(), 30) - sent)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(box.aclose() for box in boxes))
    latencies.sort()
    return {"n": n, "connected": count, "setup_s": setup, "kib_per_bal": (rss_after - rss_before) / n,
            "latency_median_ms": statistics.median(latencies) * 1000 if latencies else None,
            "latency_p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000 if latencies else None}


def _use_stock_tls() -> None:
    """Make the client upgrade with asyncio's own ``StreamWriter.start_tls`` (the comparison)."""
    import mssante.client._imap as imap_module

    async def stock(writer: asyncio.StreamWriter, context: Any, *, server_hostname: str) -> None:
        await writer.start_tls(context, server_hostname=server_hostname)

    imap_module.start_tls = stock  # type: ignore[assignment]


def _child(info_file: str, n: int, probes: int, deadline: float, stock: bool) -> None:
    """In a fresh process (RSS not inflated by an earlier run): watch, print the figures as JSON."""
    if stock:
        _use_stock_tls()
    info = json.loads(Path(info_file).read_text(encoding="utf-8"))
    print(json.dumps(asyncio.run(_watch_all(info, n, probes, deadline=deadline))))


def _in_child(info: dict[str, Any], n: int, probes: int, deadline: float, stock: bool) -> dict[str, Any]:
    info_file = Path(info["_state_dir"]) / "bench-info.json"
    info_file.write_text(json.dumps(info), encoding="utf-8")
    args = [sys.executable, str(Path(__file__).resolve()), "--child", str(info_file), "--bals", str(n),
            "--probes", str(probes), "--deadline", str(deadline)] + (["--stock"] if stock else [])
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=deadline + 300)
    if done.returncode != 0:
        raise SystemExit(f"the watch child failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(n: int, probes: int, *, deadline: float = 120.0, compare: bool = True) -> dict[str, Any]:
    """Start the sandbox with ``n`` extra BAL APP, watch them all from a fresh process; the figures.

    With ``compare``, a second fresh process does the same with asyncio's stock TLS upgrade.
    """
    with sandbox_process(extra_app_bals=n) as info:
        result = _in_child(info, n, probes, deadline, stock=False)
        if compare:
            result["stock_kib_per_bal"] = _in_child(info, n, 0, deadline, stock=True)["kib_per_bal"]
    return result


def report_rows(scale: float = 1.0) -> list[Row]:
    """The issue 14 goal 3 rows: KiB per idle watched BAL (≤ 60) and BALs connected at once (all)."""
    n = max(20, round(300 * scale))
    r = measure(n, probes=max(5, round(20 * scale)))
    extra = {k: v for k, v in r.items() if k not in ("kib_per_bal",)}
    return [
        Row(key="watch.kib_per_bal", what=f"client RSS per idle watched BAL ({n} BALs, IDLE)",
            figure=round(r["kib_per_bal"], 1), unit="KiB/BAL", goal=60.0, higher_is_better=False, extra=extra),
        Row(key="watch.connected_at_once", what=f"BALs started at the same instant that connect ({n})",
            figure=float(r["connected"]), unit="BALs", baseline_name="BALs started", baseline=float(n), goal=1.0,
            extra={"setup_s": r["setup_s"]}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bals", type=int, default=300)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=180.0)
    parser.add_argument("--no-compare", action="store_true", help="skip the stock asyncio TLS comparison")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stock", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.bals, args.probes, args.deadline, args.stock)
        return
    r = measure(args.bals, args.probes, deadline=args.deadline, compare=not args.no_compare)
    print(f"watch: {r['n']} BALs started at once, {r['connected']} connected in {r['setup_s']:.1f} s")
    print(f"  client RSS growth {r['kib_per_bal']:.1f} KiB per idle BAL (goal <= 60)")
    if "stock_kib_per_bal" in r:
        print(f"  same with asyncio's stock TLS upgrade: {r['stock_kib_per_bal']:.1f} KiB per BAL")
    if r["latency_median_ms"] is not None:
        print(f"  notification latency: median {r['latency_median_ms']:.1f} ms, p99 {r['latency_p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
