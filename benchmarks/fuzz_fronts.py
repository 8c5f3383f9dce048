"""Fuzzing the sandbox IMAP and SMTP fronts over loopback (issue 13): read-only use of the sandbox.

Run: ``.venv/bin/python benchmarks/fuzz_fronts.py [--scale 1] [--seed 13] [--only imap,smtp]`` (not a test;
loopback only; the default scale takes well under a minute).

Each front runs in this process on 127.0.0.1 with a fresh test PKI and mock PSC (the fixtures of
``tests/sandbox``). A client session logs in (IMAP: STARTTLS + AUTHENTICATE XOAUTH2 with a PSC token,
mailbox selected; SMTP: STARTTLS + EHLO + AUTH XOAUTH2), then sends mutated realistic commands, several
per write at times, and reads the answers. A crash is a log record of level ERROR or with a traceback
from the front (``mssante`` or ``asyncio`` loggers), a session whose answer does not come within
``--wait`` seconds (a hang), or a front that no longer greets a new connection. Crashes are the
other fronts' owners' to fix: this script reports them (``--save DIR`` keeps the inputs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import random
import resource
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from benchmarks.fuzz import INTERESTING, mutate, print_crashes  # noqa: E402

BASE_SESSIONS = {"imap": 500, "smtp": 500}
COMMANDS_PER_SESSION = 40

IMAP_COMMANDS = [
    b"NOOP", b"CAPABILITY", b"SELECT INBOX", b"EXAMINE INBOX", b'LIST "" "*"', b'LIST (SPECIAL-USE) "" "*"',
    b"STATUS INBOX (MESSAGES UIDNEXT UNSEEN)", b"FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)",
    b"UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM X-MSS-CODECDA)])", b"FETCH 1 (BODY[]<0.100>)",
    b"FETCH 1 BINARY.PEEK[1]", b"UID SEARCH UNSEEN", b"SEARCH OR (FROM a) (NOT SUBJECT b) SINCE 1-Jan-2024",
    b"UID STORE 1 +FLAGS (\\Seen $MDNSent)", b"UID COPY 1 Sent", b"UID MOVE 1 Trash", b"EXPUNGE", b"UID EXPUNGE 1",
    b"ENABLE QRESYNC", b'ID ("name" "fuzz")', b"NAMESPACE", b"IDLE\r\nDONE", b"CHECK", b"CLOSE",
    b'APPEND Sent (\\Seen) " 2-May-2024 09:30:00 +0200" {31}\r\nSubject: x\r\nFrom: a@b.fr\r\n\r\nhi\r\n',
    b'CREATE "Dossier/Sous"', b'RENAME "Dossier/Sous" "Autre"', b'DELETE "Autre"',
    b"SEARCH CHARSET UTF-8 TEXT {3+}\r\nabc",
]  # fmt: skip
IMAP_TOKENS = [b" (", b")", b" {5+}\r\nabcde", b" {2}\r\n", b" 1:*", b" *", b" NIL", b' "x"', b" BODY[", b"]", b"\r\n"]
SMTP_COMMANDS = [
    b"NOOP", b"RSET", b"EHLO lps.example", b"HELO lps.example", b"MAIL FROM:<marie.curie@mss.sandbox.test>",
    b"MAIL FROM:<marie.curie@mss.sandbox.test> SIZE=100 RET=HDRS ENVID=abc BODY=8BITMIME",
    b"RCPT TO:<279035121518989@patient.mssante.fr>",
    b"RCPT TO:<a@b.mssante.fr> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
    b"DATA\r\nSubject: x\r\nFrom: <marie.curie@mss.sandbox.test>\r\n\r\nhi\r\n.", b"VRFY a", b"EXPN a", b"HELP",
    b"BDAT 5 LAST\r\nhello", b"STARTTLS", b"AUTH PLAIN AGFAYg==", b"QUIT",
]  # fmt: skip
SMTP_TOKENS = [b":<", b">", b" SIZE=", b" NOTIFY=", b"\r\n", b".", b"\r\n.\r\n", b" ", b"="]


@dataclass
class FrontResult:
    front: str
    sessions: int = 0
    commands: int = 0
    crashes: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


class Tracebacks(logging.Handler):
    """Collects ERROR records and records carrying a traceback, from every logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


