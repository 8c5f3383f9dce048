"""Benchmark: the IMAP and SMTP clients' memory against hostile servers (issue 13, "bounded memory").

Run: ``.venv/bin/python benchmarks/bench_hostile.py [--mb 16] [--only flood,...]`` (not a test; loopback
only; bounded: each pattern sends at most ``--mb`` MiB, or ``4 × --mb`` for the literal patterns, and the
slow drip lasts ``--drip`` seconds).

For each pattern a hostile server listens on 127.0.0.1; a fresh Python process runs
``IMAPConnection.open`` against it (greeting, CAPABILITY, STARTTLS: everything happens before TLS,
so no certificate is needed, as in the issue's report) and prints its peak resident memory
(``ru_maxrss``) and the error it ended with. The baseline is the same client facing a well-behaved
server that refuses STARTTLS, measured in the same run. The bar: every peak stays under 100 MB and
every run ends with an error of our tree (``fault`` = ``peer`` or ``network``), never a traceback.

Patterns:

* ``flood``: ``--mb`` MiB of small untagged lines (``* OK x``) in answer to STARTTLS;
* ``flood-big``: ``4 × --mb`` MiB in 64 KiB untagged lines;
* ``huge-literal``: ``* 1 FETCH (BODY[] {n}`` then ``4 × --mb`` MiB (a streamed literal);
* ``held-literal``: ``* LIST () "/" {n}`` with a literal of ``4 × --mb`` MiB (a literal that is held);
* ``many-literals``: one FETCH response made of 900 KiB literals, ``4 × --mb`` MiB in all;
* ``endless-line``: one line that never ends (``--mb`` MiB sent);
* ``slow-drip``: a line dripped one octet every 20 ms for ``--drip`` s (``connect_timeout`` = 3 s);
* ``smtp-flood``, ``smtp-endless``: the SMTP client (``SMTPSubmission.open``) facing a multi-line
  greeting of ``--mb`` MiB, or one greeting line that never ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hostile server ready\r\n"
LIMIT_MB = 100.0

CHILD = r"""
import asyncio, json, resource, ssl, sys, time
from mssante.client._config import ConnectionSettings
from mssante.client._imap import IMAPConnection
from mssante.client._tls import TLSClient
from mssante.errors import MssanteError

