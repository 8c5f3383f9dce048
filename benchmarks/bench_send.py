"""Benchmark: ``Mailbox.send`` against an aiosmtplib loop on one connection, the servers in other processes.

Run: ``.venv/bin/python benchmarks/bench_send.py [--messages 1000] [--profile]`` (loopback only, bounded).

* **send.sandbox**: messages from a BAL APP to another through the sandbox's submission front
  (``mssante sandbox up`` in a child process): ``Mailbox.send`` on its reused session (the
  operator files Sent, as the sandbox does) against aiosmtplib's ``sendmail`` on one
  authenticated connection, interleaved rounds, medians. Goal ≥ 1.0 (issue 14 goal 1).
* **send.pipelining**: the same against Dovecot's submission service, which offers PIPELINING
  (RFC 2920). Goal ≥ 1.3 once MAIL/RCPT/DATA are pipelined.

``--profile`` prints the cProfile of our side (the top functions by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import time
from typing import Any

import aiosmtplib
from _client_world import (
    RECIPIENT,
    SENDER,
    bal,
    client_context,
    dovecot,
    dovecot_mailbox,
    interleaved,
    profile_text,
    sandbox_mailbox,
    sandbox_process,
)
from _rows import Row

from mssante.client import Mailbox
from mssante.message import ComposeSettings, Draft, Sender, compose_message


def _composed() -> Any:
    return compose_message(Draft(sender=Sender(address=SENDER), to=(RECIPIENT,), subject="bench",
                                 text="Bonjour, compte rendu de test.\n" * 20),
                           settings=ComposeSettings(product_reference="DEV000001"))


async def _baseline_client(info: dict[str, Any], host: str, port: int) -> aiosmtplib.SMTP:
    entry = bal(info, SENDER)
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await smtp.connect()
    await smtp.starttls(tls_context=client_context(info["ca_bundle"], entry["cert"], entry["key"]),
                        server_hostname=host)
    await smtp.ehlo()
    await smtp.auth_plain(SENDER, "AUTH_CLI")
    return smtp


async def _compare(box: Mailbox, smtp: aiosmtplib.SMTP, n: int, rounds: int,
                   profile: cProfile.Profile | None) -> dict[str, Any]:
    composed = _composed()
    await box.send(composed)  # warm up: discovery, connect, STARTTLS, CRL, AUTH
    await smtp.sendmail(composed.envelope_from, list(composed.recipients), composed.to_bytes())
    per_round = max(1, n // rounds)

    async def ours() -> float:
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        for _ in range(per_round):
            await box.send(composed)
        rate = per_round / (time.perf_counter() - started)
        if profile is not None:
            profile.disable()
        return rate

    async def baseline() -> float:
        started = time.perf_counter()
        for _ in range(per_round):  # the same work as Mailbox.send: serialise the composed message, submit it
            await smtp.sendmail(composed.envelope_from, list(composed.recipients), composed.to_bytes())
        return per_round / (time.perf_counter() - started)

    mine, theirs, all_mine, all_theirs = await interleaved(rounds, ours, baseline)
    # Each round's ratio to the baseline round beside it (same load), then their median: steadier
    # than the ratio of the medians when other work on the machine comes and goes.
    paired = statistics.median(a / b for a, b in zip(all_mine, all_theirs, strict=True))
    return {"ours": mine, "baseline": theirs, "rounds_ours": all_mine, "rounds_baseline": all_theirs,
            "paired_ratio": round(paired, 2), "octets": len(composed.to_bytes())}


async def _on_sandbox(info: dict[str, Any], n: int, rounds: int, profile: cProfile.Profile | None) -> dict[str, Any]:
    front = info["smtp"]["authcli"]
    smtp = await _baseline_client(info, front["host"], front["port"])
    async with sandbox_mailbox(info, SENDER, operator_saves_sent=True) as box:
        result = await _compare(box, smtp, n, rounds, profile)
    await smtp.quit()
    return result


async def _on_dovecot(info: dict[str, Any], server: Any, n: int, rounds: int) -> dict[str, Any]:
    smtp = await _baseline_client(info, info["smtp"]["authcli"]["host"], server.submission_port)
    async with dovecot_mailbox(info, server, SENDER, operator_saves_sent=True) as box:
        result = await _compare(box, smtp, n, rounds, None)
        sessions = getattr(box, "_sessions", None)  # absent from older clients (MSSANTE_CLIENT_SRC)
        session = sessions._smtp if sessions is not None else None
        result["server_pipelining"] = session is not None and session._smtp.supports_extension("pipelining")
    await smtp.quit()
    return result


def measure(n: int, *, rounds: int = 5, dovecot_too: bool = True, profile: bool = False) -> dict[str, Any]:
    """Both comparisons in one run; the figures (and the profile text when asked)."""
    prof = cProfile.Profile() if profile else None
    out: dict[str, Any] = {}
    with sandbox_process() as info:
        out["sandbox"] = asyncio.run(_on_sandbox(info, n, rounds, prof))
        if dovecot_too:
            with dovecot(info, deliver=False) as server:
                if server is not None:
                    out["dovecot"] = asyncio.run(_on_dovecot(info, server, n, rounds))
    if prof is not None:
        out["profile"] = profile_text(prof)
    return out


def report_rows(scale: float = 1.0) -> list[Row]:
    """The issue 14 goal 1 rows: send.sandbox (≥ 1.0) and send.pipelining (≥ 1.3)."""
    n = max(50, round(500 * scale))
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
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-dovecot", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    r = measure(args.messages, rounds=args.rounds, dovecot_too=not args.no_dovecot, profile=args.profile)
    for name, what in (("sandbox", "sandbox submission"), ("dovecot", "Dovecot submission (PIPELINING)")):
        if name in r:
            f = r[name]
            print(f"send on {what}: Mailbox.send {f['ours']:.0f} msg/s, aiosmtplib {f['baseline']:.0f} msg/s, "
                  f"ratio {f['ours'] / f['baseline']:.2f}, paired {f['paired_ratio']:.2f}  "
                  f"(rounds ours {[round(x) for x in f['rounds_ours']]}, "
                  f"aiosmtplib {[round(x) for x in f['rounds_baseline']]})")
    if "profile" in r:
        print(r["profile"])


if __name__ == "__main__":
    main()
