"""Start every sandbox service on loopback and publish ``sandbox.json``.

:class:`Sandbox` is an async context manager: ``async with Sandbox(config, state_dir) as sb``
binds every socket, starts the test PKI, the mock PSC and the HTTP server (PSC, CRLs, API), the
authoritative DNS and the API LPS fronts, then writes ``state_dir/sandbox.json`` atomically.
Leaving the block stops them all.

One sandbox per state directory: ``state_dir/sandbox.lock`` is locked (``flock``; a byte range
with ``msvcrt.locking`` on Windows) for the sandbox's whole life and names its PID and webmail
URL. A second sandbox on the same directory reads them, refuses with :class:`SandboxRunning`
and touches nothing; the lock dies with its process, so a crashed sandbox never blocks the next.

``sandbox.json`` is a contract (extend it, never rename): every path in it is absolute, every
HTTP URL uses 127.0.0.1, and the IMAP/SMTP host names resolve to 127.0.0.1 through the sandbox
DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.errors import ConfigError, TransportError
from mssante.sandbox.annuaire import annuaire_info
from mssante.sandbox.api.faults import bench_faults
from mssante.sandbox.config import SandboxConfig
from mssante.sandbox.dns import DNSResponder, FrontPorts, build_zone
from mssante.sandbox.fronts._adapters import PKICertificateChecker, PSCTokenVerifier
from mssante.sandbox.fronts.authz import AccessDecider, TokenVerifier
from mssante.sandbox.fronts.delivery import Responder
from mssante.sandbox.fronts.faults import BadServerCertificate, Faults
from mssante.sandbox.fronts.imap import IMAPFront
from mssante.sandbox.fronts.introspect import IntrospectionTokenVerifier
from mssante.sandbox.fronts.journal import Journal
from mssante.sandbox.fronts.smtp import SubmissionFront, SubmissionOptions
from mssante.sandbox.fronts.store import MAIL_DB, MailStore, remove_mail_state
from mssante.sandbox.http import SandboxHTTP
from mssante.sandbox.pki import IssuedCert, TestPKI
from mssante.sandbox.psc import MockPSC
from mssante.secret import Secret

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

__all__ = ["LOCK_FILE", "STATE_FILE", "Sandbox", "SandboxRunning"]

log = logging.getLogger(__name__)

STATE_FILE = "sandbox.json"
LOCK_FILE = "sandbox.lock"
_WINDOWS_LOCK_OFFSET = 1 << 20
_P = TypeVar("_P")
_PORTS_FILE = "ports.json"
#: The session journal of a persistent sandbox (JSON Lines, one session per line).
JOURNAL_FILE = "journal.jsonl"
REALM_PATH = "/auth/realms/esante-wallet"


async def _abandonable(fn: Callable[..., _P], *args: Any) -> _P:
    """``fn(*args)`` in a daemon thread; cancelling the caller abandons it instead of waiting.

    ``asyncio.to_thread`` runs in the default executor, which ``asyncio.run`` joins before the
    process may exit: a Ctrl-C during the PKI's key generation then waited for every key (seconds
    on a loaded machine). The PKI writes its index last, so work abandoned at exit leaves a
    directory the next start completes or recreates.

    Raises:
        Whatever ``fn`` raises.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_P] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():  # the caller was cancelled
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, which raises it
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=f"sandbox-{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return await done


async def _on_sticky_port(start: Callable[[int], Awaitable[_P]], pinned: int, last: int, what: str) -> _P:
    """Start a service on its pinned port, else on the port of the last run, else on a free one.

    A port of the last run that another program took meanwhile is given up (with a warning)
    rather than failing the start; a pinned port that is busy fails it.

    Raises:
        ConfigError, TransportError, OSError: the pinned port (or a free one) cannot be bound.
    """
    if pinned or not last:
        return await start(pinned)
    try:
        return await start(last)
    except (ConfigError, TransportError, OSError):  # the submission front says ConfigError ("cannot listen")
        log.warning("%s: port %d of the last run is taken; a new port is chosen", what, last)
        return await start(0)


