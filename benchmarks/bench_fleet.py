"""Benchmark: a fleet of worker processes on Redis against ``Mailbox.watch`` in one process, same run.

Run: ``.venv/bin/python benchmarks/bench_fleet.py [--scale 0.1] [--bals N] [--workers 4] [--kills 3]
[--messages N]`` (not a test; loopback only, bounded). ``--scale 1`` is the issue's 10,000 BALs; the default
0.1 watches 1,000.

The servers run in other processes than the workers:

* **Dovecot 2.3, rootless** (``tests/interop/dovecot.py``), holding the ORG BALs: SASL XOAUTH2 with the mock
  PSC's access tokens validated *locally* (oauth2 passdb, ``introspection_mode = local``, the mock PSC's
  public key in a ``local_validation_key_dict``), so no HTTP round trip per login and the server is not the
  bottleneck; ``service imap`` serves many connections per process.
* **the sandbox** (this process) for a slice of BAL APP on its AUTH_CLI front (ORG AUTH_CLI certificate +
  SASL PLAIN), and the mock PSC the tokens come from.
* **Redis** (Debian's ``redis-server``) and ``--workers`` worker processes (:class:`mssante.fleet.Worker`
  with the standard connector; ORG BALs on one PSC session per worker, shared by all its BALs).

Messages are delivered at random BALs (LMTP into Dovecot, the sandbox store for APP) at a steady ``--rate``
for the whole run, while a worker is killed with SIGKILL ``--kills`` times, evenly spaced; after each takeover a
replacement joins and the others move BALs to it (by handover when the workers do make-before-break). Reported,
fleet and baseline side by side:

* every delivered message published exactly once (``missed``, ``duplicated``);
* ``takeover_s_max``: from SIGKILL until every BAL of the dead worker is leased by another one (``takeovers_s``
  each kill; ``watched_again_s``: until each has logged in again, its catch-up scan under way;
  ``reconnected_s_p50``/``_max``: per BAL of a dead worker, from the kill to its new session). The workers'
  fast failure detector (``--presence-grace``, 1 s; 0: lease TTL only) notices a dead process by its presence
  connection to Redis, closed by the kernel at the kill;
* ``p50_ms``/``p99_ms``: from delivery to the event read from the stream (to the message yielded by ``watch``
  for the baseline), every message. Each message is also in one class:

  - ``*_outage``: delivered to a dead worker's BAL before its new session: nobody could see it, it waits for the
    detector, the connect limiter and a login. ``outage_share_pct`` is the BAL-seconds left unwatched by the
    kills over BALs x delivery seconds: the share of messages expected there. **The all-messages p99 can be
    under 1 s only when that share is well under 1 %**: it is set by how often workers die and by the operator's
    connect limit (a dead worker's N BALs need N / ``--operator-rate`` seconds to log in again), not by the
    fleet's code;
  - ``*_moved`` (``*_handover`` for a join's): to a BAL moving otherwise between its delivery and publication,
    or found by the catch-up scan of a new session;
  - ``*_steady``: notified over an established IDLE session;

  per step, in the ``breakdown`` (delivery → IDLE wake → summary → XADD → read), from each message's timings in
  the workers;
* ``rss_mib_per_1000_bals``: RSS growth of a worker from empty to holding its BALs, per 1,000 BALs;
  ``rss_mib_per_1000_bals_marginal``: the same for the second half of the BALs (started after the first half,
  whose growth also paid the one-time costs): what one more BAL costs;
* ``max_connects_per_s``: handshakes started in any one-second window (as the clients' limiters let them
  start), against ``connect_limit_per_s`` (the fleet-wide operator bucket: rate + burst in one second at most);
  ``max_logins_per_s``: logins the servers completed in one calendar second (they bunch under load);
* the distribution of BALs over the workers after the start, each kill and each join.

Ends with one JSON line. ``report_rows(scale)`` runs a small version (200 BALs, 2 workers, 1 kill).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._rows import Row
from tests.fleet._support import STRUCTURE, certificates, raw
from tests.fleet.conftest import RedisServer
from tests.interop.dovecot import DovecotServer

from mssante import testing
from mssante.client import ConnectionSettings, ConnectLimiter, Mailbox, MailboxOptions, TrustSettings, WatchState
from mssante.discovery import DNSPythonResolver, ManualServers
from mssante.fleet import BALSpec, FleetStore, MailboxConnector, Worker, WorkerSettings
from mssante.sandbox.config import BALConfig, SandboxConfig, default_config

LEASE_TTL = 3.0  # renewed every second; --lease-ttl
MARIE = "899700000001"  # holds every ORG BAL of the benchmark
ORG_REF = "session-marie"  # the ORG BALs' reference: one PSC session per worker


# -- Dovecot with local JWT validation ---------------------------------------------------------------

_LOCAL_OAUTH2 = """\
# Local validation of the mock PSC's RS256 access tokens (Dovecot >= 2.3.11): the public key is read from
# the dict at <azp>/<alg>/<kid>; exp, nbf and iat are checked. No introspection request.
introspection_mode = local
local_validation_key_dict = fs:posix:prefix={keys}/
username_attribute = preferred_username
username_format = bal-holder-checked-by-next-passdb
pass_attrs = mss_holder=%{{oauth2:preferred_username}}
debug = no
"""

_TUNING = """
# bench_fleet.py: many IDLE sessions in a few imap processes (client_limit). One process per session would
# exceed fs.inotify.max_user_instances (128 by default, one inotify instance per process): the processes
# beyond it get no inotify ("Inotify instance limit ... exceeded, disabling") and see deliveries only when
# they poll, every mailbox_idle_check_interval (30 s by default): IDLE notifications must come from inotify.
# (imap-hibernate lost IDLE notifications here.) About 300 KB of address space per session: no vsz_limit
# (256 MB by default: "Out of memory" past ~800 sessions in one process).
default_client_limit = 30000
service imap {{
  service_count = 0
  vsz_limit = 0
  client_limit = {client_limit}
  process_limit = {imap_processes}
}}
service imap-login {{
  process_min_avail = 4
  # each login process keeps the TLS of its sessions (it proxies them to imap): ~2,000 sessions passed the
  # default 256 MB at 10,000 BALs ("OpenSSL malloc() failed")
  vsz_limit = 0
}}
"""

#: IMAP sessions per Dovecot imap process (its inotify instance serves them all).
IMAP_CLIENT_LIMIT = 500


class LocalJWTDovecot(DovecotServer):
    """The interop Dovecot, its oauth2 passdb validating the mock PSC's tokens locally."""

    def __init__(self, *, public_pem: str, azp: str, kid: str, bals: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.public_pem, self.azp, self.kid, self.bals = public_pem, azp, kid, bals

    def _write_files(self) -> None:
        super()._write_files()
        etc = self.work_dir / "etc"
        key_dir = etc / "keys" / self.azp / "RS256"
        key_dir.mkdir(parents=True, exist_ok=True)
        (key_dir / self.kid).write_text(self.public_pem)
        (etc / "oauth2.conf.ext").write_text(_LOCAL_OAUTH2.format(keys=etc / "keys"))
        with (etc / "dovecot.conf").open("a") as conf:
            # two sessions per BAL at most (the watch, the X-MSS fetches), room for the sessions still closing
            processes = math.ceil(3 * self.bals / IMAP_CLIENT_LIMIT) + 2
            conf.write(_TUNING.format(client_limit=IMAP_CLIENT_LIMIT, imap_processes=processes))
        self._chown_tree()

    def logged_in(self, since: float) -> set[str]:
        """Users who logged in over IMAP since ``since`` (from the log)."""
        users = set()
        for line in self.log_text().splitlines():
            if "imap-login: Info: Login: user=<" in line and self._stamp(line) >= int(since):
                users.add(line.split("user=<", 1)[1].split(">", 1)[0])
        return users

    @staticmethod
    def _stamp(line: str) -> float:
        return datetime.strptime(f"{datetime.now().year} {line[:15]}", "%Y %b %d %H:%M:%S").timestamp()

    def logins_per_second(self, since: float) -> Counter[int]:
        """IMAP logins per second from the log (``imap-login: ... Login: user=<...>``)."""
        out: Counter[int] = Counter()
        for line in self.log_text().splitlines():
            if "imap-login: Info: Login: " not in line:
                continue
            stamp = self._stamp(line)
            if stamp >= int(since):
                out[int(stamp)] += 1
        return out


# -- helpers -----------------------------------------------------------------------------------------

def _rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def until(condition: Any, within: float, every: float = 0.05) -> None:
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - lease keys and logs have no event to wait on
            await asyncio.sleep(every)


def _say(what: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def _memory_probe() -> None:
    """BENCH_FLEET_TRACEMALLOC=1: trace allocations from now on; SIGUSR2 writes the growth since now, by line,
    to stderr (the child's log): what each watched BAL costs, and where."""
    if not os.environ.get("BENCH_FLEET_TRACEMALLOC"):
        return
    import tracemalloc

    tracemalloc.start(1)
    start = tracemalloc.take_snapshot()

    def dump() -> None:
        now = tracemalloc.take_snapshot()
        for key in ("filename", "lineno"):
            stats = now.compare_to(start, key)
            print(f"-- growth by {key}: {sum(s.size_diff for s in stats) / 2**20:.1f} MiB", file=sys.stderr)
            for stat in stats[:30]:
                print(stat, file=sys.stderr)
        sys.stderr.flush()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)


# -- what both sides run: the connector ---------------------------------------------------------------

class BenchConnector(MailboxConnector):
    """The standard connector (APP on the sandbox by DNS SRV), ORG BALs on Dovecot with one PSC session."""

    session: Any = None
    dovecot: ManualServers | None = None

    async def mailbox(self, spec: BALSpec, *, limiter: ConnectLimiter | None = None) -> Mailbox:
        if spec.kind != "ORG":
            return await super().mailbox(spec, limiter=limiter)
        return Mailbox(spec.address, kind="ORG", credentials=self.session, servers=self.dovecot, tls=self.trust(),
                       options=self.options_with(limiter))


def _connector(config: dict[str, Any]) -> BenchConnector:
    from mssante.psc import PSCClient, PSCSettings, TokenSet

    host, _, port = config["dns"].rpartition(":")
    options = MailboxOptions(connection=ConnectionSettings(resolve=dict.fromkeys(config["hosts"], "127.0.0.1"),
                                                           connect_timeout=20, command_timeout=20))
    connector = BenchConnector(tls=TrustSettings(ca_bundle=Path(config["ca"])), certificates=Path(config["certs"]),
                               resolver=DNSPythonResolver(nameservers=[host], port=int(port)), options=options)
    tokens = json.loads(sys.stdin.readline())  # from the parent, on a pipe: never on disk or a command line
    client = PSCClient(PSCSettings.from_sandbox(config["info"]))
    connector.session = client.open_session(TokenSet.from_response(tokens, now=time.time()))
    connector.dovecot = ManualServers(imap=(config["imap_host"], config["imap_port"]))
    return connector


def _settings(config: dict[str, Any]) -> WorkerSettings:
    return WorkerSettings(capacity=config["capacity"], lease_ttl=config["lease_ttl"],
                          connect_rate=config["connect_rate"], connect_burst=10, operator_rate=config["operator_rate"],
                          operator_burst=config["operator_burst"], x_mss=True,
                          presence_interval=0.25 if config["presence_grace"] else None,
                          presence_grace=config["presence_grace"])


def _timed_worker(store: FleetStore, connector: MailboxConnector, settings: WorkerSettings, worker_id: str,
                  out: Any) -> Worker:
    """A worker that writes, per message, when its watch woke (IDLE update), had the summary (with its X-MSS
    fields) and had published it (wall-clock seconds): where the time from delivery to the stream goes."""
    from mssante.client import _watch

    woke: dict[asyncio.Task[Any] | None, float] = {}
    wait_for_change = _watch._wait_for_change

    async def timed_wait(conn: Any, duration: float) -> None:
        await wait_for_change(conn, duration)
        woke[asyncio.current_task()] = time.time()

    _watch._wait_for_change = timed_wait

    class Timed(Worker):
        async def _publish(self, watch: Any, summary: Any, x_mss: dict[str, str] | None) -> Any:
            summary_at = time.time()
            result = await super()._publish(watch, summary, x_mss)
            out.write(json.dumps({"subject": summary.subject, "woke": woke.pop(asyncio.current_task(), None),
                                  "summary": summary_at, "xadd": time.time()}) + "\n")
            out.flush()
            return result

        def _connected(self, event: Any) -> None:
            super()._connected(event)
            if event.kind == "connected":  # each (re)connection of a BAL: when a killed worker's BAL is back
                out.write(json.dumps({"bal": event.address, "connected": time.time()}) + "\n")

        def _limiter_for(self, spec: BALSpec) -> ConnectLimiter:
            limiter = super()._limiter_for(spec)  # the worker's pacing, then the operator's fleet-wide token
            if limiter not in logged:
                logged.add(limiter)
                _log_connects(limiter, out)  # inside both: every (re)connection's handshake start
            return limiter

    logged: set[ConnectLimiter] = set()
    return Timed(store, connector, settings=settings, worker_id=worker_id)


def _log_connects(limiter: ConnectLimiter, out: Any) -> None:
    """Write the time of every handshake ``limiter`` lets start (``{"connect": t}``): the connect rate as sent."""
    slot = limiter.slot

    @contextlib.asynccontextmanager
    async def logged() -> Any:
        async with slot():
            out.write(json.dumps({"connect": time.time()}) + "\n")
            yield

    limiter.slot = logged  # type: ignore[method-assign]


async def _worker_child(config: dict[str, Any]) -> None:
    """One worker process."""
    import logging

    from mssante.cli._fleet import _JSONLines  # the worker command's structured logs

    handler = logging.StreamHandler()
    handler.setFormatter(_JSONLines())
    logging.getLogger("mssante.fleet").addHandler(handler)
    logging.getLogger("mssante.fleet").setLevel(logging.INFO)
    connector = _connector(config)
    if config.get("hold"):  # a replacement started at a kill: its worker joins once the takeover is measured
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    _memory_probe()
    store = FleetStore.from_url(config["redis"])
    timings = open(Path(config["timings"]) / f"{config['id']}.jsonl", "a")  # noqa: SIM115, ASYNC230
    worker = _timed_worker(store, connector, _settings(config), config["id"], timings)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.shutdown)
    try:
        await worker.run()
    finally:
        await store.aclose()