async def _readline(reader: asyncio.StreamReader, wait: float) -> bytes:
    return await asyncio.wait_for(reader.readline(), wait)


class Session:
    """One raw client connection: write octets, read answers up to a tagged/final line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: float) -> None:
        self.reader, self.writer, self.wait = reader, writer, wait

    async def until(self, done: Callable[[bytes], bool]) -> list[bytes]:
        lines = []
        while True:
            line = await _readline(self.reader, self.wait)
            lines.append(line)
            if not line or done(line):
                return lines

    async def starttls(self, context: ssl.SSLContext) -> None:
        await self.writer.start_tls(context, server_hostname="127.0.0.1")

    def close(self) -> None:
        self.writer.transport.abort()


async def imap_session(env: object, wait: float) -> Session:
    from tests.sandbox._imap_support import PER, b64, xoauth2

    reader, writer = await asyncio.open_connection("127.0.0.1", env.psc_port)  # type: ignore[attr-defined]
    session = Session(reader, writer, wait)
    await session.until(lambda line: True)  # greeting
    writer.write(b"s1 STARTTLS\r\n")
    await session.until(lambda line: line.startswith(b"s1 "))
    await session.starttls(env.client_context())  # type: ignore[attr-defined]
    token = env.token()  # type: ignore[attr-defined]
    writer.write(b"a0 AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, token)).encode() + b"\r\na1 SELECT INBOX\r\n")
    lines = await session.until(lambda line: line.startswith(b"a1 "))
    if not any(line.startswith(b"a0 OK") for line in lines) or not lines[-1].startswith(b"a1 OK"):
        raise RuntimeError(f"IMAP login failed: {lines[-2:]!r}")
    return session


async def smtp_session(env: object, wait: float) -> Session:
    from tests.sandbox._smtp_env import PER, b64, xoauth2

    reader, writer = await asyncio.open_connection("127.0.0.1", env.port)  # type: ignore[attr-defined]
    session = Session(reader, writer, wait)
    final = lambda line: line[3:4] != b"-"  # noqa: E731 - an SMTP reply ends with "NNN "
    await session.until(final)
    writer.write(b"EHLO fuzz\r\n")
    await session.until(final)
    writer.write(b"STARTTLS\r\n")
    await session.until(final)
    await session.starttls(env.material.client_context())  # type: ignore[attr-defined]
    writer.write(b"EHLO fuzz\r\n")
    await session.until(final)
    writer.write(b"AUTH XOAUTH2\r\n")  # the initial response is longer than a command line may be
    await session.until(final)
    writer.write(b64(xoauth2(PER, env.material.token())).encode() + b"\r\n")  # type: ignore[attr-defined]
    reply = await session.until(final)
    if not reply[-1].startswith(b"235"):
        raise RuntimeError(f"SMTP login failed: {reply[-1]!r}")
    return session


async def fuzz_front(
    name: str, env: object, opener: Callable[[object, float], Awaitable[Session]], rng: random.Random,
    sessions: int, wait: float, save: str | None, log: Tracebacks,
) -> FrontResult:  # fmt: skip
    result = FrontResult(front=name)
    started = time.monotonic()
    corpus, tokens = (IMAP_COMMANDS, IMAP_TOKENS) if name == "imap" else (SMTP_COMMANDS, SMTP_TOKENS)
    for index in range(sessions):
        session = await opener(env, wait)
        result.sessions += 1
        try:
            for number in range(COMMANDS_PER_SESSION):
                batch = []
                for _ in range(rng.choice((1, 1, 1, 2, 5, 30))):  # several commands in one write, at times
                    command = mutate(rng, rng.choice(corpus), tokens + INTERESTING, 64 * 1024)
                    tag = b"f%d.%d " % (index, number) if name == "imap" else b""
                    batch.append(tag + command.replace(b"\n", b" ").replace(b"\r", b" ") + b"\r\n")
                data = b"".join(batch)
                before = len(log.records)
                session.writer.write(data)
                result.commands += len(batch)
                try:
                    await session.writer.drain()
                    # Any answer line proves the front is alive; a closed session ends this one.
                    line = await _readline(session.reader, wait)
                except TimeoutError:
                    _record(result, name, "Hang", f"no answer in {wait} s", data, save)
                    break
                except (OSError, ssl.SSLError):
                    break
                if len(log.records) > before:
                    record = log.records[before]
                    where = f"{record.pathname}:{record.lineno}" if record.pathname else record.name
                    _record(result, name, "Traceback", f"{record.getMessage()[:160]} at {where}", data, save)
                if not line:
                    break
        finally:
            session.close()
        await asyncio.sleep(0)  # let the front notice the closed connection
    try:  # the front must still serve a fresh connection
        (await opener(env, wait)).close()
    except Exception as exc:
        _record(result, name, "Stopped", f"{type(exc).__name__}: {exc}", b"", save)
    result.seconds = time.monotonic() - started
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _record(result: FrontResult, name: str, kind: str, detail: str, data: bytes, save: str | None) -> None:
    digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()[:12]
    result.crashes.append({"kind": kind, "detail": detail, "input": digest, "head": repr(data[:160])})
    if save:
        Path(save).mkdir(parents=True, exist_ok=True)
        (Path(save) / f"front-{name}-{kind}-{digest}.bin").write_bytes(data)


async def start_imap(state: Path) -> tuple[object, Callable[[], Awaitable[None]]]:
    """Both IMAP fronts of tests/sandbox with one message in Marie's INBOX."""
    from tests.sandbox._imap_support import PER, _make_world, message, start_env

    env = await start_env(_make_world(state))
    await env.store.deliver(PER, message("fuzz"))

    async def close() -> None:
        await env.psc_front.aclose()
        await env.authcli_front.aclose()

    return env, close


