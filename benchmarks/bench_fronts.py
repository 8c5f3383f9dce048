"""Throughput of the sandbox's API LPS fronts, compared with a real Dovecot in the same run.

Two loads, each at concurrency 10 and 100 (threads running the stdlib clients, the same
client code for both servers, so the ratio compares the servers):

* sessions/s: connect, STARTTLS, AUTHENTICATE XOAUTH2, SELECT INBOX, UID FETCH 1:* (FLAGS
  ENVELOPE), LOGOUT;
* messages/s: SMTP submission sessions (STARTTLS + XOAUTH2) each sending messages of 10 KB.

Every load is bounded by a count and a duration, and targets 127.0.0.1 only. Dovecot runs when
``/usr/sbin/dovecot`` exists (``tests/interop/dovecot.py`` configures it rootless); otherwise the
script reports the sandbox alone. Run from the repository root:

    .venv/bin/python -m benchmarks.bench_fronts [--seconds 8] [--max-sessions 400]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import imaplib
import smtplib
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path

from mssante.sandbox.config import Lifetimes, default_config
from mssante.sandbox.runner import Sandbox

PER = "marie.curie@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"
BODY = ("Compte rendu de test. " * 500)[:10_000]


@dataclass(frozen=True)
class Target:
    name: str
    imap_port: int
    smtp_port: int
    ca_bundle: str


@dataclass
class Result:
    done: int
    seconds: float
    latencies: list[float]
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        p50 = statistics.median(self.latencies) * 1000 if self.latencies else float("nan")
        failed = f", {len(self.errors)} failed" if self.errors else ""
        return f"{self.rate:8.1f}/s  (n={self.done}, p50 {p50:.0f} ms{failed})"


def _ctx(target: Target) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=target.ca_bundle)
    ctx.check_hostname = False  # connected by IP; names are checked by the functional tests
    return ctx


def _xoauth2(token: str) -> bytes:
    return f"user={PER}\x01auth=Bearer {token}\x01\x01".encode()


def imap_session(target: Target, token: str) -> None:
    imap = imaplib.IMAP4("127.0.0.1", target.imap_port, timeout=30)
    try:
        imap.starttls(ssl_context=_ctx(target))
        imap.authenticate("XOAUTH2", lambda _: _xoauth2(token))
        imap.select("INBOX")
        imap.uid("FETCH", "1:*", "(FLAGS ENVELOPE)")
    finally:
        imap.logout()


def smtp_session(target: Target, token: str, per_session: int) -> int:
    with smtplib.SMTP("127.0.0.1", target.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=_ctx(target))
        smtp.ehlo()
        smtp.auth("XOAUTH2", lambda challenge=None: _xoauth2(token).decode(), initial_response_ok=False)
        for i in range(per_session):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = PER, APP, f"bench {i}"
            msg["X-MSS-NIL"] = "BENCH0001"
            msg.set_content(BODY)
            smtp.send_message(msg)
    return per_session


def run_load(work: Callable[[], int], *, concurrency: int, seconds: float, max_units: int) -> Result:
    """Run ``work`` from ``concurrency`` threads until ``seconds`` pass or ``max_units`` are done."""
    done = 0
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            with lock:
                if done >= max_units:
                    return
            start = time.monotonic()
            try:
                units = work()
            except (OSError, imaplib.IMAP4.error, smtplib.SMTPException) as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:160])
                continue
            with lock:
                done += units
                latencies.append(time.monotonic() - start)

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return Result(done=done, seconds=time.monotonic() - start, latencies=latencies, errors=errors)


def bench(target: Target, token: str, args: argparse.Namespace) -> dict[str, Result]:
    out: dict[str, Result] = {}
    for concurrency in (10, 100):
        out[f"sessions c={concurrency}"] = run_load(
            lambda: (imap_session(target, token), 1)[1],
            concurrency=concurrency, seconds=args.seconds, max_units=args.max_sessions,
        )
        out[f"messages c={concurrency}"] = run_load(
            lambda: smtp_session(target, token, 5),
            concurrency=concurrency, seconds=args.seconds, max_units=args.max_messages,
        )
    return out


async def main(args: argparse.Namespace) -> int:
    config = replace(default_config(), lifetimes=Lifetimes(access_token=3600))
    with tempfile.TemporaryDirectory(prefix="bench-fronts-") as tmp:
        async with Sandbox(config, Path(tmp) / "state") as sb:
            info = sb.info
            token = sb.psc.issue_tokens_for_tests("899700000001", "mssante-sandbox")["access_token"]
            sandbox = Target("sandbox", info["imap"]["psc"]["port"], info["smtp"]["psc"]["port"], info["ca_bundle"])
            results = {"sandbox": await asyncio.to_thread(bench, sandbox, token, args)}
            dovecot = await _dovecot(sb, info)
            if dovecot is not None:
                server, target = dovecot
                try:
                    results["dovecot"] = await asyncio.to_thread(bench, target, token, args)
                finally:
                    await asyncio.to_thread(server.stop)  # type: ignore[attr-defined]
    _report(results)
    return 0


_ROOT = str(Path(__file__).resolve().parents[1])


async def _dovecot(sb: Sandbox, info: dict[str, object]) -> tuple[object, Target] | None:
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    try:
        from tests.interop.dovecot import DovecotServer, dovecot_available
    except ImportError:
        return None
    if dovecot_available() is not None:
        print(f"dovecot: not measured ({dovecot_available()})")
        return None
    psc = info["psc"]
    assert isinstance(psc, dict)
    server = DovecotServer(
        pki=sb.pki, introspection_url=psc["issuer"] + "/protocol/openid-connect/token/introspect",
        client_id=psc["client_id"], client_secret=psc["client_secret"], config=sb.config,
    )
    await asyncio.to_thread(server.start)
    return server, Target("dovecot", server.imap_port, server.submission_port, str(sb.pki.ca_bundle_path))


def _report(results: dict[str, dict[str, Result]]) -> None:
    print(f"{'load':20} {'sandbox':34} {'dovecot':34} ratio sandbox/dovecot")
    for load, res in results["sandbox"].items():
        other = results.get("dovecot", {}).get(load)
        ratio = f"{res.rate / other.rate:5.2f}" if other and other.rate else "  n/a"
        print(f"{load:20} {res.describe():34} {other.describe() if other else 'not measured':34} {ratio}")
    for target, loads in results.items():
        for load, res in loads.items():
            if res.errors:
                print(f"  {target} {load}: first error: {res.errors[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="duration bound of each load")
    parser.add_argument("--max-sessions", type=int, default=400, help="count bound of each IMAP load")
    parser.add_argument("--max-messages", type=int, default=600, help="count bound of each SMTP load")
    sys.exit(asyncio.run(main(parser.parse_args())))
