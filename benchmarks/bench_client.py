"""Benchmark: the client facade against baselines measured in the same run, over the loopback sandbox.

Run: ``.venv/bin/python benchmarks/bench_client.py [--messages 1000] [--envelopes 10000] [--bals 1000]``
(not a test; loopback only; each part is bounded). Parts (``--only send|fetch|watch`` to run one):

* **send**: ``--messages`` messages from a BAL APP to another through the sandbox submission front,
  with ``Mailbox.send`` (one reused session, operator files Sent) vs a plain aiosmtplib loop on one
  connection (target ratio ≥ 0.9), vs smtplib with one connection per message (``--smtplib-messages``);
* **fetch**: ``--envelopes`` messages delivered, then ``UID FETCH 1:* (UID ENVELOPE)`` with our IMAP
  driver vs imapclient (in a thread), plus ``Mailbox.list`` (summaries with BODYSTRUCTURE) for scale;
* **watch**: ``--bals`` BAL APP watched by one process (IDLE, one connection each): time to connect,
  resident memory growth, and notification latency (delivery → ``watch`` yields) over ``--probes``.

Client and servers share one process (and one event loop, except the sync baselines' threads), so the
absolute numbers include the server's cost; the ratios against the baselines are the figures to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import random
import resource
import smtplib
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosmtplib
import imapclient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mssante.client import ConnectionSettings, Mailbox, MailboxOptions, TrustSettings
from mssante.credentials import ClientCertificate
from mssante.discovery import DNSPythonResolver
from mssante.message import ComposeSettings, Draft, Sender, compose_message
from mssante.sandbox.config import BALConfig, default_config
from mssante.sandbox.runner import Sandbox
from mssante.trust import CRLCache
from mssante.wire.imap import FetchResponse, UidFetch

SENDER, RECIPIENT = "dpi.hopital@mss.sandbox.test", "sil.labo@mss.sandbox.test"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bal(sb: Sandbox, address: str) -> dict[str, Any]:
    return next(b for b in sb.info["bals"] if b["address"] == address)


def _ctx(sb: Sandbox, address: str) -> ssl.SSLContext:
    bal = _bal(sb, address)
    ctx = ssl.create_default_context(cafile=sb.info["ca_bundle"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(bal["cert"], bal["key"])
    return ctx


def _mailbox(sb: Sandbox, address: str, crls: CRLCache, cert_of: str | None = None, **opts: Any) -> Mailbox:
    bal = _bal(sb, cert_of or address)
    names = [sb.info[p][f]["host"] for p in ("imap", "smtp") for f in ("psc", "authcli")]
    connection = ConnectionSettings(resolve=dict.fromkeys(names, "127.0.0.1"))
    return Mailbox(address, kind="APP", credentials=ClientCertificate(cert=Path(bal["cert"]), key=Path(bal["key"])),
                   resolver=DNSPythonResolver(nameservers=[sb.info["dns"]["host"]], port=sb.info["dns"]["port"]),
                   tls=TrustSettings(ca_bundle=Path(sb.info["ca_bundle"]), crls=crls), product_reference="DEV000001",
                   options=MailboxOptions(connection=connection, **opts))


@contextlib.asynccontextmanager
async def _sandbox(bals: int = 0) -> AsyncIterator[Sandbox]:
    config = default_config()
    if bals:
        extra = tuple(BALConfig(address=f"app{i:05d}@{config.domain}", kind="APP", structure_id="1750000001")
                      for i in range(bals))
        config = dataclasses.replace(config, bals=config.bals + extra)
    with tempfile.TemporaryDirectory() as state:
        async with Sandbox(config, Path(state)) as sb:
            yield sb


# -- send ------------------------------------------------------------------------------------------------
async def bench_send(n: int, n_smtplib: int) -> None:
    async with _sandbox() as sb:
        composed = compose_message(Draft(sender=Sender(address=SENDER), to=(RECIPIENT,), subject="bench",
                                         text="Bonjour, compte rendu de test.\n" * 20),
                                   settings=ComposeSettings(product_reference="DEV000001"))
        data = composed.to_bytes()
        front = sb.info["smtp"]["authcli"]

        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=front["port"], start_tls=False)
        await smtp.connect()
        await smtp.starttls(tls_context=_ctx(sb, SENDER), server_hostname=front["host"])
        await smtp.ehlo()
        await smtp.auth_plain(SENDER, "AUTH_CLI")
        await smtp.sendmail(SENDER, [RECIPIENT], data)

        async def baseline_round(count: int) -> float:
            started = time.perf_counter()
            for _ in range(count):  # the same work as Mailbox.send: serialise the composed message, submit it
                await smtp.sendmail(composed.envelope_from, list(composed.recipients), composed.to_bytes())
            return count / (time.perf_counter() - started)

        async with _mailbox(sb, SENDER, CRLCache(), operator_saves_sent=True) as box:
            await box.send(composed)  # warm up: connect, STARTTLS, CRL, AUTH

            async def ours_round(count: int) -> float:
                started = time.perf_counter()
                for _ in range(count):
                    await box.send(composed)
                return count / (time.perf_counter() - started)

            # Interleaved rounds (the two share the CPU with the sandbox; the store grows as we go).
            rounds = 5
            ours_rates, base_rates = [], []
            for _ in range(rounds):
                ours_rates.append(await ours_round(n // rounds))
                base_rates.append(await baseline_round(n // rounds))
            ours, baseline = statistics.median(ours_rates), statistics.median(base_rates)
        await smtp.quit()

        def smtplib_loop() -> float:
            ctx = _ctx(sb, SENDER)
            ctx.check_hostname = False  # connected by IP (the CA is still verified)
            started = time.perf_counter()
            for _ in range(n_smtplib):
                with smtplib.SMTP("127.0.0.1", front["port"], timeout=30) as client:
                    client.starttls(context=ctx)
                    client.ehlo()
                    client.login(SENDER, "AUTH_CLI")  # AUTH PLAIN
                    client.sendmail(composed.envelope_from, list(composed.recipients), composed.to_bytes())
            return n_smtplib / (time.perf_counter() - started)

        per_connection = await asyncio.to_thread(smtplib_loop) if n_smtplib else float("nan")
    print(f"send: {n} messages of {len(data)} octets")
    print(f"  Mailbox.send (one session)      {ours:8.1f} msg/s   (median of rounds: "
          f"{', '.join(f'{r:.0f}' for r in ours_rates)})")
    print(f"  aiosmtplib loop (one session)   {baseline:8.1f} msg/s   (median of rounds: "
          f"{', '.join(f'{r:.0f}' for r in base_rates)})")
    print(f"  ratio ours/aiosmtplib = {ours / baseline:.2f} (target >= 0.9)")
    print(f"  smtplib, 1 connection/message   {per_connection:8.1f} msg/s   ratio ours/smtplib = "
          f"{ours / per_connection:.2f}  ({n_smtplib} messages)")


# -- fetch -----------------------------------------------------------------------------------------------
async def bench_fetch(n: int) -> None:
    async with _sandbox() as sb:
        started = time.perf_counter()
        for i in range(n):
            await sb.store.deliver(RECIPIENT, (f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: envelope {i}\r\n"
                                               f"Message-ID: <{i}@bench>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000"
                                               f"\r\n\r\nx\r\n").encode())
        print(f"fetch: {n} messages delivered in {time.perf_counter() - started:.1f} s")
        front = sb.info["imap"]["authcli"]

        def login() -> tuple[imapclient.IMAPClient, list[int]]:  # blocking: runs in a thread
            ctx = _ctx(sb, RECIPIENT)
            ctx.check_hostname = False  # imapclient connects by IP (the CA is still verified)
            client = imapclient.IMAPClient("127.0.0.1", port=front["port"], ssl=False, timeout=120)
            client.starttls(ctx)
            client.plain_login(RECIPIENT, "AUTH_CLI")
            client.select_folder("INBOX")
            return client, client.search("ALL")  # imapclient 4.1 cannot filter its answer to "1:*"

        client, uids = await asyncio.to_thread(login)

        def with_imapclient() -> float:
            started = time.perf_counter()
            result = client.fetch(uids, ["ENVELOPE"])
            elapsed = time.perf_counter() - started
            assert len(result) == n
            return elapsed

        box = _mailbox(sb, RECIPIENT, CRLCache())
        async with box:
            listed = await box.list()  # warm-up: the server parses and caches every message once
            assert len(listed) == n
            started = time.perf_counter()
            await box.list()
            facade = time.perf_counter() - started
            conn = await box.open_imap()
            await conn.select("INBOX")

            async def with_driver() -> float:
                started = time.perf_counter()
                _, events = await conn.command(UidFetch(uids=uids, items=("UID", "ENVELOPE")))
                elapsed = time.perf_counter() - started
                assert sum(isinstance(e, FetchResponse) for e in events) == n
                return elapsed

            ours_times, base_times = [], []
            for _ in range(3):  # interleaved: both share the CPU with the in-process server
                ours_times.append(await with_driver())
                base_times.append(await asyncio.to_thread(with_imapclient))
        await asyncio.to_thread(client.logout)
        ours, baseline = statistics.median(ours_times), statistics.median(base_times)
    print(f"  our driver, UID FETCH (ENVELOPE) {n / ours:9.0f} env/s ({ours:.2f} s)")
    print(f"  imapclient, FETCH (ENVELOPE)     {n / baseline:9.0f} env/s ({baseline:.2f} s)   "
          f"ratio ours/imapclient = {baseline / ours:.2f}")
    print(f"  Mailbox.list (summaries + BODYSTRUCTURE) {n / facade:9.0f} msg/s ({facade:.2f} s)")


# -- watch -----------------------------------------------------------------------------------------------
async def bench_watch(n: int, probes: int) -> None:
    async with _sandbox(bals=n) as sb:
        addresses = [f"app{i:05d}@{sb.config.domain}" for i in range(n)]
        crls = CRLCache()
        arrivals: dict[str, asyncio.Queue[float]] = {a: asyncio.Queue() for a in addresses}
        connected = 0
        target = 0
        ready, batch_done = asyncio.Event(), asyncio.Event()
        started = time.perf_counter()

        def on_event(event: Any) -> None:
            nonlocal connected
            if event.kind == "connected":
                connected += 1
                if connected % 100 == 0:
                    print(f"  ... {connected} connected after {time.perf_counter() - started:.1f} s", flush=True)
                if connected >= target:
                    batch_done.set()
                if connected == n:
                    ready.set()

        async def run(box: Mailbox) -> None:
            async with contextlib.aclosing(box.watch()) as messages:
                async for _ in messages:
                    arrivals[box.address].put_nowait(time.perf_counter())

        rss_before = _rss_mib()
        boxes = [_mailbox(sb, a, crls, cert_of=SENDER) for a in addresses]
        for box in boxes:
            box.add_listener(on_event)
        started = time.perf_counter()
        tasks = []
        batch = 100  # ramp up: 1,000 simultaneous TLS handshakes in one process time out and retry in a herd
        for i in range(0, n, batch):
            target = min(n, i + batch)
            batch_done.clear()
            tasks += [asyncio.create_task(run(box)) for box in boxes[i:target]]
            await asyncio.wait_for(batch_done.wait(), 300)
        await asyncio.wait_for(ready.wait(), 600)
        await asyncio.sleep(1.0)  # let the last ones reach IDLE
        setup = time.perf_counter() - started
        rss_after = _rss_mib()
        latencies = []
        for i in range(probes):
            address = random.choice(addresses)
            sent = time.perf_counter()
            await sb.store.deliver(address, f"From: {SENDER}\r\nSubject: probe {i}\r\n\r\nx\r\n".encode())
            latencies.append(await asyncio.wait_for(arrivals[address].get(), 30) - sent)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(box.aclose() for box in boxes))
    latencies.sort()
    print(f"watch: {n} BALs watched (IDLE) by one process, server in the same process")
    print(f"  all connected and idling in {setup:.1f} s ({n / setup:.0f} sessions/s)")
    print(f"  max RSS growth {rss_after - rss_before:.0f} MiB (server + client), "
          f"{(rss_after - rss_before) * 1024 / n:.0f} KiB per BAL")
    print(f"  notification latency over {probes} probes: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--smtplib-messages", type=int, default=200)
    parser.add_argument("--envelopes", type=int, default=10_000)
    parser.add_argument("--bals", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--only", choices=["send", "fetch", "watch"])
    args = parser.parse_args()
    if args.only in (None, "send"):
        await bench_send(args.messages, args.smtplib_messages)
    if args.only in (None, "fetch"):
        await bench_fetch(args.envelopes)
    if args.only in (None, "watch"):
        await bench_watch(args.bals, args.probes)


if __name__ == "__main__":
    asyncio.run(main())
