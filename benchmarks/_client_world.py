"""What the client benchmarks share: a sandbox and a Dovecot in other processes, mailboxes, rounds.

Not a benchmark. The sandbox runs as ``mssante sandbox up`` in a child process (its
``sandbox.json`` says where it listens); Dovecot through ``tests/interop/dovecot.py``, started
from another child process that also runs its relay sink, with the sandbox's PKI and mock PSC.
The client under measurement is alone in this process.
"""

from __future__ import annotations

import contextlib
import cProfile
import dataclasses
import io
import json
import multiprocessing
import os
import pstats
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The client under measurement: this checkout's, or another one's ``src`` (a "before" figure).
CLIENT_SRC = Path(os.environ.get("MSSANTE_CLIENT_SRC", str(ROOT / "src")))
for _path in (str(ROOT), str(Path(__file__).resolve().parent), str(CLIENT_SRC)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from mssante.client import ConnectionSettings, Mailbox, MailboxOptions, TrustSettings  # noqa: E402
from mssante.credentials import ClientCertificate  # noqa: E402
from mssante.discovery import DNSPythonResolver, ManualServers  # noqa: E402
from mssante.trust import CRLCache  # noqa: E402

SENDER, RECIPIENT = "dpi.hopital@mss.sandbox.test", "sil.labo@mss.sandbox.test"


def rss_kib() -> int:
    """This process's resident memory now (``VmRSS``), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _config_toml(extra_app_bals: int) -> str:
    from mssante.sandbox.config import default_config

    config = default_config()
    rows = [dataclasses.asdict(b) for b in config.bals]
    rows += [{"address": f"app{i:05d}@{config.domain}", "kind": "APP", "structure_id": "1750000001"}
             for i in range(extra_app_bals)]
    out = []
    for row in rows:
        out.append("[[bals]]")
        out += [f"{k} = {_toml_value(v)}" for k, v in row.items() if v is not None and v != ()]
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def sandbox_process(extra_app_bals: int = 0, timeout: float = 120.0) -> Iterator[dict[str, Any]]:
    """``mssante sandbox up`` in a child process; yields its ``sandbox.json``; SIGINT at the end."""
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        state = Path(tmp) / "state"
        config = Path(tmp) / "sandbox.toml"
        config.write_text(_config_toml(extra_app_bals), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.Popen([sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir", str(state),
                                 "--config", str(config)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=tmp)
        try:
            deadline = time.monotonic() + timeout
            info_file = state / "sandbox.json"
            while not info_file.exists():  # the sandbox writes it atomically once every front listens
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise SystemExit(f"the sandbox did not start: {err[-2000:]}")
                time.sleep(0.1)
            info = json.loads(info_file.read_text(encoding="utf-8"))
            info["_pid"] = proc.pid
            info["_state_dir"] = str(state)
            yield info
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def bal(info: dict[str, Any], address: str) -> dict[str, Any]:
    """The ``sandbox.json`` entry of one BAL."""
    return next(b for b in info["bals"] if b["address"] == address)


def client_context(ca_bundle: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """A plain client context for the baselines (TLS >= 1.2, the sandbox CA, an APP certificate)."""
    ctx = ssl.create_default_context(cafile=ca_bundle)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


_resolvers: dict[tuple[str, int], DNSPythonResolver] = {}


def sandbox_resolver(info: dict[str, Any]) -> DNSPythonResolver:
    """One resolver on the sandbox DNS, shared by every mailbox (as an LPS would share it)."""
    where = (info["dns"]["host"], info["dns"]["port"])
    if where not in _resolvers:
        _resolvers[where] = DNSPythonResolver(nameservers=[where[0]], port=where[1])
    return _resolvers[where]


_shared: dict[tuple[Any, ...], Any] = {}


def _once(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """One object per key: an LPS builds its settings and certificates once, not once per BAL."""
    if key not in _shared:
        _shared[key] = build()
    return _shared[key]


def sandbox_mailbox(info: dict[str, Any], address: str, *, cert_of: str | None = None, crls: CRLCache | None = None,
                    resolve: bool = True, **options: Any) -> Mailbox:
    """A BAL APP mailbox on the sandbox, discovered through the sandbox DNS (SRV, and A unless ``resolve``).

    Settings, trust and certificate objects are shared by the mailboxes that have the same ones.
    """
    entry = bal(info, cert_of or address)
    names = [info[p][f]["host"] for p in ("imap", "smtp") for f in ("psc", "authcli")]
    where = (info["dns"]["host"], info["dns"]["port"])
    credentials = _once(("cert", entry["cert"]),
                        lambda: ClientCertificate(cert=Path(entry["cert"]), key=Path(entry["key"])))
    tls = _once(("trust", where, id(crls)), lambda: TrustSettings(ca_bundle=Path(info["ca_bundle"]), crls=crls))
    opts = _once(("options", where, resolve, tuple(sorted(options.items()))), lambda: MailboxOptions(
        connection=ConnectionSettings(resolve=dict.fromkeys(names, "127.0.0.1") if resolve else {}), **options))
    return Mailbox(address, kind="APP", credentials=credentials, resolver=sandbox_resolver(info), tls=tls,
                   product_reference="DEV000001", options=opts)


def _serve_dovecot(conn: Any, state_dir: str, psc: dict[str, Any], deliver: bool) -> None:
    """In a child process: start Dovecot and its relay sink, send the ports, stop when told."""
    from tests.interop.dovecot import DovecotServer

    from mssante.sandbox.config import default_config
    from mssante.sandbox.pki import TestPKI

    pki = TestPKI.load_or_create(Path(state_dir) / "pki", server_names=default_config().server_names)
    server = DovecotServer(pki=pki, introspection_url=psc["issuer"] + "/protocol/openid-connect/token/introspect",
                           client_id=psc["client_id"], client_secret=psc["client_secret"], special_use=True,
                           login_service_count=0, deliver=deliver)
    try:
        server.start()
    except Exception as exc:
        conn.send({"error": repr(exc)})
        return
    try:
        conn.send({"imap_port": server.imap_port, "submission_port": server.submission_port})
        conn.recv()  # anything, or EOF: stop
    except EOFError:
        pass
    finally:
        server.stop()


@contextlib.contextmanager
def dovecot(info: dict[str, Any], *, deliver: bool = True, timeout: float = 120.0) -> Iterator[Any]:
    """Dovecot 2.3 (tests/interop) as a second operator, trusting the sandbox PKI; None when not installed.

    Started from a child Python process, with the aiosmtpd sink its submission relays to: the
    sink's thread stays out of the process under measurement. ``deliver=False`` keeps the sink
    from delivering to Maildirs over LMTP. Yields an object with ``imap_port`` and
    ``submission_port``.
    """
    from tests.interop.dovecot import dovecot_available

    if dovecot_available() is not None:
        yield None
        return
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_dovecot, args=(child, info["_state_dir"], info["psc"], deliver),
                       name="bench-dovecot", daemon=True)
    proc.start()
    try:
        if not parent.poll(timeout):
            raise SystemExit("Dovecot did not start in time")
        ports = parent.recv()
        if "error" in ports:
            raise SystemExit(f"Dovecot did not start: {ports['error']}")
        yield types.SimpleNamespace(**ports, pid=proc.pid)
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(10)


def dovecot_mailbox(info: dict[str, Any], server: Any, address: str, **options: Any) -> Mailbox:
    """A BAL APP mailbox on Dovecot (manual servers; the certificate names the sandbox's fronts)."""
    entry = bal(info, address)
    host = info["imap"]["authcli"]["host"]  # Dovecot serves the sandbox's server certificate
    servers = ManualServers(imap=(host, server.imap_port), submission=(info["smtp"]["authcli"]["host"],
                                                                      server.submission_port))
    connection = ConnectionSettings(resolve={host: "127.0.0.1", info["smtp"]["authcli"]["host"]: "127.0.0.1"})
    return Mailbox(address, kind="APP", credentials=ClientCertificate(cert=Path(entry["cert"]), key=Path(entry["key"])),
                   servers=servers, tls=TrustSettings(ca_bundle=Path(info["ca_bundle"])),
                   product_reference="DEV000001", options=MailboxOptions(connection=connection, **options))


async def interleaved(rounds: int, ours: Callable[[], Awaitable[float]],
                      baseline: Callable[[], Awaitable[float]]) -> tuple[float, float, list[float], list[float]]:
    """Run ``ours`` and ``baseline`` alternately ``rounds`` times; their medians and every round's figure."""
    mine: list[float] = []
    theirs: list[float] = []
    for i in range(rounds):
        first, second = (ours, baseline) if i % 2 == 0 else (baseline, ours)  # neither always goes first
        a = await first()
        b = await second()
        mine.append(a if first is ours else b)
        theirs.append(b if first is ours else a)
    return statistics.median(mine), statistics.median(theirs), mine, theirs


def profile_text(profile: cProfile.Profile, top: int = 25) -> str:
    """The ``top`` functions of a profile by their own time, as text."""
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()