async def main(port, connect_timeout, protocol):
    settings = ConnectionSettings(connect_timeout=connect_timeout, command_timeout=connect_timeout)
    tls = TLSClient(context=ssl.create_default_context(), bundle=None, crls=None)
    start = time.monotonic()
    try:
        if protocol == "smtp":
            from mssante.client._smtp import SMTPSubmission
            from mssante.secret import Secret
            from mssante.wire.sasl import PlainClient

            mechanism = PlainClient("u", Secret("p"))
            conn = await SMTPSubmission.open("127.0.0.1", port, tls=tls, settings=settings, mechanism=mechanism,
                                             server_name="localhost")
        else:
            conn = await IMAPConnection.open("127.0.0.1", port, tls=tls, settings=settings, server_name="localhost")
            conn.abort()
        outcome = {"error": None}
    except MssanteError as exc:
        outcome = {"error": type(exc).__name__, "fault": exc.fault, "message": str(exc)[:160]}
    outcome["seconds"] = round(time.monotonic() - start, 2)
    outcome["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(outcome))

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
"""

Writer = asyncio.StreamWriter
Pattern = Callable[[asyncio.StreamReader, Writer, int], Awaitable[None]]


async def _send_volume(writer: Writer, piece: bytes, total: int) -> None:
    sent = 0
    block = piece * max(1, 65536 // len(piece))
    while sent < total:
        writer.write(block)
        await writer.drain()
        sent += len(block)


async def _after_starttls(reader: asyncio.StreamReader, writer: Writer) -> bytes:
    writer.write(GREETING)
    await writer.drain()
    line = await reader.readline()  # the client's STARTTLS (capabilities came with the greeting)
    return line.split(b" ", 1)[0]


async def polite(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    tag = await _after_starttls(reader, writer)
    writer.write(tag + b" NO [UNAVAILABLE] no TLS today\r\n")
    await writer.drain()


async def flood(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    await _after_starttls(reader, writer)
    await _send_volume(writer, b"* OK x\r\n", mb << 20)


async def flood_big(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    await _after_starttls(reader, writer)
    await _send_volume(writer, b"* OK " + b"y" * 65529 + b"\r\n", 4 * mb << 20)


async def huge_literal(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    await _after_starttls(reader, writer)
    writer.write(b"* 1 FETCH (BODY[] {%d}\r\n" % (4 * mb << 20))
    await _send_volume(writer, b"z" * 65536, 4 * mb << 20)


async def held_literal(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    await _after_starttls(reader, writer)
    size = 4 * mb << 20
    writer.write(b'* LIST () "/" {%d}\r\n' % size)
    await _send_volume(writer, b"n" * 65536, size)


async def many_literals(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    await _after_starttls(reader, writer)
    piece = 900 * 1024
    writer.write(b"* 1 FETCH (UID 1")
    for index in range((4 * mb << 20) // piece):
        writer.write(b" BODY[%d] {%d}\r\n" % (index + 1, piece) + b"m" * piece)
        await writer.drain()


async def endless_line(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    await _after_starttls(reader, writer)
    writer.write(b"* OK ")
    await _send_volume(writer, b"e" * 65536, mb << 20)


async def smtp_flood(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    await _send_volume(writer, b"220-" + b"g" * 70 + b"\r\n", mb << 20)  # a greeting that never ends


async def smtp_endless(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
    writer.write(b"220 ")
    await _send_volume(writer, b"e" * 65536, mb << 20)


def slow_drip(seconds: float) -> Pattern:
    async def drip(reader: asyncio.StreamReader, writer: Writer, mb: int) -> None:
        await _after_starttls(reader, writer)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            writer.write(b"d")
            await writer.drain()
            await asyncio.sleep(0.02)  # the pattern itself: a server that drips

    return drip


async def run_pattern(name: str, pattern: Pattern, mb: int, connect_timeout: float) -> dict[str, object]:
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: Writer) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await pattern(reader, writer, mb)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(), timeout=connect_timeout + 5)  # until the client leaves
        writer.close()
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(port), str(connect_timeout), name.split("-")[0],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await child.communicate()
    server.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=5)
    if child.returncode != 0 or not out.strip():
        return {"pattern": name, "error": "traceback", "detail": err.decode(errors="replace")[-400:]}
    result: dict[str, object] = {"pattern": name, **json.loads(out)}
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=16, help="MiB sent per flood pattern (default 16)")
    parser.add_argument("--drip", type=float, default=6.0, help="seconds the slow drip lasts (default 6)")
    parser.add_argument("--only", default="", help="comma-separated pattern names")
    args = parser.parse_args()
    patterns: dict[str, tuple[Pattern, float]] = {
        "baseline": (polite, 10.0),
        "flood": (flood, 10.0),
        "flood-big": (flood_big, 10.0),
        "huge-literal": (huge_literal, 10.0),
        "held-literal": (held_literal, 10.0),
        "many-literals": (many_literals, 10.0),
        "endless-line": (endless_line, 10.0),
        "slow-drip": (slow_drip(args.drip), 3.0),
        "smtp-flood": (smtp_flood, 10.0),
        "smtp-endless": (smtp_endless, 10.0),
    }
    chosen = [n for n in patterns if not args.only or n in args.only.split(",") or n == "baseline"]
    results = [await run_pattern(n, *patterns[n][:1], args.mb, patterns[n][1]) for n in chosen]
    base = next(float(str(r.get("peak_rss_mb", 0))) for r in results if r["pattern"] == "baseline")
    print(f"{'pattern':<14} {'peak RSS MB':>11} {'× base':>7} {'s':>6}  outcome")
    failures = 0
    for r in results:
        rss = float(str(r.get("peak_rss_mb", "nan")))
        bad = r.get("error") in (None, "traceback") and r["pattern"] != "baseline"
        bad = bad or not rss < LIMIT_MB or (r["pattern"] != "baseline" and r.get("fault") not in ("peer", "network"))
        failures += bad
        outcome = f"{r.get('error')} ({r.get('fault')}): {r.get('message', r.get('detail', ''))}"
        print(f"{r['pattern']:<14} {rss:>11.1f} {rss / base:>7.2f} {r.get('seconds', '-'):>6}  {outcome[:110]}"
              + ("  <-- FAIL" if bad else ""))
    summary = {
        "bench": "hostile",
        "mb": args.mb,
        "baseline_rss_mb": base,
        "limit_mb": LIMIT_MB,
        "patterns": {str(r["pattern"]): {k: r.get(k) for k in ("peak_rss_mb", "error", "fault", "seconds")}
                     for r in results},
        "failures": failures,
    }
    print(json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
