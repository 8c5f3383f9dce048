"""Throughput and memory of the sandbox's API LPS fronts, compared with a real Dovecot in the same run.

The sandbox runs **out of process** (``--serve`` starts it in a child Python, as ``mssante sandbox
up`` would, mailboxes persisted in its state directory); Dovecot 2.3 runs with ``service_count = 0``
on imap-login (its high-performance mode), fed by the sandbox's mock PSC for token
introspection. The same client code measures both:

* **sessions/s** (concurrency 10, threads running imaplib): connect, STARTTLS, AUTHENTICATE
  XOAUTH2, SELECT INBOX, UID FETCH 1:* (FLAGS ENVELOPE) of the 20 messages in the INBOX, LOGOUT;
* **memory per idle authenticated session**: the server's resident memory (the sandbox process;
  every process of Dovecot's process group) before and after opening ``--idle`` sessions left
  authenticated with INBOX selected, divided by their number;
* **APPEND messages/s**: one session appending 10 KB messages;
* **submission messages/s** (concurrency 10): SMTP sessions (STARTTLS + XOAUTH2) sending 5
  messages of 10 KB each, delivered to a local BAL.

Every load is bounded by a count and a duration and targets 127.0.0.1 only. ``--engine-src DIR``
runs the sandbox child from another source tree (e.g. an older commit's ``src``, extracted with
``git archive``) to compare engines in one run. From the repository root:

    .venv/bin/python -m benchmarks.bench_fronts [--seconds 5] [--idle 300]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import imaplib
import json
import os
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

PER = "marie.curie@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"
MARIE = "899700000001"
CLIENT_ID = "mssante-sandbox"
BODY = ("Compte rendu de test. " * 500)[:10_000]
INBOX_MESSAGES = 20
_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    name: str
    imap_port: int
    smtp_port: int
    ca_bundle: str
    rss: Callable[[], int]  # resident memory of the server, in KiB


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


def _message(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = PER, PER, subject
    msg["Date"] = "Fri, 14 Mar 2025 10:15:00 +0100"
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@mss.sandbox.test>"
    msg.set_content(BODY)
    msg.add_attachment(b"%PDF-1.4 bench", maintype="application", subtype="pdf", filename="cr.pdf")
    return bytes(msg)


def _ctx(target: Target) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=target.ca_bundle)
    ctx.check_hostname = False  # connected by IP; names are checked by the functional tests
    return ctx


def _xoauth2(token: str) -> bytes:
    return f"user={PER}\x01auth=Bearer {token}\x01\x01".encode()


def _login(target: Target, token: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", target.imap_port, timeout=30)
    try:
        imap.starttls(ssl_context=_ctx(target))
        imap.authenticate("XOAUTH2", lambda _: _xoauth2(token))
    except BaseException:
        imap.shutdown()
        raise
    return imap


def imap_session(target: Target, token: str) -> int:
    imap = _login(target, token)
    try:
        imap.select("INBOX")
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS ENVELOPE)")
        if typ != "OK" or len([d for d in data if d]) < INBOX_MESSAGES:
            raise imaplib.IMAP4.error(f"FETCH gave {len(data)} items")
    finally:
        imap.logout()
    return 1


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


def append_load(target: Target, token: str, *, seconds: float, max_units: int) -> Result:
    """One session APPENDing 10 KB messages to Drafts."""
    imap = _login(target, token)
    latencies: list[float] = []
    errors: list[str] = []
    data = _message("append bench")
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds and len(latencies) < max_units:
            t = time.monotonic()
            typ, answer = imap.append("Drafts", None, None, data)
            if typ != "OK":
                errors.append(str(answer)[:160])
                break
            latencies.append(time.monotonic() - t)
    finally:
        imap.logout()
    return Result(done=len(latencies), seconds=time.monotonic() - start, latencies=latencies, errors=errors)


def idle_memory(target: Target, token: str, count: int) -> tuple[float, int]:
    """KiB of server memory per idle authenticated session (INBOX selected), and how many were opened."""
    before = target.rss()
    held: list[imaplib.IMAP4] = []
    try:
        for _ in range(count):
            imap = _login(target, token)
            imap.select("INBOX")
            held.append(imap)
        time.sleep(0.5)  # a benchmark, not a test: let the server's allocator settle before reading RSS
        after = target.rss()
    finally:
        for imap in held:
            try:
                imap.logout()
            except (OSError, imaplib.IMAP4.error):
                imap.shutdown()
    return (after - before) / max(len(held), 1), len(held)


def fill_inbox(target: Target, token: str) -> None:
    """Make the INBOX hold exactly the 20 bench messages (APPEND over IMAP, the same on both servers)."""
    imap = _login(target, token)
    try:
        imap.select("INBOX")
        _, data = imap.search(None, "ALL")
        if data and data[0]:
            imap.store(b",".join(data[0].split()).decode(), "+FLAGS.SILENT", "(\\Deleted)")
            imap.expunge()
        for i in range(INBOX_MESSAGES):
            imap.append("INBOX", None, None, _message(f"bench inbox {i}"))
    finally:
        imap.logout()


def bench(target: Target, token: str, args: argparse.Namespace) -> dict[str, Any]:
    fill_inbox(target, token)
    # Memory first, while the server's heap holds no memory freed by the other loads.
    out: dict[str, Any] = {"idle KiB/session": idle_memory(target, token, args.idle)}
    out |= {
        "sessions c=10": run_load(lambda: imap_session(target, token), concurrency=10,
                                  seconds=args.seconds, max_units=args.max_sessions),
        "APPEND c=1": append_load(target, token, seconds=args.seconds, max_units=args.max_messages),
        "submission c=10": run_load(lambda: smtp_session(target, token, 5), concurrency=10,
                                    seconds=args.seconds, max_units=args.max_messages),
    }
    return out


# ---------------------------------------------------------------------------- the sandbox, out of process


def _rss_of(pids: Callable[[], list[int]]) -> Callable[[], int]:
    def read() -> int:
        total = 0
        for pid in pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total
    return read


def _group_pids(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                out.append(int(entry.name))
    return out


async def _serve(state_dir: Path) -> None:
    """Child process: run the sandbox, print where it listens and a token on stdout, stop on stdin EOF."""
    from mssante.sandbox.config import Lifetimes, default_config
    from mssante.sandbox.runner import Sandbox

    config = replace(default_config(), lifetimes=Lifetimes(access_token=3600))
    sandbox = Sandbox(config, state_dir)
    if "persist_mail" in Sandbox.__dataclass_fields__:  # absent from older engines (--engine-src)
        sandbox.persist_mail = True
    async with sandbox as sb:
        info = sb.info
        token = sb.psc.issue_tokens_for_tests(MARIE, CLIENT_ID)["access_token"]
        psc = info["psc"]
        print(json.dumps({"imap": info["imap"]["psc"]["port"], "smtp": info["smtp"]["psc"]["port"],
                          "ca": info["ca_bundle"], "token": token, "issuer": psc["issuer"],
                          "client_id": psc["client_id"], "client_secret": psc["client_secret"]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _start_sandbox(state_dir: Path, engine_src: Path | None) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = dict(os.environ)
    paths = [str(engine_src)] if engine_src else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(_ROOT / "src"), str(_ROOT)])
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(state_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=_ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise SystemExit("the sandbox child did not start")
    return proc, json.loads(line)


def main(args: argparse.Namespace) -> int:
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    from tests.interop.dovecot import DovecotServer, dovecot_available

    from mssante.sandbox.config import default_config
    from mssante.sandbox.pki import TestPKI

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fronts-") as tmp:
        state = Path(tmp) / "state"
        proc, info = _start_sandbox(state, args.engine_src)
        try:
            token = info["token"]
            sandbox = Target("sandbox", info["imap"], info["smtp"], info["ca"], _rss_of(lambda: [proc.pid]))
            results["sandbox"] = bench(sandbox, token, args)
            if args.sandbox_only:
                pass
            elif dovecot_available() is not None:
                print(f"dovecot: not measured ({dovecot_available()})")
            else:
                pki = TestPKI.load_or_create(state / "pki", server_names=default_config().server_names)
                server = DovecotServer(pki=pki, introspection_url=info["issuer"] + "/protocol/openid-connect/token/"
                                       "introspect", client_id=info["client_id"], client_secret=info["client_secret"],
                                       special_use=True, login_service_count=0)
                server.start()
                try:
                    master = server._proc
                    assert master is not None
                    dovecot = Target("dovecot", server.imap_port, server.submission_port, str(pki.ca_bundle_path),
                                     _rss_of(lambda: _group_pids(master.pid)))
                    results["dovecot"] = bench(dovecot, token, args)
                finally:
                    server.stop()
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)
    _report(results)
    return 0


def _report(results: dict[str, dict[str, Any]]) -> None:
    print(f"{'load':20} {'sandbox':36} {'dovecot':36} sandbox/dovecot")
    for load, res in results["sandbox"].items():
        other = results.get("dovecot", {}).get(load)
        if isinstance(res, tuple):
            theirs = f"{other[0]:8.0f} KiB  (n={other[1]})" if other else "not measured"
            ratio = f"{res[0] / other[0]:5.2f}" if other and other[0] else "  n/a"
            print(f"{load:20} {f'{res[0]:8.0f} KiB  (n={res[1]})':36} {theirs:36} {ratio}")
            continue
        ratio = f"{res.rate / other.rate:5.2f}" if other and other.rate else "  n/a"
        print(f"{load:20} {res.describe():36} {other.describe() if other else 'not measured':36} {ratio}")
    for target, loads in results.items():
        for load, res in loads.items():
            if isinstance(res, Result) and res.errors:
                print(f"  {target} {load}: first error: {res.errors[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration bound of each load")
    parser.add_argument("--max-sessions", type=int, default=400, help="count bound of the IMAP session load")
    parser.add_argument("--max-messages", type=int, default=600, help="count bound of each message load")
    parser.add_argument("--idle", type=int, default=300, help="idle authenticated sessions held for the memory load")
    parser.add_argument("--sandbox-only", action="store_true",
                        help="skip Dovecot (e.g. --idle 1000: Dovecot would fork 1000 imap processes)")
    parser.add_argument("--engine-src", type=Path, help="run the sandbox child from this source directory")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve:
        asyncio.run(_serve(parsed.serve))
        sys.exit(0)
    sys.exit(main(parsed))
