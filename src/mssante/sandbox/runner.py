"""Start every sandbox service on loopback and publish ``sandbox.json``.

:class:`Sandbox` is an async context manager: ``async with Sandbox(config, state_dir) as sb``
binds every socket, starts the test PKI, the mock PSC and the HTTP server (PSC, CRLs, API), the
authoritative DNS and the API LPS fronts, then writes ``state_dir/sandbox.json`` atomically.
Leaving the block stops them all.

``sandbox.json`` is a contract (extend it, never rename): every path in it is absolute, every
HTTP URL uses 127.0.0.1, and the IMAP/SMTP host names resolve to 127.0.0.1 through the sandbox
DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mssante.errors import ConfigError, TransportError
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
from mssante.sandbox.fronts.store import MailStore
from mssante.sandbox.http import SandboxHTTP
from mssante.sandbox.pki import IssuedCert, TestPKI
from mssante.sandbox.psc import MockPSC
from mssante.secret import Secret

__all__ = ["STATE_FILE", "Sandbox"]

log = logging.getLogger(__name__)

STATE_FILE = "sandbox.json"
_PORTS_FILE = "ports.json"
REALM_PATH = "/auth/realms/esante-wallet"


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

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.expanduser().resolve()
        self._stack = contextlib.AsyncExitStack()
        self._pki: TestPKI | None = None
        self._psc: MockPSC | None = None
        self._store: MailStore | None = None
        self.fronts: dict[str, IMAPFront | SubmissionFront] = {}
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

    def _sticky_http_port(self) -> int:
        # Certificates carry the CRL URL, so the HTTP port chosen on the first run is kept.
        if self.config.ports.http:
            return self.config.ports.http
        try:
            saved = json.loads((self.state_dir / _PORTS_FILE).read_text(encoding="utf-8"))
            return int(saved["http"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

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
        """Stop every service (idempotent)."""
        await self._stack.aclose()
        with contextlib.suppress(OSError):
            self.state_file.unlink()

    async def _start(self) -> None:
        cfg = self.config
        host = cfg.host
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create the state directory {self.state_dir}: {exc.strerror}") from exc
        with contextlib.suppress(OSError):
            self.state_file.unlink()  # a stale file would lie about what listens

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
        write_json_atomically(self.state_dir / _PORTS_FILE, {"http": http_port})
        base_url = f"http://{host}:{http_port}"

        pki = await asyncio.to_thread(
            TestPKI.load_or_create, self.state_dir / "pki", server_names=cfg.server_names, crl_base_url=base_url
        )
        self._pki = pki
        # Issued now (once per state directory): the revoked one must be in the CRL before an LPS caches it.
        await asyncio.to_thread(pki.ensure_bad_server_certs)
        for structure in cfg.structures:
            if any(b.kind == "APP" and b.structure_id == structure.national_id for b in cfg.bals):
                self.client_certs[structure.national_id] = await asyncio.to_thread(
                    pki.issue_client_cert, structure, f"LPS {structure.name}"[:64]
                )

        issuer = base_url + REALM_PATH
        self._psc = MockPSC(cfg, issuer=issuer, state_dir=self.state_dir / "psc")
        http = SandboxHTTP(self)
        await http.start(http_sock)
        self._stack.push_async_callback(http.aclose)

        front_ports = await self._start_fronts(pki, issuer)
        dns_server = DNSResponder(build_zone(cfg.domain, host, front_ports))
        dns_host, dns_port = await dns_server.start(host, cfg.ports.dns)
        self._stack.push_async_callback(dns_server.aclose)

        self.info = self._describe(base_url, issuer, dns_host, dns_port, front_ports)
        write_json_atomically(self.state_file, self.info)

    def _token_verifier(self, issuer: str) -> TokenVerifier:
        if self.config.token_check == "local":  # noqa: S105 - a mode name, not a password
            return PSCTokenVerifier(self.psc)
        client = self.config.clients[0] if self.config.clients else None
        if client is None:
            raise ConfigError("token_check = 'introspection' needs a registered PSC client")
        url = issuer + "/protocol/openid-connect/token/introspect"
        return IntrospectionTokenVerifier(url, client.client_id, Secret(client.client_secret))

    async def _start_fronts(self, pki: TestPKI, issuer: str) -> FrontPorts:
        cfg, host = self.config, self.config.host
        store = MailStore(cfg)
        await store.start()
        self._store = store
        self._install_responders()
        decider = AccessDecider(cfg, self._token_verifier(issuer), PKICertificateChecker(pki), self.faults)
        self.faults.bad_context_factory = self._bad_server_context
        psc_ctx = pki.server_ssl_context(require_client_cert=False)
        cli_ctx = pki.server_ssl_context(require_client_cert=True)
        for context in (psc_ctx, cli_ctx):  # the conformance bench reads the SNI of each handshake
            context.sni_callback = bench_faults(self).record_sni
        common = (cfg, decider, self.journal, self.faults, store)
        submission = SubmissionOptions(auth_line_limit=cfg.smtp_auth_line_limit or None)
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
            ports[name] = await front.start(host, port)
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
            "professionals": [
                {"national_id": p.national_id, "given_name": p.given_name, "family_name": p.family_name,
                 **({"ciba": "deny"} if p.ciba == "deny" else {})}
                for p in cfg.professionals
            ],
            "bals": bals,
        }
