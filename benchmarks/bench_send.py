"""Benchmark: ``Mailbox.send`` against an aiosmtplib loop on one connection, the servers in other processes.

Run: ``.venv/bin/python benchmarks/bench_send.py [--messages 500] [--block 10] [--profile]``
(loopback only, bounded).

* **send.sandbox**: messages from a BAL APP to another through the sandbox's submission front
  (``mssante sandbox up`` in a child process): ``Mailbox.send`` on its reused session (the
  operator files Sent, as the sandbox does) against aiosmtplib's ``sendmail`` on one
  authenticated connection. Goal ≥ 1.0 (issue 14 goal 1).
* **send.pipelining**: the same against Dovecot's submission service, which offers PIPELINING
  (RFC 2920) and CHUNKING (RFC 3030). Goal ≥ 1.3.

How it is measured, so that the load of the machine cancels out: the two clients take turns in
short blocks (``--block`` messages, ~10-40 ms), ABBA order, many blocks; a block's figure is
its rate, and the ratio is the median of each of our blocks over the baseline block beside it
(same load, a few milliseconds apart), with its interquartile range. Long rounds (hundreds of
messages) let a burst of load land on one side only: that is where rounds of 0.93-2.23×
came from. The two rates reported are those at the run's median load (the median of the
pairs' geometric means, times and over the square root of that ratio), so that their ratio is
the paired one; the plain medians of each side's blocks are in ``ours_median`` and
``baseline_median``. Each side's CPU per message is also reported, the client's and the
server's processes' (``/proc``), which depend much less on the load.

Dovecot's submission relays every command to its relay (an aiosmtpd sink in Dovecot's child
process, which does not offer PIPELINING) before it answers: ``MAIL``, ``RCPT``, and ``DATA``
with the data are each a round trip to that Python sink, for both clients alike (about 0.7, 0.7
and 1.2 ms here, ``server_ms_per_command``), while a round trip between client and Dovecot alone
(its own ``354``) costs about 0.25 ms. A client can only save its own round trips and CPU: the
2.5 ms or so of relay round trips per message stay in both figures and damp the ratio. With a
relay that offers PIPELINING, as Postfix does, Dovecot pipelines ``MAIL``/``RCPT`` to it for a
pipelining client and the ratio rises. No garbage collection runs during the blocks
(``gc_collections``).

``--profile`` prints the cProfile of our side (CPU time, the top functions by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosmtplib
from _client_world import (
    RECIPIENT,
    SENDER,
    bal,
    client_context,
    dovecot,
    dovecot_mailbox,
    profile_text,
    sandbox_mailbox,
    sandbox_process,
)
from _rows import Row

from mssante.client import Mailbox
from mssante.message import ComposeSettings, Draft, Sender, compose_message

_TICK = os.sysconf("SC_CLK_TCK")


def _composed() -> Any:
    return compose_message(Draft(sender=Sender(address=SENDER), to=(RECIPIENT,), subject="bench",
                                 text="Bonjour, compte rendu de test.\n" * 20),
                           settings=ComposeSettings(product_reference="DEV000001"))


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server under measurement and what it started)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (and their reaped children), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone (a Dovecot login process that ended)
        total += sum(int(f) for f in fields[11:15])
    return total / _TICK


async def _baseline_client(info: dict[str, Any], host: str, port: int) -> aiosmtplib.SMTP:
    entry = bal(info, SENDER)
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await smtp.connect()
    await smtp.starttls(tls_context=client_context(info["ca_bundle"], entry["cert"], entry["key"]),
                        server_hostname=host)
    await smtp.ehlo()
    await smtp.auth_plain(SENDER, "AUTH_CLI")
    return smtp


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


async def _compare(box: Mailbox, smtp: aiosmtplib.SMTP, n: int, block: int, server_pid: int,
                   profile: cProfile.Profile | None) -> dict[str, Any]:
    composed = _composed()
    for _ in range(3):  # warm up: discovery, connect, STARTTLS, CRL, AUTH, the server's relay connection
        await box.send(composed)
        await smtp.sendmail(composed.envelope_from, list(composed.recipients), composed.to_bytes())
    pids = _process_tree(server_pid)

    async def ours() -> None:
        await box.send(composed)

    async def baseline() -> None:  # the same work as Mailbox.send: serialise the composed message, submit it
        await smtp.sendmail(composed.envelope_from, list(composed.recipients), composed.to_bytes())

    sides: dict[str, Callable[[], Awaitable[None]]] = {"ours": ours, "baseline": baseline}
    rates: dict[str, list[float]] = {"ours": [], "baseline": []}
    client_cpu = dict.fromkeys(sides, 0.0)
    server_cpu = dict.fromkeys(sides, 0.0)
    blocks = max(2, n // block)
    gc.collect()
    collections = sum(g["collections"] for g in gc.get_stats())
    load = os.getloadavg()[0]
    for i in range(blocks):
        for name in ("ours", "baseline") if i % 4 in (0, 3) else ("baseline", "ours"):  # ABBA
            send = sides[name]
            server0 = _cpu_seconds(pids)
            if profile is not None and name == "ours":
                profile.enable()
            cpu0, started = time.process_time(), time.perf_counter()
            for _ in range(block):
                await send()
            elapsed = time.perf_counter() - started
            client_cpu[name] += time.process_time() - cpu0
            if profile is not None and name == "ours":
                profile.disable()
            server_cpu[name] += _cpu_seconds(pids) - server0
            rates[name].append(block / elapsed)
    collections = sum(g["collections"] for g in gc.get_stats()) - collections
    # The server's own latency per command, one at a time (MAIL, RCPT, then DATA with the message).
    steps: dict[str, list[float]] = {"MAIL": [], "RCPT": [], "DATA+message": []}
    data = composed.to_bytes()
    for _ in range(30):
        for step, call in (("MAIL", lambda: smtp.mail(composed.envelope_from)),
                           ("RCPT", lambda: smtp.rcpt(composed.recipients[0])),
                           ("DATA+message", lambda: smtp.data(data))):
            started = time.perf_counter()
            await call()
            steps[step].append(time.perf_counter() - started)
    # Each block of ours over the baseline block beside it (ABBA pairs them in time).
    paired = [a / b for a, b in zip(rates["ours"], rates["baseline"], strict=True)]
    ratio = statistics.median(paired)
    q1, q3 = _quartiles(paired)
    # The two rates at the run's median load: a pair's level is the geometric mean of its two
    # blocks; ours and the baseline are that level times and over the square root of the ratio.
    level = statistics.median(math.sqrt(a * b) for a, b in zip(rates["ours"], rates["baseline"], strict=True))
    sent = blocks * block
    return {
        "ours": level * math.sqrt(ratio), "baseline": level / math.sqrt(ratio),
        "ours_median": statistics.median(rates["ours"]), "baseline_median": statistics.median(rates["baseline"]),
        "paired_ratio": round(ratio, 3), "paired_iqr": (round(q1, 3), round(q3, 3)),
        "paired_range": (round(min(paired), 3), round(max(paired), 3)),
        "blocks": blocks, "block": block,
        "client_cpu_ms": {k: round(v / sent * 1e3, 3) for k, v in client_cpu.items()},
        "server_cpu_ms": {k: round(v / sent * 1e3, 3) for k, v in server_cpu.items()},
        "server_ms_per_command": {k: round(statistics.median(v) * 1e3, 2) for k, v in steps.items()},
        "gc_collections": collections,
        "load": (round(load, 2), round(os.getloadavg()[0], 2)), "octets": len(data),
    }


async def _on_sandbox(info: dict[str, Any], n: int, block: int,
                      profile: cProfile.Profile | None) -> dict[str, Any]:
    front = info["smtp"]["authcli"]
    smtp = await _baseline_client(info, front["host"], front["port"])
    async with sandbox_mailbox(info, SENDER, operator_saves_sent=True) as box:
        result = await _compare(box, smtp, n, block, info["_pid"], profile)
    await smtp.quit()
    return result


async def _on_dovecot(info: dict[str, Any], server: Any, n: int, block: int,
                      profile: cProfile.Profile | None) -> dict[str, Any]:
    smtp = await _baseline_client(info, info["smtp"]["authcli"]["host"], server.submission_port)
    async with dovecot_mailbox(info, server, SENDER, operator_saves_sent=True) as box:
        result = await _compare(box, smtp, n, block, server.pid, profile)
        sessions = getattr(box, "_sessions", None)  # absent from older clients (MSSANTE_CLIENT_SRC)
        session = sessions._smtp if sessions is not None else None
        result["server_pipelining"] = session is not None and session._smtp.supports_extension("pipelining")
        result["server_chunking"] = session is not None and session._smtp.supports_extension("chunking")
    await smtp.quit()
    return result


def measure(n: int, *, block: int = 10, dovecot_too: bool = True, profile: bool = False) -> dict[str, Any]:
    """Both comparisons in one run; the figures (and the profile texts when asked)."""
    out: dict[str, Any] = {}
    profiles = {"sandbox": cProfile.Profile(time.process_time), "dovecot": cProfile.Profile(time.process_time)}
    with sandbox_process() as info:
        out["sandbox"] = asyncio.run(_on_sandbox(info, n, block, profiles["sandbox"] if profile else None))
        if dovecot_too:
            with dovecot(info, deliver=False) as server:
                if server is not None:
                    out["dovecot"] = asyncio.run(_on_dovecot(info, server, n, block,
                                                             profiles["dovecot"] if profile else None))
    if profile:
        out["profile"] = {name: profile_text(p) for name, p in profiles.items() if name in out}
    return out


def report_rows(scale: float = 1.0) -> list[Row]:
    """The issue 14 goal 1 rows: send.sandbox (≥ 1.0) and send.pipelining (≥ 1.3)."""
    n = max(100, round(500 * scale))
    r = measure(n)
    rows = [Row(key="send.sandbox", what=f"send {n} messages (sandbox)", figure=round(r["sandbox"]["ours"], 1),
                unit="msg/s", baseline_name="aiosmtplib loop, one connection",
                baseline=round(r["sandbox"]["baseline"], 1), goal=1.0, extra=r["sandbox"])]
    if "dovecot" in r:
        rows.append(Row(key="send.pipelining", what=f"send {n} messages (Dovecot submission, PIPELINING)",
                        figure=round(r["dovecot"]["ours"], 1), unit="msg/s",
                        baseline_name="aiosmtplib loop, one connection", baseline=round(r["dovecot"]["baseline"], 1),
                        goal=1.3, extra=r["dovecot"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per side")
    parser.add_argument("--block", type=int, default=10, help="messages per block (the two sides alternate)")
    parser.add_argument("--no-dovecot", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    r = measure(args.messages, block=args.block, dovecot_too=not args.no_dovecot, profile=args.profile)
    for name, what in (("sandbox", "sandbox submission"), ("dovecot", "Dovecot submission (PIPELINING)")):
        if name in r:
            f = r[name]
            print(f"send on {what}: Mailbox.send {f['ours']:.0f} msg/s, aiosmtplib {f['baseline']:.0f} msg/s "
                  f"(at the median load; {f['blocks']} blocks of {f['block']}, plain medians "
                  f"{f['ours_median']:.0f} and {f['baseline_median']:.0f}); paired ratio {f['paired_ratio']:.2f} "
                  f"(IQR {f['paired_iqr'][0]:.2f}-{f['paired_iqr'][1]:.2f}, "
                  f"range {f['paired_range'][0]:.2f}-{f['paired_range'][1]:.2f}); CPU ms/msg client "
                  f"{f['client_cpu_ms']['ours']:.2f} vs {f['client_cpu_ms']['baseline']:.2f}, server "
                  f"{f['server_cpu_ms']['ours']:.2f} vs {f['server_cpu_ms']['baseline']:.2f}; server latency "
                  f"per command (ms) {f['server_ms_per_command']}; {f['gc_collections']} GC runs; load {f['load']}")
    for name, text in r.get("profile", {}).items():
        print(f"--- profile of Mailbox.send on {name} (CPU time)\n{text}")


if __name__ == "__main__":
    main()
