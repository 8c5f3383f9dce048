"""Benchmark: fetching envelopes and whole messages from Dovecot, our IMAP driver against imapclient.

Run: ``.venv/bin/python benchmarks/bench_fetch.py [--envelopes 2000] [--bodies 8] [--profile]``
(loopback only, bounded; Dovecot 2.3 from ``tests/interop`` in its own processes, the sandbox's
PKI and mock PSC in a child process).

* **fetch.envelopes**: ``UID FETCH 1:* (UID ENVELOPE)`` of ``--envelopes`` messages with our driver
  (:class:`~mssante.client.IMAPConnection`, the connection a :class:`~mssante.client.Mailbox`
  opens) against imapclient's ``fetch(uids, ["ENVELOPE"])`` (run in a thread), interleaved
  rounds, medians. Goal ≥ 2.0 (issue 14 goal 2; the issue's 10,000 scaled down, same ratio).
* **fetch.bodies**: ``Mailbox.fetch`` of ``--bodies`` messages of 1 MB each (streamed literals)
  against imapclient's ``BODY.PEEK[]``. Goal ≥ 1.5.

``--profile`` prints the cProfile of our side for the envelopes (top functions by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import time
from typing import Any

import imapclient
from _client_world import (
    RECIPIENT,
    SENDER,
    bal,
    client_context,
    dovecot,
    dovecot_mailbox,
    interleaved,
    profile_text,
    sandbox_process,
)
from _rows import Row

from mssante.wire.imap import FetchResponse, UidFetch


def _imapclient(info: dict[str, Any], port: int, folder: str) -> imapclient.IMAPClient:
    entry = bal(info, RECIPIENT)
    ctx = client_context(info["ca_bundle"], entry["cert"], entry["key"])
    ctx.check_hostname = False  # imapclient connects by IP (the CA is still verified)
    client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=120)
    client.starttls(ctx)
    client.plain_login(RECIPIENT, "AUTH_CLI")
    client.select_folder(folder)
    return client


def _fill(info: dict[str, Any], port: int, envelopes: int, bodies: int) -> None:
    client = _imapclient(info, port, "INBOX")
    for folder in ("Envelopes", "Bodies"):
        if not client.folder_exists(folder):
            client.create_folder(folder)
    for i in range(envelopes):
        client.append("Envelopes", (f"From: Dr X <{SENDER}>\r\nTo: {RECIPIENT}\r\nSubject: envelope {i}\r\n"
                                    f"Message-ID: <{i}@bench>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nx\r\n"
                                    ).encode())
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"  # 74 octets
    body = line * (1024 * 1024 // len(line))
    for i in range(bodies):
        client.append("Bodies", f"From: {SENDER}\r\nSubject: body {i}\r\n\r\n".encode() + body)
    client.logout()


async def _compare(info: dict[str, Any], server: Any, envelopes: int, bodies: int, rounds: int,
                   profile: cProfile.Profile | None) -> dict[str, Any]:
    await asyncio.to_thread(_fill, info, server.imap_port, envelopes, bodies)
    env_client = await asyncio.to_thread(_imapclient, info, server.imap_port, "Envelopes")
    env_uids = await asyncio.to_thread(env_client.search, "ALL")
    body_client = await asyncio.to_thread(_imapclient, info, server.imap_port, "Bodies")
    body_uids = await asyncio.to_thread(body_client.search, "ALL")
    out: dict[str, Any] = {}
    async with dovecot_mailbox(info, server, RECIPIENT) as box:
        conn = await box.open_imap()
        await conn.select("Envelopes")

        async def ours_env() -> float:
            if profile is not None:
                profile.enable()
            started = time.perf_counter()
            _, events = await conn.command(UidFetch(uids=env_uids, items=("UID", "ENVELOPE")))
            elapsed = time.perf_counter() - started
            if profile is not None:
                profile.disable()
            assert sum(isinstance(e, FetchResponse) for e in events) == envelopes
            return envelopes / elapsed

        def theirs_env_sync() -> float:
            started = time.perf_counter()
            result = env_client.fetch(env_uids, ["ENVELOPE"])
            elapsed = time.perf_counter() - started
            assert len(result) == envelopes
            return envelopes / elapsed

        async def theirs_env() -> float:
            return await asyncio.to_thread(theirs_env_sync)

        await ours_env(), await theirs_env()  # warm up: Dovecot caches what it parsed
        out["envelopes"] = await interleaved(rounds, ours_env, theirs_env)

        async def ours_body() -> float:
            started = time.perf_counter()
            total = 0
            for uid in body_uids:
                total += len((await box.fetch(uid, "Bodies")).raw)
            return total / (time.perf_counter() - started) / 1e6

        def theirs_body_sync() -> float:
            started = time.perf_counter()
            total = 0
            for uid in body_uids:
                total += len(body_client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"])
            return total / (time.perf_counter() - started) / 1e6

        async def theirs_body() -> float:
            return await asyncio.to_thread(theirs_body_sync)

        await ours_body(), await theirs_body()
        out["bodies"] = await interleaved(rounds, ours_body, theirs_body)
    for client in (env_client, body_client):
        await asyncio.to_thread(client.logout)
    return out


def measure(envelopes: int, bodies: int, *, rounds: int = 3, profile: bool = False) -> dict[str, Any] | None:
    """Both comparisons in one run on one Dovecot; None when Dovecot is not installed."""
    prof = cProfile.Profile() if profile else None
    with sandbox_process() as info, dovecot(info) as server:
        if server is None:
            return None
        out = asyncio.run(_compare(info, server, envelopes, bodies, rounds, prof))
    if prof is not None:
        out["profile"] = profile_text(prof)
    return out


def report_rows(scale: float = 1.0) -> list[Row]:
    """The issue 14 goal 2 rows: fetch.envelopes (≥ 2.0) and fetch.bodies (≥ 1.5)."""
    envelopes, bodies = max(200, round(2000 * scale)), max(3, round(8 * scale))
    r = measure(envelopes, bodies)
    if r is None:
        return []
    env, body = r["envelopes"], r["bodies"]
    return [
        Row(key="fetch.envelopes", what=f"fetch {envelopes} envelopes (Dovecot)", figure=round(env[0]),
            unit="env/s", baseline_name="imapclient", baseline=round(env[1]), goal=2.0,
            extra={"rounds_ours": env[2], "rounds_baseline": env[3]}),
        Row(key="fetch.bodies", what=f"fetch {bodies} messages of 1 MB (Dovecot)", figure=round(body[0], 1),
            unit="MB/s", baseline_name="imapclient", baseline=round(body[1], 1), goal=1.5,
            extra={"rounds_ours": body[2], "rounds_baseline": body[3]}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=2000)
    parser.add_argument("--bodies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    r = measure(args.envelopes, args.bodies, rounds=args.rounds, profile=args.profile)
    if r is None:
        print("fetch: not measured (Dovecot is not installed)")
        return
    for key, unit in (("envelopes", "env/s"), ("bodies", "MB/s")):
        ours, theirs, mine, other = r[key]
        print(f"fetch {key}: ours {ours:.1f} {unit}, imapclient {theirs:.1f} {unit}, ratio {ours / theirs:.2f} "
              f"(rounds {[round(x, 1) for x in mine]} vs {[round(x, 1) for x in other]})")
    if "profile" in r:
        print(r["profile"])


if __name__ == "__main__":
    main()