async def start_smtp(state: Path) -> tuple[object, Callable[[], Awaitable[None]]]:
    """The PSC submission front of tests/sandbox."""
    from tests.sandbox._smtp_env import build_material, start_env

    env = await start_env(build_material(state), "psc")
    return env, env.front.aclose


FRONTS = {"imap": (start_imap, imap_session), "smtp": (start_smtp, smtp_session)}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--only", default="", help="imap,smtp")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds an answer may take (default 10)")
    parser.add_argument("--save", default=None)
    args = parser.parse_args()
    log = Tracebacks()
    logging.getLogger().addHandler(log)
    logging.getLogger().setLevel(logging.INFO)
    results: list[FrontResult] = []
    with tempfile.TemporaryDirectory(prefix="fuzz-fronts-") as tmp:
        for name, (start, opener) in FRONTS.items():
            if args.only and name not in args.only.split(","):
                continue
            env, close = await start(Path(tmp) / name)
            try:
                rng = random.Random(f"{args.seed}:{name}")
                count = max(1, int(BASE_SESSIONS[name] * args.scale))
                results.append(await fuzz_front(name, env, opener, rng, count, args.wait, args.save, log))
            finally:
                await close()
    print(f"{'front':<6} {'sessions':>8} {'commands':>8} {'crashes':>7} {'peak MB':>8} {'s':>6}")
    for r in results:
        crashes = len(r.crashes)
        print(f"{r.front:<6} {r.sessions:>8} {r.commands:>8} {crashes:>7} {r.peak_rss_mb:>8.1f} {r.seconds:>6.1f}")
    for r in results:
        print_crashes(r.front, r.crashes)
    summary = {
        "bench": "fuzz_fronts",
        "seed": args.seed,
        "scale": args.scale,
        "fronts": {r.front: {"sessions": r.sessions, "commands": r.commands, "crashes": len(r.crashes),
                             "peak_rss_mb": round(r.peak_rss_mb, 1), "seconds": round(r.seconds, 1)} for r in results},
        "failures": sum(len(r.crashes) for r in results),
    }  # fmt: skip
    print(json.dumps(summary))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