def _bind_tcp(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename.

    Raises:
        OSError: the directory is not writable.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SandboxRunning(ConfigError):
    """Another sandbox runs on this state directory (it holds ``sandbox.lock``).

    Attributes:
        pid: its process id, when it wrote it (0 otherwise).
        webmail_url: its webmail, once it started serving ("" before).
    """

    error = "sandbox_running"

    def __init__(self, state_dir: Path, pid: int, webmail_url: str) -> None:
        """Say where the running sandbox is, in French (a CLI message)."""
        where = f"webmail {webmail_url}" if webmail_url else "en cours de démarrage"
        who = f"PID {pid}" if pid else "PID inconnu"
        super().__init__(
            f"un bac à sable tourne déjà sur le répertoire d'état {state_dir} ({where}, {who}). "
            "Utilisez-le, arrêtez-le (Ctrl-C dans son terminal"
            + (f", ou kill {pid}" if pid else "") + "), ou choisissez un autre --state-dir. Rien n'a été modifié.")
        self.pid = pid
        self.webmail_url = webmail_url


class _InstanceLock:
    """``state_dir/sandbox.lock``, held with ``flock`` for the life of one sandbox."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or say who has it; nothing else in the directory is touched.

        Raises:
            SandboxRunning: another process holds the lock.
            ConfigError: the lock file cannot be opened.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            _lock_now(fd)
        except OSError:
            holder = self._read(fd)
            os.close(fd)
            pid, url = holder.get("pid"), holder.get("webmail_url")
            raise SandboxRunning(self.state_dir, pid if isinstance(pid, int) else 0,
                                 url if isinstance(url, str) else "") from None
        self._fd = fd
        self.describe({})

    def describe(self, info: dict[str, Any]) -> None:
        """Write this process's PID and, once known, its webmail URL into the held lock file.

        Raises:
            Nothing: the lock matters, its description is a courtesy.
        """
        if self._fd is None:
            return
        data = json.dumps({"pid": os.getpid(), "webmail_url": info.get("webmail_url", "")}).encode()
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, data)

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            data = json.loads(os.read(fd, 4096) or b"{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        """Empty and unlock the file (left in place: removing it would race with the next sandbox)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock


def _lock_now(fd: int) -> None:
    """Lock ``fd`` exclusively without waiting; OSError when another process holds it."""
    if sys.platform == "win32":
        # One byte far past the description, which stays readable by the process that is refused.
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


@dataclass
class Sandbox:
    """The whole sandbox operator, for one configuration and one state directory.

    Attributes set once started: :attr:`info` (the ``sandbox.json`` content), :attr:`pki`,
    :attr:`psc`, :attr:`journal`, :attr:`faults`, :attr:`client_certs` (structure id →
    issued ORG AUTH_CLI certificate).
    """

    config: SandboxConfig
    state_dir: Path
    journal: Journal = field(default_factory=Journal)
    faults: Faults = field(default_factory=Faults)
    info: dict[str, Any] = field(default_factory=dict)
    client_certs: dict[str, IssuedCert] = field(default_factory=dict)
    #: Automatic responders by address, plugged into both submission fronts (see
    #: :mod:`mssante.sandbox.fronts.delivery`). The XDM auto-responder is added at start.
    responders: dict[str, Responder] = field(default_factory=dict)
    #: Keep mailboxes, messages and flags in ``state_dir/mail.sqlite3`` across runs (``mssante
    #: sandbox up`` does); otherwise every start has empty mailboxes (tests, conformance runs).
    persist_mail: bool = False
    #: With :attr:`persist_mail`: start with empty mailboxes and journal (``sandbox up --reset``);
    #: done once this instance holds the state directory's lock, never to a running sandbox.
    reset: bool = False
    #: Set at start: whether :attr:`reset` found something to empty.
    was_reset: bool = False
    #: The mock PSC's time (token lifetimes, SSO limits); tests give a FakeClock.
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.expanduser().resolve()
        self._stack = contextlib.AsyncExitStack()
        self._pki: TestPKI | None = None
        self._psc: MockPSC | None = None
        self._store: MailStore | None = None
        self.fronts: dict[str, IMAPFront | SubmissionFront] = {}
        self.http: SandboxHTTP | None = None
        #: The authoritative DNS (its :attr:`~DNSResponder.queries` journal feeds the conformance bench).
        self.dns: DNSResponder | None = None
        self._bad_contexts: dict[tuple[BadServerCertificate, bool], ssl.SSLContext] = {}
        self._bad_lock = threading.Lock()

    @property
    def pki(self) -> TestPKI:
        """The test PKI (available once started)."""
        if self._pki is None:
            raise RuntimeError("the sandbox is not started")
        return self._pki

    @property
    def psc(self) -> MockPSC:
        """The mock Pro Santé Connect (available once started)."""
        if self._psc is None:
            raise RuntimeError("the sandbox is not started")
        return self._psc

    @property
    def store(self) -> MailStore:
        """The mailbox store of every BAL (available once started)."""
        if self._store is None:
            raise RuntimeError("the sandbox is not started")
        return self._store

    @property
    def state_file(self) -> Path:
        """Path of ``sandbox.json``."""
        return self.state_dir / STATE_FILE

    def _saved_ports(self) -> dict[str, int]:
        """The ports of the last run of this state directory (``ports.json``); {} on a first run."""
        try:
            saved = json.loads((self.state_dir / _PORTS_FILE).read_text(encoding="utf-8"))
            return {str(k): int(v) for k, v in saved.items() if isinstance(v, int) and 0 < v < 65536}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def _sticky_http_port(self) -> int:
        # Certificates carry the CRL URL, so the HTTP port chosen on the first run is kept.
        if self.config.ports.http:
            return self.config.ports.http
        return self._saved_ports().get("http", 0)

    async def __aenter__(self) -> Sandbox:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every service, remove ``sandbox.json`` and release the state directory (idempotent)."""
        await self._stack.aclose()

    def _forget_state_file(self) -> None:
        with contextlib.suppress(OSError):
            self.state_file.unlink()

    async def _start(self) -> None:
        cfg = self.config
        host = cfg.host
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create the state directory {self.state_dir}: {exc.strerror}") from exc
        lock = _InstanceLock(self.state_dir)
        lock.acquire()  # before anything else: a running sandbox's files are left alone
        self._stack.callback(lock.release)
        self._stack.callback(self._forget_state_file)
        with contextlib.suppress(OSError):
            self.state_file.unlink()  # ours now: a stale file would lie about what listens
        if self.reset:
            self.was_reset = remove_mail_state(self.state_dir)
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / JOURNAL_FILE).unlink()
                self.was_reset = True

        wanted = self._sticky_http_port()
        try:
            http_sock = _bind_tcp(host, wanted)
        except TransportError as exc:
            if wanted and not cfg.ports.http:
                raise ConfigError(
                    f"port {wanted} is busy; this state directory's certificates publish their CRLs there. "
                    "Stop what uses it, or start with a new --state-dir."
                ) from exc
            raise
        self._stack.callback(http_sock.close)
        http_port = http_sock.getsockname()[1]
        base_url = f"http://{host}:{http_port}"
        # Kept before the PKI is created: its certificates carry this URL, even if the start is interrupted.
        write_json_atomically(self.state_dir / _PORTS_FILE, {**self._saved_ports(), "http": http_port})

        pki = await _abandonable(functools.partial(
            TestPKI.load_or_create, self.state_dir / "pki", server_names=cfg.server_names, crl_base_url=base_url
        ))
        self._pki = pki
        # Issued now (once per state directory): the revoked one must be in the CRL before an LPS caches it.
        await _abandonable(pki.ensure_bad_server_certs)
        for structure in cfg.structures:
            if any(b.kind == "APP" and b.structure_id == structure.national_id for b in cfg.bals):
                self.client_certs[structure.national_id] = await _abandonable(
                    pki.issue_client_cert, structure, f"LPS {structure.name}"[:64]
                )

        issuer = base_url + REALM_PATH
        self._psc = MockPSC(cfg, issuer=issuer, state_dir=self.state_dir / "psc", clock=self.clock)
        http = self.http = SandboxHTTP(self)
        await http.start(http_sock)
        self._stack.push_async_callback(http.aclose)

        saved = self._saved_ports()
        front_ports = await self._start_fronts(pki, issuer, saved)
        dns_server = self.dns = DNSResponder(build_zone(cfg.domain, host, front_ports))
        dns_host, dns_port = await _on_sticky_port(
            lambda port: dns_server.start(host, port), cfg.ports.dns, saved.get("dns", 0), "DNS"
        )
        self._stack.push_async_callback(dns_server.aclose)
        # Ports stay the same across restarts of one state directory, so an LPS configured
        # against this sandbox keeps working (unless pinned otherwise in the configuration).
        write_json_atomically(self.state_dir / _PORTS_FILE,
                              {"http": http_port, **dataclasses.asdict(front_ports), "dns": dns_port})

        self.info = self._describe(base_url, issuer, dns_host, dns_port, front_ports)
        write_json_atomically(self.state_file, self.info)
        lock.describe(self.info)

    def _token_verifier(self, issuer: str) -> TokenVerifier:
        if self.config.token_check == "local":  # noqa: S105 - a mode name, not a password
            return PSCTokenVerifier(self.psc)
        client = self.config.clients[0] if self.config.clients else None
        if client is None:
            raise ConfigError("token_check = 'introspection' needs a registered PSC client")
        url = issuer + "/protocol/openid-connect/token/introspect"
        return IntrospectionTokenVerifier(url, client.client_id, Secret(client.client_secret))

    async def _start_fronts(self, pki: TestPKI, issuer: str, saved: dict[str, int]) -> FrontPorts:
        cfg, host = self.config, self.config.host
        store = MailStore(cfg, path=self.state_dir / MAIL_DB if self.persist_mail else None)
        if self.persist_mail:  # the journal lives as long as the mailboxes
            await asyncio.to_thread(self.journal.persist_to, self.state_dir / JOURNAL_FILE)
        self._stack.callback(store.close)
        await store.start()
        self._store = store
        self._install_responders()
        decider = AccessDecider(cfg, self._token_verifier(issuer), PKICertificateChecker(pki), self.faults)
        self.faults.bad_context_factory = self._bad_server_context
        psc_ctx = pki.server_ssl_context(require_client_cert=False)
        cli_ctx = pki.server_ssl_context(require_client_cert=True)
        for context in (psc_ctx, cli_ctx):  # the conformance bench reads the SNI and ClientHello of each handshake
            bench_faults(self).watch(context)
        common = (cfg, decider, self.journal, self.faults, store)
        submission = SubmissionOptions(auth_line_limit=cfg.smtp_auth_line_limit or None,
                                       pipelining=cfg.submission.pipelining, chunking=cfg.submission.chunking,
                                       report_lang=cfg.submission.report_lang)
        wanted: dict[str, tuple[IMAPFront | SubmissionFront, int]] = {
            "imap_psc": (IMAPFront(*common, psc_ctx, front="psc"), cfg.ports.imap_psc),
            "imap_authcli": (IMAPFront(*common, cli_ctx, front="authcli"), cfg.ports.imap_authcli),
            "smtp_psc": (
                SubmissionFront(*common, psc_ctx, front="psc", responders=self.responders, options=submission),
                cfg.ports.smtp_psc
            ),
            "smtp_authcli": (
                SubmissionFront(*common, cli_ctx, front="authcli", responders=self.responders, options=submission),
                cfg.ports.smtp_authcli,
            ),
        }
        ports: dict[str, int] = {}
        for name, (front, port) in wanted.items():
            ports[name] = await _on_sticky_port(functools.partial(front.start, host), port, saved.get(name, 0), name)
            self._stack.push_async_callback(front.aclose)
            self.fronts[name] = front
        return FrontPorts(**ports)

    def _bad_server_context(self, kind: BadServerCertificate, require_client_cert: bool) -> ssl.SSLContext:
        """The server context of the ``bad_server_certificate`` fault, built on first use and kept.

        Runs in a worker thread (see :meth:`Faults.tls_context`), hence the lock.

        Raises:
            ConfigError: the certificate cannot be issued or loaded.
        """
        with self._bad_lock:
            key = (kind, require_client_cert)
            if key not in self._bad_contexts:
                self._bad_contexts[key] = self.pki.bad_server_ssl_context(kind, require_client_cert)
            return self._bad_contexts[key]

    def _install_responders(self) -> None:
        if not self.config.responders:
            return
        from mssante.sandbox.responder import xdm_responder

        for address, kind in self.config.responders:
            self.responders.setdefault(address.lower(), xdm_responder(self.config, kind))

    def _describe(
        self, base_url: str, issuer: str, dns_host: str, dns_port: int, ports: FrontPorts
    ) -> dict[str, Any]:
        cfg = self.config
        client = cfg.clients[0] if cfg.clients else None
        bals = []
        for bal in cfg.bals:
            cert = self.client_certs.get(bal.structure_id or "") if bal.kind == "APP" else None
            bals.append({
                "address": bal.address,
                "kind": bal.kind,
                "holders": list(bal.holders),
                "structure_id": bal.structure_id,
                "cert": str(cert.cert_path) if cert else None,
                "key": str(cert.key_path) if cert else None,
            })
        return {
            "domain": cfg.domain,
            "ca_bundle": str(self.pki.ca_bundle_path),
            "dns": {"host": dns_host, "port": dns_port},
            "psc": {
                "issuer": issuer,
                "discovery_url": issuer + "/.well-known/wallet-openid-configuration",
                "client_id": client.client_id if client else None,
                "client_secret": client.client_secret if client else None,
                "access_token_lifetime": cfg.lifetimes.access_token,
            },
            "imap": {
                "psc": {"host": cfg.host_name("imap", "psc"), "port": ports.imap_psc},
                "authcli": {"host": cfg.host_name("imap", "authcli"), "port": ports.imap_authcli},
            },
            "smtp": {
                "psc": {"host": cfg.host_name("smtp", "psc"), "port": ports.smtp_psc},
                "authcli": {"host": cfg.host_name("smtp", "authcli"), "port": ports.smtp_authcli},
            },
            "crl_urls": [self.pki.crl_url(name) for name in self.pki.crl_names if name.endswith(".crl")],
            "webmail_url": base_url + "/",
            "api_url": base_url + "/api",
            "annuaire": annuaire_info(base_url),
            "professionals": [
                {"national_id": p.national_id, "given_name": p.given_name, "family_name": p.family_name,
                 **({"ciba": "deny"} if p.ciba == "deny" else {})}
                for p in cfg.professionals
            ],
            "bals": bals,
        }