async def _baseline_child(config: dict[str, Any]) -> None:
    """Mailbox.watch for every BAL in this one process, paced like the fleet; prints each message's subject."""
    connector = _connector(config)
    _memory_probe()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    next_half = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR2 if not os.environ.get("BENCH_FLEET_TRACEMALLOC") else signal.SIGHUP,
                            next_half.set)

    def where() -> None:  # SIGUSR1: where the watches wait
        for task in list(asyncio.all_tasks())[:5]:
            task.print_stack(limit=4, file=sys.stderr)

    loop.add_signal_handler(signal.SIGUSR1, where)
    limiter = ConnectLimiter(config["operator_rate"], config["operator_burst"], jitter=0.5)  # paced like the fleet
    _log_connects(limiter, open(Path(config["timings"]) / "baseline.jsonl", "a"))  # noqa: SIM115, ASYNC230
    watching = 0

    async def one(spec: BALSpec) -> None:
        nonlocal watching
        try:
            box = await connector.mailbox(spec, limiter=limiter)
            # from UID 1 (the fleet's messages are in the folders: the parent ignores them), so a message
            # delivered before the watch is in IDLE is not missed
            async with box, contextlib.aclosing(box.watch(state=WatchState(last_uid=0))) as watcher:
                watching += 1
                if watching in (half, len(config["bals"])):
                    print(json.dumps({"watching": watching}), flush=True)
                async for summary in watcher:
                    print(json.dumps({"bal": spec.address, "subject": summary.subject}), flush=True)
        except Exception as exc:
            print(f"{spec.address}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            raise

    print(json.dumps({"rss": _rss_mib(os.getpid())}), flush=True)
    half = len(config["bals"]) // 2  # in two halves, like the fleet: the second half's growth is the marginal cost
    tasks = [asyncio.create_task(one(BALSpec(address=a, kind=k, ref=r))) for a, k, r in config["bals"][:half]]
    await next_half.wait()
    tasks += [asyncio.create_task(one(BALSpec(address=a, kind=k, ref=r))) for a, k, r in config["bals"][half:]]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- the parent -----------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace, sb: Any, dovecot: LocalJWTDovecot, tmp: Path, redis_url: str,
                 apps: list[str], orgs: list[str]) -> None:
        self.args, self.sb, self.dovecot, self.tmp, self.redis_url = args, sb, dovecot, tmp, redis_url
        self.apps, self.orgs = apps, orgs
        self.children: list[subprocess.Popen[bytes]] = []  # killed at the end, whatever happened
        self.bals = apps + orgs
        self.kinds = {**dict.fromkeys(apps, "APP"), **dict.fromkeys(orgs, "ORG")}
        self.rng = random.Random(args.seed)
        names = [sb.info[p][f]["host"] for p in ("imap", "smtp") for f in ("psc", "authcli")]
        self.config: dict[str, Any] = {
            "ca": sb.info["ca_bundle"], "certs": str(certificates(sb, tmp / "certs")), "info": sb.info,
            "dns": f"{sb.info['dns']['host']}:{sb.info['dns']['port']}", "hosts": names,
            "imap_host": sb.info["imap"]["psc"]["host"], "imap_port": dovecot.imap_port, "redis": redis_url,
            "capacity": math.ceil(len(self.bals) / (args.workers - 1)) + 1,  # room for a dead worker's share
            "connect_rate": args.connect_rate, "operator_rate": args.operator_rate,
            "operator_burst": args.operator_burst, "lease_ttl": args.lease_ttl, "presence_grace": args.presence_grace,
            "timings": os.environ.get("BENCH_FLEET_LOGS") or str(tmp / "timings")}
        Path(self.config["timings"]).mkdir(exist_ok=True)

    def spec(self, address: str) -> BALSpec:
        kind = self.kinds[address]
        return BALSpec(address=address, kind=kind, ref=STRUCTURE if kind == "APP" else ORG_REF)  # type: ignore[arg-type]

    def tokens(self) -> bytes:
        answer = self.sb.psc.issue_tokens_for_tests(MARIE, self.sb.info["psc"]["client_id"])
        return (json.dumps(answer) + "\n").encode()

    def spawn(self, mode: str, *, hold: bool = False, **extra: Any) -> subprocess.Popen[bytes]:
        """A child process; ``hold``: it starts (imports, PSC session) but waits for ``go()`` to run its worker."""
        config = json.dumps({**self.config, **extra, "hold": hold}) + "\n"
        logs = os.environ.get("BENCH_FLEET_LOGS")  # a directory for the children's logs (JSON lines)
        err = open(Path(logs) / f"{extra.get('id', 'baseline')}.log", "ab") if logs else subprocess.DEVNULL  # noqa: SIM115
        child = subprocess.Popen([sys.executable, __file__, mode], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE if mode == "--baseline-child" else subprocess.DEVNULL,
                                 stderr=err)
        assert child.stdin is not None
        child.stdin.write(config.encode() + self.tokens())  # on a pipe: the tokens never on disk or in argv
        if hold:
            child.stdin.flush()
        else:
            child.stdin.close()
        self.children.append(child)
        return child

    @staticmethod
    def go(child: subprocess.Popen[bytes]) -> None:
        """Let a held worker process start its worker."""
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()

    async def deliver(self, subject: str, delivered: dict[str, float], per_bal: dict[str, str]) -> None:
        bal = self.rng.choice(self.bals)
        per_bal[subject] = bal
        delivered[subject] = time.time()
        if self.kinds[bal] == "APP":
            await self.sb.store.deliver(bal, raw(bal, subject))
        else:
            reply = await asyncio.to_thread(self.dovecot.sink.deliver_lmtp, f"labo@{self.sb.info['domain']}", bal,
                                            raw(bal, subject))
            if not reply.startswith("2"):
                raise RuntimeError(f"LMTP delivery to {bal} failed: {reply}")

    def logins_per_s(self, since: float) -> int:
        """The most IMAP logins both servers completed in one calendar second (completions bunch under load)."""
        counts = self.dovecot.logins_per_second(since)
        counts.update(int(r.started_at) for r in self.sb.journal.records(since=since) if r.protocol == "imap")
        return max(counts.values(), default=0)

    def connects_per_s(self, since: float, until: float, who: str) -> int:
        """The most handshakes started in any one-second window by ``who`` (``w``: every worker, ``baseline``)."""
        starts = sorted(json.loads(line)["connect"] for path in Path(self.config["timings"]).glob(f"{who}*.jsonl")
                        for line in path.read_text().splitlines() if line.startswith('{"connect"'))
        starts = [t for t in starts if since <= t <= until]
        most, first = 0, 0
        for last, at in enumerate(starts):
            while at - starts[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most

    async def connected(self, since: float, bals: list[str] | None = None) -> bool:
        """Every BAL (of ``bals``) has logged in since ``since``: ORG on Dovecot (its log), APP on the sandbox
        (live sessions)."""
        wanted = set(self.bals if bals is None else bals)
        logged = await asyncio.to_thread(self.dovecot.logged_in, since)
        return (wanted & set(self.orgs)) <= logged and all(self.sb.faults.sessions(b) for b in wanted & set(self.apps))

    @staticmethod
    async def redis_stats(store: FleetStore) -> dict[str, Any]:
        """Redis's own counters: calls per command, memory."""
        stats = await store.redis.info("commandstats")
        memory = await store.redis.info("memory")
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        return {"calls": calls, "used_memory": int(memory["used_memory"])}

    def redis_rates(self, before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
        """Redis commands per second between two snapshots (all, the five most called), and its memory per BAL:
        what the sizing in docs/fleet.md derives from."""
        calls = {k: after["calls"].get(k, 0) - before["calls"].get(k, 0) for k in after["calls"]}
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
        seconds = max(seconds, 1e-9)
        return {"seconds": round(seconds, 1), "commands_per_s": round(sum(calls.values()) / seconds),
                "per_1000_bals_per_s": round(sum(calls.values()) / seconds / len(self.bals) * 1000, 1),
                "top_per_s": {k: round(v / seconds, 1) for k, v in top},
                "used_memory_bytes_per_bal": round(after["used_memory"] / len(self.bals))}

    async def trims(self, store: FleetStore) -> dict[str, int]:
        """Each worker's ``heap_trims`` figure (none: older workers)."""
        return {w: int(f["heap_trims"]) for w, f in (await store.workers()).items() if "heap_trims" in f}

    async def settled(self, store: FleetStore, before: dict[str, int]) -> None:
        """Until no worker has a BAL still connecting and each trimmed its heap since (the worker gives the
        handshakes' buffers back at its first tick after a burst): the RSS then is what idle BALs hold, not the
        burst's peak. Workers without these figures (older code): the last BALs are given a second to enter IDLE."""
        figures = await store.workers()
        if not figures or any("connecting" not in f or "heap_trims" not in f for f in figures.values()):
            await asyncio.sleep(1.0)
            return

        async def trimmed() -> bool:
            now = await store.workers()
            return all(int(f.get("connecting", 1)) == 0 and int(f.get("heap_trims", 0)) > before.get(w, -1)
                       for w, f in now.items() if int(f.get("bals", 0)))

        with contextlib.suppress(TimeoutError):
            await until(trimmed, 6 * self.args.lease_ttl, every=0.2)

    async def holders(self, store: FleetStore) -> dict[str, str | None]:
        values = await store.redis.mget([store.keys.lease(b) for b in self.bals])
        return {b: (v.split("|")[0] if v else None) for b, v in zip(self.bals, values, strict=True)}

    async def distribution(self, store: FleetStore) -> dict[str, int]:
        counts = Counter(w or "-" for w in (await self.holders(store)).values())
        return dict(sorted(counts.items()))

    def reconnections(self) -> dict[str, list[float]]:
        """When each BAL's session was (re)connected by a worker (``{"bal", "connected"}`` in the timings)."""
        out: dict[str, list[float]] = {}
        for path in Path(self.config["timings"]).glob("w*.jsonl"):
            for line in path.read_text().splitlines():
                if line.startswith('{"bal"'):
                    t = json.loads(line)
                    out.setdefault(t["bal"], []).append(t["connected"])
        return out

    def timeline(self, subject: str, delivered: float) -> str:
        """The workers' timings of one message, in seconds from its delivery."""
        out = []
        for path in Path(self.config["timings"]).glob("*.jsonl"):
            for line in path.read_text().splitlines():
                t = json.loads(line)
                if t.get("subject") == subject:
                    steps = " ".join(f"{k} +{t[k] - delivered:.2f}" for k in ("woke", "summary", "xadd") if t[k])
                    out.append(f"[{path.stem}: {steps}]")
        return " ".join(out)

    def timings(self, delivered: dict[str, float]) -> dict[str, dict[str, float]]:
        """The workers' timings of each message (the last publication attempt wins)."""
        steps: dict[str, dict[str, float]] = {}
        for path in Path(self.config["timings"]).glob("*.jsonl"):
            for line in path.read_text().splitlines():
                t = json.loads(line)
                if t.get("subject") in delivered:
                    steps.setdefault(t["subject"], {}).update(t)
        return steps

    def breakdown(self, delivered: dict[str, float], seen_at: dict[str, float], steps: dict[str, dict[str, float]],
                  moved: set[str]) -> dict[str, dict[str, float]]:
        """Where the time went, per message (the workers' timings): p50/p99 of each step, in ms, for the
        messages of moving BALs and for the others; ``no_wake``: messages found by a scan without an IDLE
        update (catch-up after a (re)connection)."""
        out: dict[str, dict[str, float]] = {}
        for group, wanted in (("steady", False), ("moved", True)):
            rows = [(delivered[s], t, seen_at.get(s)) for s, t in steps.items() if (s in moved) == wanted]
            spans: dict[str, list[float]] = {"delivery->wake": [], "wake->summary": [], "delivery->summary": [],
                                              "summary->xadd": [], "xadd->read": []}
            for start, t, read in rows:
                if t["woke"] is not None:
                    spans["delivery->wake"].append(t["woke"] - start)
                    spans["wake->summary"].append(t["summary"] - t["woke"])
                spans["delivery->summary"].append(t["summary"] - start)
                spans["summary->xadd"].append(t["xadd"] - t["summary"])
                if read is not None:
                    spans["xadd->read"].append(read - t["xadd"])
            out[group] = {"messages": len(rows), "no_wake": sum(1 for _, t, _ in rows if t["woke"] is None)}
            for name, values in spans.items():
                out[group][f"{name} p50"] = round(_pct(values, 0.5) * 1000, 1)
                out[group][f"{name} p99"] = round(_pct(values, 0.99) * 1000, 1)
        return out

    # -- the fleet ---------------------------------------------------------------------------------
    async def fleet(self) -> dict[str, Any]:
        args = self.args
        store = FleetStore.from_url(self.redis_url)
        workers = {f"w{i}": self.spawn("--worker-child", id=f"w{i}") for i in range(args.workers)}

        async def alive(count: int) -> bool:
            return len(await store.workers()) >= count

        await until(lambda: alive(len(workers)), 60)
        empty_rss = {w: _rss_mib(p.pid) for w, p in workers.items()}
        started = time.time()
        # in two halves: the second half's RSS growth is what a BAL costs, once the one-time costs (modules
        # imported on first use, TLS contexts, Redis connections, buffers) were paid by the first half
        half = len(self.bals) // 2
        marks: list[tuple[dict[str, float], Counter[str | None]]] = []
        for batch in (self.bals[:half], self.bals[half:]):
            trims_before = await self.trims(store)
            async with store.redis.pipeline(transaction=False) as pipe:
                for bal in batch:
                    pipe.hset(store.keys.bals, bal, self.spec(bal).to_json())
                pipe.incr(store.keys.bals_version)  # the workers read the set again at their next tick
                await pipe.execute()
            count = len(self.bals) if batch[-1] == self.bals[-1] else half

            async def all_watched(count: int = count) -> bool:
                figures = await store.workers()
                holders = await self.holders(store)
                return sum(1 for h in holders.values() if h) == count and sum(
                    int(f.get("bals", 0)) for f in figures.values()) == count

            await until(all_watched, 60 + count / args.operator_rate * 3, every=0.2)
            await until(lambda count=count: self.connected(started, self.bals[:count]),
                        60 + count / args.operator_rate * 3, every=0.5)
            await self.settled(store, trims_before)
            marks.append(({w: _rss_mib(p.pid) for w, p in workers.items()},
                          Counter(w for w in (await self.holders(store)).values())))
        ready_s = time.time() - started
        _say(f"fleet: {len(self.bals)} BALs watched after {ready_s:.1f} s")
        (rss1, held1), (rss2, held) = marks
        per_worker = [(rss2[w] - empty_rss[w]) / held[w] * 1000 for w in workers if held[w]]
        marginal = [(rss2[w] - rss1[w]) / (held[w] - held1[w]) * 1000 for w in workers if held[w] > held1[w]]
        loaded_rss = statistics.mean(rss2.values())
        distributions = [("start", await self.distribution(store))]
        delivered: dict[str, float] = {}
        per_bal: dict[str, str] = {}
        published: Counter[str] = Counter()
        seen_at: dict[str, float] = {}
        stop_reading = asyncio.Event()

        async def read() -> None:
            last = "0"
            while not stop_reading.is_set():
                for event in await store.events(last, block_ms=200):
                    last = event.id
                    if event.kind == "message":
                        published[event.fields["subject"]] += 1
                        seen_at.setdefault(event.fields["subject"], time.time())

        reader = asyncio.create_task(read())
        takeovers: list[float] = []
        watched: list[float] = []
        moved: set[str] = set()
        # (kind, from, to, BALs): a kill's takeover, a join's rebalance (by handover when the workers do it)
        moves: list[tuple[str, float, float, set[str]]] = []
        kills: list[tuple[float, list[str]]] = []  # (time of the SIGKILL, the dead worker's BALs)
        watchers: list[asyncio.Task[None]] = []

        async def takeover(victim: str, its: list[str], killed: float, number: int,
                           spare: subprocess.Popen[bytes]) -> None:
            async def taken() -> bool:
                now = await self.holders(store)
                return all(now[b] not in (None, victim) for b in its)

            await until(taken, 3 * args.lease_ttl + 60)
            takeovers.append(time.time() - killed)
            # and watched again: each has logged in since the kill (a new IMAP session, its catch-up scan done)
            await until(lambda: self.connected(killed, its), 3 * args.lease_ttl + 60, every=0.2)
            watched.append(time.time() - killed)
            moves.append(("kill", killed, time.time(), set(its)))
            _say(f"fleet: kill {number} ({victim}, {len(its)} BALs) taken over in {takeovers[-1]:.1f} s, "
                 f"all watched again after {watched[-1]:.1f} s")
            distributions.append((f"kill {number} ({victim}) taken over", await self.distribution(store)))
            before = await self.holders(store)
            join_started = time.time()
            name = f"{victim}r"
            self.go(spare)  # a replacement joins (started at the kill, held until now), the others give it BALs
            workers[name] = spare
            target = len(self.bals) // args.workers

            async def joined() -> bool:
                return bool(Counter((await self.holders(store)).values())[name] >= target)

            with contextlib.suppress(TimeoutError):
                await until(joined, 30 + len(self.bals) / args.operator_rate * 2, every=0.2)
            after = await self.holders(store)
            moved.update(b for b in self.bals if after[b] != before[b])
            moves.append(("join", join_started, time.time(), {b for b in self.bals if after[b] != before[b]}))
            distributions.append((f"{name} joined", await self.distribution(store)))

        # Deliveries at a steady --rate for the whole run (messages / rate seconds), whatever happens to the
        # workers; the kills evenly spaced within it, each after the previous one's takeover and join.
        duration = args.messages / args.rate
        stats_start = await self.redis_stats(store)
        t0 = time.time()
        stats_at_kill: list[tuple[float, dict[str, Any]]] = []

        async def kill_schedule() -> None:
            for k in range(args.kills):
                await asyncio.sleep(max(0.0, t0 + duration * (k + 1) / (args.kills + 1) - time.time()))
                await asyncio.gather(*watchers)  # the previous kill is taken over, its replacement joined
                if not stats_at_kill:  # the quiet part of the run ends here: Redis's cost in a steady fleet
                    stats_at_kill.append((time.time(), await self.redis_stats(store)))
                victim = self.rng.choice(sorted(w for w, p in workers.items() if p.poll() is None))
                its = [b for b, w in (await self.holders(store)).items() if w == victim]
                workers[victim].send_signal(signal.SIGKILL)
                await asyncio.to_thread(workers[victim].wait)
                moved.update(its)
                killed = time.time()
                kills.append((killed, its))
                spare = self.spawn("--worker-child", hold=True, id=f"{victim}r")  # its start overlaps the takeover
                watchers.append(asyncio.create_task(takeover(victim, its, killed, len(watchers) + 1, spare)))

        killing = asyncio.create_task(kill_schedule())
        for index in range(args.messages):
            await asyncio.sleep(max(0.0, t0 + index / args.rate - time.time()))
            await self.deliver(f"fleet{index:05d}", delivered, per_bal)
        delivering_s = time.time() - t0
        await killing
        await asyncio.gather(*watchers)
        stats_end = await self.redis_stats(store)

        async def all_published() -> bool:
            return all(s in published for s in delivered)

        _say(f"fleet: {len(delivered)} messages delivered in {delivering_s:.1f} s, {len(published)} published so far")
        with contextlib.suppress(TimeoutError):
            await until(all_published, 3 * args.lease_ttl + 30)
        _say(f"fleet: {len(published)} published")
        await asyncio.sleep(0.5)  # a late duplicate would show here
        stop_reading.set()
        await reader
        latencies = [(seen_at[s] - t) * 1000 for s, t in delivered.items() if s in seen_at]
        steps = self.timings(delivered)
        # Each message in one class:
        # * "outage": to a BAL of a killed worker, delivered after the kill and before that BAL's first connection
        #   by its new holder (nobody could see it: it waits for the detector, the connect limiter and a login);
        # * "moved": to a BAL moving otherwise between its delivery and its publication (a join's rebalance, the
        #   rest of a takeover), or found by the catch-up scan of a new session (no IDLE update before it);
        # * "steady": the others, notified over an established IDLE session.
        back = self.reconnections()
        outage_windows = [(killed, b, min((t for t in back.get(b, ()) if t >= killed), default=math.inf))
                          for killed, its in kills for b in its]
        # to a dead worker's BAL, published after the kill (delivered before it too: the worker died before
        # publishing) and delivered before the BAL's new session
        in_outage = {s for s, t in delivered.items()
                     if any(per_bal[s] == b and t <= up and seen_at.get(s, math.inf) >= killed
                            for killed, b, up in outage_windows)}
        moving_in = {s: [kind for kind, start, end, bals in moves
                         if per_bal[s] in bals and t <= end and seen_at.get(s, math.inf) >= start]
                     for s, t in delivered.items()}
        affected = {s for s in delivered if moving_in[s] or (s in steps and steps[s]["woke"] is None)}
        affected -= in_outage
        handed = {s for s in affected if moving_in[s] and set(moving_in[s]) == {"join"}}  # a join's move only
        steady = [(seen_at[s] - t) * 1000 for s, t in delivered.items()
                  if s in seen_at and s not in affected and s not in in_outage]
        moving = [(seen_at[s] - t) * 1000 for s, t in delivered.items() if s in seen_at and s in affected]
        outage = [(seen_at[s] - t) * 1000 for s, t in delivered.items() if s in seen_at and s in in_outage]
        joining = [(seen_at[s] - t) * 1000 for s, t in delivered.items() if s in seen_at and s in handed]
        # a killed worker's BALs: seconds from the kill until each is connected again, summed: the BAL-seconds
        # nobody watched; over BALs x the delivery time, the share of messages expected to wait for a takeover
        unwatched = [up - killed for killed, _, up in outage_windows if up < math.inf]
        outage_share = sum(unwatched) / (len(self.bals) * max(delivering_s, 1e-9))
        breakdown = self.breakdown(delivered, seen_at, steps, affected | in_outage)
        worst = sorted((s for s in delivered if s in seen_at), key=lambda s: delivered[s] - seen_at[s])[:5]
        for subject in worst:
            _say(f"slowest: {subject} to {per_bal[subject]}, {seen_at[subject] - delivered[subject]:.2f} s, "
                 f"{'outage' if subject in in_outage else 'moved' if subject in affected else 'steady'}, "
                 f"{self.timeline(subject, delivered[subject])}")
        result = {
            "bals": len(self.bals), "workers": args.workers, "delivered": len(delivered),
            "published": sum(published.values()), "missed": sum(1 for s in delivered if s not in published),
            "duplicated": sum(n - 1 for n in published.values() if n > 1),
            "takeover_s_max": round(max(takeovers, default=0.0), 2), "takeovers_s": [round(t, 2) for t in takeovers],
            "watched_again_s": [round(t, 2) for t in watched], "p50_ms": round(_pct(latencies, 0.5), 1),
            "p99_ms": round(_pct(latencies, 0.99), 1), "p99_ms_steady": round(_pct(steady, 0.99), 1),
            "p50_ms_steady": round(_pct(steady, 0.5), 1), "p50_ms_moved": round(_pct(moving, 0.5), 1),
            "p99_ms_moved": round(_pct(moving, 0.99), 1), "messages_moved": len(moving),
            "p50_ms_outage": round(_pct(outage, 0.5), 1), "p99_ms_outage": round(_pct(outage, 0.99), 1),
            "messages_outage": len(outage), "p99_ms_handover": round(_pct(joining, 0.99), 1),
            "messages_handover": len(joining),
            "reconnected_s_p50": round(_pct(unwatched, 0.5), 2),
            "reconnected_s_max": round(max(unwatched, default=0), 2),
            "outage_share_pct": round(100 * outage_share, 2), "delivering_s": round(delivering_s, 1),
            "redis_steady": self.redis_rates(stats_start, stats_at_kill[0][1] if stats_at_kill else stats_end,
                                             (stats_at_kill[0][0] if stats_at_kill else time.time()) - t0),
            "redis_whole_run": self.redis_rates(stats_start, stats_end, time.time() - t0),
            "rss_mib_per_1000_bals": round(statistics.median(per_worker), 1) if per_worker else None,
            "rss_mib_per_1000_bals_marginal": round(statistics.median(marginal), 1) if marginal else None,
            "ready_s": round(ready_s, 1), "rss_mib_worker_empty": round(statistics.mean(empty_rss.values()), 1),
            "rss_mib_worker_loaded": round(loaded_rss, 1),
            "max_connects_per_s": self.connects_per_s(started, time.time(), "w"),
            "max_logins_per_s": self.logins_per_s(started),
            "connect_limit_per_s": args.operator_rate + args.operator_burst, "kills": len(takeovers),
            "apps": len(self.apps), "orgs": len(self.orgs), "moved_bals": len(moved),
            "missed_by_kind": dict(Counter(self.kinds[per_bal[s]] for s in delivered if s not in published)),
            "missed_moved": sum(1 for s in delivered if s not in published and per_bal[s] in moved),
            "distributions": distributions, "breakdown": breakdown,
        }
        with contextlib.suppress(Exception):  # each live worker's own figures (heartbeat hash)
            result["worker_figures"] = {w: {k: f.get(k) for k in (
                "bals", "published", "takeovers", "handovers_in", "handovers_out", "catch_up_waits", "operator_waits",
                "heap_trims", "connects")} for w, f in (await store.workers()).items()}
        # measured: stop the workers at once (a clean stop, 1,000 LOGOUTs, took a minute); cleanly when profiled
        stop = signal.SIGTERM if os.environ.get("BENCH_FLEET_PROFILE") else signal.SIGKILL
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(stop)
        for process in workers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.wait, 30)  # the sandbox, in this loop, serves their LOGOUTs
            if process.poll() is None:
                process.kill()
        await store.aclose()
        _say("fleet: workers stopped")
        return result

    # -- the baseline: Mailbox.watch in one process --------------------------------------------------
    async def baseline(self) -> dict[str, Any]:
        args = self.args
        started = time.time()
        child = self.spawn("--baseline-child", bals=[(b, self.kinds[b], self.spec(b).ref) for b in self.bals])
        assert child.stdout is not None
        lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def pump() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                lines.put_nowait(json.loads(line))

        loop = asyncio.get_running_loop()
        pumping = loop.run_in_executor(None, pump)
        _say("baseline: started")
        empty_rss = (await asyncio.wait_for(lines.get(), 60))["rss"]
        _say("baseline: connecting")
        half = len(self.bals) // 2
        marks = []
        for count in (half, len(self.bals)):
            async with asyncio.timeout(60 + count / args.operator_rate * 3):
                while "watching" not in await lines.get():
                    pass  # the fleet's messages, yielded by the watches (from UID 1): not measured
            await until(lambda count=count: self.connected(started, self.bals[:count]),
                        60 + count / args.operator_rate * 3, every=0.5)
            await asyncio.sleep(1.0)
            marks.append(_rss_mib(child.pid))
            if count == half:
                child.send_signal(signal.SIGHUP if os.environ.get("BENCH_FLEET_TRACEMALLOC") else signal.SIGUSR2)
        ready_s = time.time() - started
        _say(f"baseline: {len(self.bals)} BALs watched after {ready_s:.1f} s")
        loaded_rss = marks[1]
        rss = (loaded_rss - empty_rss) / len(self.bals) * 1000
        delivered: dict[str, float] = {}
        per_bal: dict[str, str] = {}
        seen: Counter[str] = Counter()
        seen_at: dict[str, float] = {}

        async def read() -> None:
            while True:
                subject = (await lines.get()).get("subject", "")
                if subject.startswith("base"):
                    seen[subject] += 1
                    seen_at.setdefault(subject, time.time())

        reader = asyncio.create_task(read())
        for index in range(args.messages):
            await self.deliver(f"base{index:05d}", delivered, per_bal)
            await asyncio.sleep(1 / args.rate)

        async def all_seen() -> bool:
            return all(s in seen for s in delivered)

        with contextlib.suppress(TimeoutError):
            await until(all_seen, 30)
        _say(f"baseline: {len(seen)} of {len(delivered)} seen")
        child.send_signal(signal.SIGTERM)
        await asyncio.to_thread(child.wait, 30)
        await pumping
        reader.cancel()
        latencies = [(seen_at[s] - t) * 1000 for s, t in delivered.items() if s in seen_at]
        return {"bals": len(self.bals), "workers": 1, "delivered": len(delivered), "published": sum(seen.values()),
                "missed": sum(1 for s in delivered if s not in seen),
                "missed_by_kind": dict(Counter(self.kinds[per_bal[s]] for s in delivered if s not in seen)),
                "duplicated": sum(n - 1 for n in seen.values() if n > 1), "takeover_s_max": None,
                "p50_ms": round(_pct(latencies, 0.5), 1), "p99_ms": round(_pct(latencies, 0.99), 1),
                "rss_mib_per_1000_bals": round(rss, 1), "ready_s": round(ready_s, 1),
                "rss_mib_per_1000_bals_marginal": round((marks[1] - marks[0]) / (len(self.bals) - half) * 1000, 1),
                "rss_mib_worker_empty": round(empty_rss, 1), "rss_mib_worker_loaded": round(loaded_rss, 1),
                "max_connects_per_s": self.connects_per_s(started, time.time(), "baseline"),
                "max_logins_per_s": self.logins_per_s(started)}


def _public_pem(sb: Any) -> tuple[str, str]:
    from joserfc.jwk import RSAKey

    jwk = sb.psc.jwks()["keys"][0]
    pem = RSAKey.import_key(jwk).as_pem(private=False)
    return (pem.decode() if isinstance(pem, bytes) else pem), str(jwk["kid"])


async def run(args: argparse.Namespace, report: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start Redis, the sandbox and Dovecot; measure the fleet, then the baseline; ``report`` the figures before
    the servers stop (stopping them takes minutes at 10,000 BALs: the figures must not wait for it)."""
    base = default_config()
    n_app = max(2, args.bals // 20)
    apps = [f"svc{i}@{base.domain}" for i in range(n_app)]
    orgs = [f"sec{i}@{base.domain}" for i in range(args.bals - n_app)]
    structure = base.structures[0].national_id
    sandbox_config = replace(base, bals=base.bals + tuple(
        BALConfig(address=a, kind="APP", structure_id=STRUCTURE) for a in apps))
    dovecot_config: SandboxConfig = replace(base, bals=base.bals + tuple(
        BALConfig(address=o, kind="ORG", holders=(MARIE,), structure_id=structure) for o in orgs))
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp, durable=False)
        redis.start()
        try:
            async with testing.running_sandbox(tmp / "sandbox", sandbox_config) as sb:
                pem, kid = _public_pem(sb)
                psc = sb.info["psc"]
                # a work directory of ours: its Maildirs are removed in the background after the run (an rmtree of
                # 9,500 Maildirs took minutes under load: the 10,000-BAL run's parent seemed to hang there)
                mail_dir = Path(tempfile.mkdtemp(prefix="mssd-"))
                dovecot = LocalJWTDovecot(
                    public_pem=pem, azp=psc["client_id"], kid=kid, bals=len(orgs), pki=sb.pki,
                    introspection_url=psc["issuer"] + "/protocol/openid-connect/token/introspect",
                    client_id=psc["client_id"], client_secret=psc["client_secret"], config=dovecot_config,
                    login_service_count=0, work_dir=mail_dir)
                await asyncio.to_thread(dovecot.start)
                try:
                    bench = Bench(args, sb, dovecot, tmp, redis.url, apps, orgs)
                    try:
                        fleet = await bench.fleet()
                        baseline = await bench.baseline() if args.baseline else {}
                        if report is not None:
                            report(fleet, baseline)
                        # measured: if stopping the servers hangs, say where (every thread's stack on stderr)
                        faulthandler.dump_traceback_later(120)
                        stopping = time.time()
                    finally:
                        for child in bench.children:
                            if child.poll() is None:
                                child.kill()
                finally:
                    if os.environ.get("BENCH_FLEET_DOVECOT_LOG"):  # where to keep Dovecot's log
                        await asyncio.to_thread(Path(os.environ["BENCH_FLEET_DOVECOT_LOG"]).write_text,
                                                dovecot.log_text())
                    await asyncio.to_thread(dovecot.stop)
                    _remove_in_background(mail_dir)
        finally:
            redis.stop()
    faulthandler.cancel_dump_traceback_later()  # stopped in time: no stacks later (report.py runs on after it)
    _say(f"servers stopped in {time.time() - stopping:.1f} s")
    return fleet, baseline


def _remove_in_background(directory: Path) -> None:
    """``rm -rf directory`` in a process of its own (nice 19), left running when the benchmark exits."""
    subprocess.Popen(["nice", "-n", "19", "rm", "-rf", "--", str(directory)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _say(f"Dovecot's Maildirs ({directory}) being removed in the background")


def _options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="1.0: 10,000 BALs (the issue's size)")
    parser.add_argument("--bals", type=int, help="BALs watched (default: 10,000 x --scale)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--messages", type=int,
                        help="messages delivered, at --rate for the whole run, the kills evenly spaced in it (default: "
                             "--rate x --duration)")
    parser.add_argument("--rate", type=float, default=10.0, help="messages delivered per second")
    parser.add_argument("--duration", type=float,
                        help="seconds of deliveries when --messages is not given (default: 60, or longer at scale: "
                             "2.5 x (kills + 1) x a worker's BALs / --operator-rate, room for each takeover and join)")
    parser.add_argument("--connect-rate", type=float, default=100.0, help="connections per second per worker")
    parser.add_argument("--operator-rate", type=float, default=100.0,
                        help="connections per second toward the operator, whole fleet")
    parser.add_argument("--operator-burst", type=int, default=20)
    parser.add_argument("--lease-ttl", type=float, default=LEASE_TTL, help="seconds (takeover takes about this)")
    parser.add_argument("--presence-grace", type=float, default=1.0,
                        help="the workers' fast failure detector (s a presence connection is gone); 0: lease TTL only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip Mailbox.watch in one process (a bounded try at 10,000 BALs)")
    args = parser.parse_args(argv)
    args.bals = args.bals or max(20, round(10_000 * args.scale))
    if not args.messages:
        duration = args.duration or max(60.0, 2.5 * (args.kills + 1) * args.bals / args.workers / args.operator_rate)
        args.messages = max(1, round(duration * args.rate))
    if args.workers < 2:
        parser.error("--workers must be at least 2 (one is killed)")
    return args


_KEYS = ("bals", "workers", "delivered", "published", "missed", "duplicated", "takeover_s_max", "takeovers_s",
         "watched_again_s", "p50_ms", "p99_ms",
         "p50_ms_steady", "p99_ms_steady", "messages_moved", "p50_ms_moved", "p99_ms_moved", "messages_handover",
         "p99_ms_handover", "messages_outage", "p50_ms_outage", "p99_ms_outage", "reconnected_s_p50",
         "reconnected_s_max", "outage_share_pct", "delivering_s", "rss_mib_per_1000_bals",
         "rss_mib_per_1000_bals_marginal",
         "rss_mib_worker_empty", "rss_mib_worker_loaded", "ready_s",
         "max_connects_per_s", "max_logins_per_s", "connect_limit_per_s")


def report_rows(scale: float = 1.0) -> list[Row]:
    """The fleet's rows of the performance report: 200 BALs x scale, 2 workers, 1 kill (about a minute).

    Raises:
        DovecotUnavailable: Dovecot is not installed.
    """
    bals = max(20, round(200 * scale))
    args = _options(["--bals", str(bals), "--workers", "2", "--kills", "1", "--duration", "20"])
    fleet, base = asyncio.run(run(args))
    extra = {"fleet": {k: fleet.get(k) for k in _KEYS}, "baseline": {k: base.get(k) for k in _KEYS},
             "load": _load()}
    return [
        Row("fleet.p99_ms", f"fleet p99 delivery → stream, {bals} BALs, 1 SIGKILL", fleet["p99_ms"], "ms",
            "Mailbox.watch, one process", base["p99_ms"], goal=1000, higher_is_better=False, extra=extra),
        Row("fleet.p99_steady_ms", f"fleet p99 delivery → stream, {bals} BALs, BALs not moving",
            fleet["p99_ms_steady"], "ms", "Mailbox.watch, one process", base["p99_ms"], goal=1000,
            higher_is_better=False),
        Row("fleet.takeover_s", f"takeover after SIGKILL (presence grace {args.presence_grace:g} s, lease TTL "
            f"{args.lease_ttl:g} s)", fleet["takeover_s_max"], "s", goal=5, higher_is_better=False),
        Row("fleet.rss_mib_per_1000", "worker RSS per 1,000 BALs (second half of the start)",
            fleet["rss_mib_per_1000_bals_marginal"] or 0.0, "MiB", "Mailbox.watch, one process",
            base["rss_mib_per_1000_bals_marginal"], goal=60, higher_is_better=False),
        Row("fleet.missed_plus_duplicated", "messages missed + duplicated", fleet["missed"] + fleet["duplicated"],
            "messages", "Mailbox.watch, one process", base["missed"] + base["duplicated"], goal=0,
            higher_is_better=False),
    ]


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1] in ("--worker-child", "--baseline-child"):
        child = _worker_child if sys.argv[1] == "--worker-child" else _baseline_child
        config = json.loads(sys.stdin.readline())
        profile = os.environ.get("BENCH_FLEET_PROFILE")  # a directory: cProfile of each child stopped cleanly
        if not profile:
            asyncio.run(child(config))
            return
        import cProfile

        with cProfile.Profile() as profiler:
            asyncio.run(child(config))
        profiler.dump_stats(Path(profile) / f"{config.get('id', 'baseline')}.prof")
        return
    args = _options()
    print(f"bench_fleet: {args.bals} BALs, {args.workers} workers, {args.kills} kills, {args.messages} messages; "
          f"{_load()}", flush=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: where the parent is, on stderr
    asyncio.run(run(args, _print_report))
    faulthandler.cancel_dump_traceback_later()


def _print_report(fleet: dict[str, Any], baseline: dict[str, Any]) -> None:
    """The figures, ending with the JSON line, printed as soon as measured (before the servers stop)."""
    for label, counts in fleet["distributions"]:
        print(f"  BALs per worker, {label}: {counts}")
    for worker, figures in fleet.get("worker_figures", {}).items():
        print(f"  worker {worker}: {figures}")
    for key in ("redis_steady", "redis_whole_run"):
        print(f"  Redis, {key.removeprefix('redis_').replace('_', ' ')}: {fleet.get(key)}")
    for group, spans in fleet["breakdown"].items():
        print(f"  where the time went, {group} BALs (ms): {spans}")
    print(f"{'':24}{'fleet':>12}{'Mailbox.watch':>16}")
    for key in _KEYS:
        print(f"{key:24}{fleet.get(key)!s:>12}{baseline.get(key)!s:>16}")
    print(f"after: {_load()}")
    print(json.dumps({**{k: v for k, v in fleet.items() if k != "distributions"}, "baseline": baseline}), flush=True)


if __name__ == "__main__":
    main()
