"""A burst of DNS queries against the sandbox DNS, out of process (issue 14, goal 3: "the sandbox DNS
answers 1,000 queries in a burst").

When 1,000 BALs start at the same instant, each looks the SRV records up: the queries reach the
sandbox DNS together, while its event loop is busy (in the sandbox, with the fronts' TLS
handshakes). What is not read before the UDP receive buffer fills is dropped by the kernel, and
the client sees ``DNS timeout``.

The server is :class:`mssante.sandbox.dns.DNSResponder` with the sandbox zone, in a child Python
(``--serve``). During the burst its loop is kept busy by a task that blocks it ``--busy-ms`` out
of every ``--period-ms`` (default 20 of 25 ms, as handshakes would). The client sends ``N``
``_imap._tcp`` SRV queries at once from 50 UDP sockets, then counts the answers (matched by id)
within ``--wait`` seconds, without retrying. The same run measures the same server with its UDP
receive buffer set back to the system default (``net.core.rmem_default``), what it had before
this benchmark was written: that is the comparison row. From the repository root:

    .venv/bin/python -m benchmarks.bench_dns [--scale 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._rows import Row

_ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "mss.sandbox.test"
SOCKETS = 50
ROUNDS = 3


def _default_rcvbuf() -> int:
    try:
        return int(Path("/proc/sys/net/core/rmem_default").read_text())
    except (OSError, ValueError):
        return 212_992


async def _serve(default_buffer: bool, busy_ms: float, period_ms: float) -> None:
    from mssante.sandbox.dns import DNSResponder, FrontPorts, build_zone

    ports = FrontPorts(imap_psc=1143, imap_authcli=1144, smtp_psc=1587, smtp_authcli=1588)
    server = DNSResponder(build_zone(DOMAIN, "127.0.0.1", ports))
    _host, port = await server.start("127.0.0.1", 0)
    if default_buffer:
        sock = server._udp.get_extra_info("socket") if server._udp is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _default_rcvbuf() // 2)  # the kernel doubles it
    print(json.dumps({"port": port}), flush=True)

    async def busy() -> None:
        while True:
            until = time.perf_counter() + busy_ms / 1000
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(max(0.0, (period_ms - busy_ms) / 1000))

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(busy())
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    task.cancel()
    await server.aclose()


def _start(default_buffer: bool, busy_ms: float, period_ms: float) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, "-m", "benchmarks.bench_dns", "--serve", "--busy-ms", str(busy_ms),
            "--period-ms", str(period_ms)]
    if default_buffer:
        args.append("--default-buffer")
    env = {**os.environ, "PYTHONPATH": str(_ROOT / "src") + os.pathsep + str(_ROOT)}
    child = subprocess.Popen(args, cwd=_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        child.kill()
        raise RuntimeError("the DNS child did not start")
    return child, int(json.loads(line)["port"])


def _stop(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(10)


def _query(query_id: int) -> bytes:
    import dns.message

    query = dns.message.make_query(f"_imap._tcp.{DOMAIN}", "SRV")
    query.id = query_id
    return query.to_wire()


def burst(port: int, count: int, wait: float) -> tuple[int, float]:
    """Send ``count`` queries at once; return (answers received, seconds until the last one)."""
    import selectors

    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(SOCKETS)]
    selector = selectors.DefaultSelector()
    try:
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ)
        wires = [_query(i) for i in range(count)]
        seen: set[int] = set()
        start = time.perf_counter()
        last = start
        for i, wire in enumerate(wires):
            socks[i % SOCKETS].sendto(wire, ("127.0.0.1", port))
        deadline = start + wait
        while len(seen) < count and time.perf_counter() < deadline:
            for key, _ in selector.select(max(0.0, deadline - time.perf_counter())):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                while True:
                    try:
                        data = sock.recv(4096)
                    except BlockingIOError:
                        break
                    seen.add(int.from_bytes(data[:2], "big"))
                    last = time.perf_counter()
        return len(seen), last - start
    finally:
        selector.close()
        for s in socks:
            s.close()


def measure(count: int, *, busy_ms: float = 20.0, period_ms: float = 25.0, wait: float = 3.0,
            rounds: int = ROUNDS) -> dict[str, list[tuple[int, float]]]:
    """Interleaved rounds against the sandbox DNS as it is and with the system's default buffer."""
    out: dict[str, list[tuple[int, float]]] = {"sandbox": [], "default-buffer": []}
    servers = {name: _start(name == "default-buffer", busy_ms, period_ms) for name in out}
    try:
        for _ in range(rounds):
            for name, (_child, port) in servers.items():
                time.sleep(0.3)  # the previous burst's answers are gone
                out[name].append(burst(port, count, wait))
    finally:
        for child, _port in servers.values():
            _stop(child)
    return out


def report_rows(scale: float = 1.0) -> list[Row]:
    """``dns.burst_answered``: answers to a burst of 1,000 × ``scale`` SRV queries (median of 3 rounds),
    against the queries sent; the same burst against the same server with the default buffer in ``extra``.

    Raises:
        RuntimeError: the DNS child process does not start.
    """
    count = max(10, round(1000 * scale))
    results = measure(count)
    answered = statistics.median(a for a, _ in results["sandbox"])
    before = statistics.median(a for a, _ in results["default-buffer"])
    return [Row(key="dns.burst_answered", what=f"sandbox DNS, burst of {count:,} SRV queries, loop 80 % busy",
                figure=float(answered), unit="answers", baseline_name="queries sent", baseline=float(count),
                goal=1.0, extra={
                    "seconds_to_last_answer": statistics.median(t for _, t in results["sandbox"]),
                    "default_buffer_answered": before,
                    "rounds": {k: [a for a, _ in v] for k, v in results.items()},
                })]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--default-buffer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--busy-ms", type=float, default=20.0)
    parser.add_argument("--period-ms", type=float, default=25.0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.default_buffer, args.busy_ms, args.period_ms))
        return
    for row in report_rows(args.scale):
        if args.json:
            print(json.dumps(row.as_json()))
        else:
            print(f"{row.what}: {row.figure:.0f} of {row.baseline:.0f} answered (ratio {row.ratio:.3f}); "
                  f"default buffer: {row.extra['default_buffer_answered']:.0f}; rounds {row.extra['rounds']}; "
                  f"last answer after {row.extra['seconds_to_last_answer'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
