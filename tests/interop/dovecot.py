"""A real Dovecot 2.3 (Debian 12) on loopback, run as an independent API LPS operator.

Not a test module: tests and ``benchmarks/`` import :class:`DovecotServer`. It writes a
complete Dovecot configuration into a work directory, starts ``dovecot -F`` as an unprivileged
user, waits until IMAP and submission accept connections, and stops it cleanly.

What the configuration does (Dovecot 2.3.19 setting names; see doc.dovecot.org/2.3):

* **TLS.** ``ssl = required``, ``ssl_min_protocol = TLSv1.2``, the sandbox PKI's server
  certificate, ``ssl_ca`` = both sandbox CAs *and their CRLs* with ``ssl_require_crl = yes``
  (without a CRL per CA OpenSSL never marks a client certificate valid, and Dovecot then
  silently treats it as absent), ``ssl_verify_client_cert = yes``: a client certificate is
  asked for and verified, but a client without one still completes the handshake (the
  refusal happens at the SASL step, as on the sandbox's AUTH_CLI front).
* **PER/ORG BALs: SASL XOAUTH2 / OAUTHBEARER (RFC 7628) with a PSC access token.** Two passdbs:

  1. ``driver = oauth2``, ``introspection_mode = post``: Dovecot POSTs ``token=...`` to the
     mock PSC's RFC 7662 introspection endpoint with HTTP Basic client authentication (the
     credentials ride in the URL's userinfo) and requires ``active == "true"`` and the
     ``scope_all`` scope. Dovecot's own user/token binding compares ``username_format``
     expanded once with the login name and once with the token's ``username_attribute``;
     the login name is a BAL address and the token carries a national id, so that binding
     cannot hold here and ``username_format`` is a constant (the check becomes a no-op). The
     token's ``preferred_username`` (the national id) is exported as the passdb field
     ``mss_holder`` (``pass_attrs``), and the result rule ``continue-ok`` hands over to:
  2. ``driver = passwd-file`` keyed ``<national id>/<BAL address>`` (``username_format`` with
     ``%{passdb:mss_holder}``), one line per holder of each PER/ORG BAL of the
     :class:`~mssante.sandbox.config.SandboxConfig`. Because the password was already
     verified, this passdb only checks that the key exists: the national id must hold the
     BAL (owner of a PER BAL, a holder of an ORG BAL), as the sandbox's fronts decide.

* **APP BALs: TLS client certificate + SASL PLAIN (RFC 4616) with the BAL address as
  authcid** (password ignored, as on the sandbox). One passwd-file passdb restricted to
  ``mechanisms = plain`` whose path contains ``%{cert}``: it expands to ``valid`` only when
  OpenSSL verified the client certificate against ``ssl_ca`` (chain, validity, CRL), so
  ``appvalid.passwd`` (the APP BALs) is read with a valid certificate and the empty
  ``app.passwd`` otherwise. With ``auth_ssl_username_from_cert = yes`` and
  ``ssl_cert_username_field = OU`` Dovecot replaces the SASL user name with the certificate's
  OU (the IdNat_Struct) while ``%{orig_user}`` keeps the PLAIN authcid, so the key
  ``<OU>/<BAL address>`` binds the BAL to its structure; the entry's ``user=`` field then
  renames the session back to the BAL address.

* **Mailboxes and delivery.** A passwd-file userdb lists every BAL of the configuration
  (Maildir under ``<work>/mail/<address>/Maildir``). Submission relays
  (``submission_relay_host/port``) to :class:`RelaySink`, an in-process aiosmtpd server
  that records each message and hands recipients of the sandbox domain to Dovecot's own
  LMTP service (RFC 2033) on loopback, one transaction per recipient; so a message sent
  through Dovecot's submission lands in the recipient's Maildir and is readable over IMAP.

What Dovecot enforces, compared with the sandbox fronts: for tokens, only what introspection
reports (active, scope) plus the static holder map; it never looks at ``azp`` or at who the
token was issued to. For certificates, OpenSSL's verification (chain to the sandbox CAs,
validity, CRL, the ``ssl_client`` purpose, i.e. EKU clientAuth) plus the static OU -> BAL map;
not the IGC Santé subject layout. A certificate claiming the ORG CA's name with another key
makes OpenSSL fail hard and Dovecot abort the TLS handshake (not a SASL refusal). The CRLs are
read at start: after a revocation call :meth:`DovecotServer.reload`. And, Dovecot-wide, a
connection whose remote IP equals the local IP (loopback to loopback) counts as "secured", so
``ssl = required`` does not force STARTTLS for 127.0.0.1 clients
(login-common/client-common.c): clients must STARTTLS on their own, as the tests do.

Running as root (CI), the helper creates the system user ``mssante-dovecot`` once
(``useradd --system``) and starts the whole Dovecot (master included) as that user, in a
work directory it owns; running as another user, Dovecot runs as that user. Dovecot's
``service`` chroots are switched off because they need root.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from mssante.sandbox.config import SandboxConfig, default_config
from mssante.sandbox.pki import IssuedCert, TestPKI

__all__ = [
    "DOVECOT_BINARY",
    "DOVECOT_USER",
    "DebianPackages",
    "DovecotError",
    "DovecotServer",
    "DovecotUnavailable",
    "RelaySink",
    "RelayedMessage",
    "dovecot_available",
    "ensure_system_user",
    "skip_unless_dovecot",
]

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
LMTP_BINARY = Path("/usr/lib/dovecot/lmtp")
SUBMISSION_BINARY = Path("/usr/lib/dovecot/submission")
IMAP_BINARY = Path("/usr/lib/dovecot/imap")
#: Unprivileged account Dovecot runs as when the tests run as root.
DOVECOT_USER = "mssante-dovecot"
#: Debian 12 packages the interop tests need (scripts/test.sh installs them).
DebianPackages = ("dovecot-core", "dovecot-imapd", "dovecot-submissiond", "dovecot-lmtpd")
HOST = "127.0.0.1"
#: Dovecot creates UNIX sockets under base_dir; sun_path holds 108 bytes, the longest
#: relative socket name is ~30, so the work directory must stay short.
_MAX_WORK_DIR_LEN = 70


class DovecotError(RuntimeError):
    """Dovecot could not be configured or started; the message ends with the log tail."""


class DovecotUnavailable(DovecotError):
    """Dovecot (or one of its needed services) is not installed."""


def dovecot_available() -> str | None:
    """Return None when Dovecot and its IMAP, submission and LMTP services are installed, else why not."""
    for path, package in ((DOVECOT_BINARY, "dovecot-core"), (IMAP_BINARY, "dovecot-imapd"),
                          (SUBMISSION_BINARY, "dovecot-submissiond"), (LMTP_BINARY, "dovecot-lmtpd")):
        if not path.exists():
            return f"{path} is missing (Debian package {package})"
    return None


def skip_unless_dovecot() -> None:
    """``pytest.skip`` with the reason when Dovecot is not installed (call from a fixture or test)."""
    reason = dovecot_available()
    if reason is not None:
        import pytest  # only the tests need pytest; benchmarks get DovecotUnavailable instead

        pytest.skip(f"Dovecot not installed: {reason}")


def ensure_system_user(name: str = DOVECOT_USER) -> pwd.struct_passwd:
    """Return the account ``name``, creating it as a locked system user first if needed (root only).

    Idempotent and safe against a concurrent creation (``useradd`` exit status 9).

    Raises:
        DovecotError: the account is missing and cannot be created.
    """
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    if os.geteuid() != 0:
        raise DovecotError(f"user {name} does not exist and only root can create it")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "mssante interop tests (Dovecot)", name],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode not in (0, 9):  # 9: the user exists (created meanwhile)
        raise DovecotError(f"useradd {name} failed ({proc.returncode}): {proc.stderr.strip()}")
    return pwd.getpwnam(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------- relay sink


@dataclass
class RelayedMessage:
    """One message Dovecot's submission service relayed to the sink."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    #: recipient -> LMTP reply ("250 ..." when delivered to its Maildir); absent if not local.
    delivery: dict[str, str] = field(default_factory=dict)


class _RelayHandler:
    def __init__(self, sink: RelaySink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        message = RelayedMessage(mail_from=str(envelope.mail_from), rcpt_tos=[str(r) for r in envelope.rcpt_tos],
                                 content=bytes(content))
        failures: list[str] = []
        for rcpt in message.rcpt_tos:
            if self._sink.lmtp_port and rcpt.lower().endswith("@" + self._sink.local_domain):
                reply = await asyncio.to_thread(self._sink.deliver_lmtp, message.mail_from, rcpt, message.content)
                message.delivery[rcpt] = reply
                if not reply.startswith("2"):
                    failures.append(reply)
        self._sink.record(message)
        return failures[0] if failures else "250 relayed"


class RelaySink:
    """An aiosmtpd SMTP server on loopback, in its own thread: Dovecot submission's relay target.

    Records every relayed message in :attr:`messages`. When :attr:`lmtp_port` is set, each
    recipient in :attr:`local_domain` is delivered through LMTP (RFC 2033, one recipient per
    transaction so that the single DATA reply is that recipient's); a failed delivery turns
    into the DATA reply Dovecot's submission passes back to its client.
    """

    def __init__(self, local_domain: str) -> None:
        self.local_domain = local_domain.lower()
        self.lmtp_port = 0
        self.messages: list[RelayedMessage] = []
        self._cond = threading.Condition()
        self.port = 0  # bound by start()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    def record(self, message: RelayedMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RelayedMessage]:
        """Wait until at least ``count`` messages were relayed; return them all.

        Raises:
            TimeoutError: fewer messages arrived in time.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"{len(self.messages)} of {count} relayed messages after {timeout} s")
            return list(self.messages)

    def deliver_lmtp(self, mail_from: str, rcpt: str, content: bytes) -> str:
        """Deliver one message to one recipient over LMTP; return the reply as ``"<code> <text>"``."""
        try:
            with smtplib.LMTP(HOST, self.lmtp_port, local_hostname="relay-sink.localhost", timeout=10) as lmtp:
                lmtp.sendmail(mail_from, [rcpt], content)
            return "250 2.0.0 delivered"
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients[rcpt]
            return f"{code} {text.decode(errors='replace')}"
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            return f"{exc.smtp_code} {error.decode(errors='replace') if isinstance(error, bytes) else error}"
        except (OSError, smtplib.SMTPException) as exc:
            return f"451 4.4.0 LMTP delivery failed: {exc}"

    def start(self) -> None:
        from aiosmtpd.smtp import SMTP  # test extra; imported here so that importing this module stays cheap

        ready = threading.Event()
        errors: list[BaseException] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, 0))
        self._sock = sock
        self.port = int(sock.getsockname()[1])

        async def serve() -> None:
            handler = _RelayHandler(self)
            self._server = await asyncio.get_running_loop().create_server(
                lambda: SMTP(handler, hostname="relay-sink.localhost", decode_data=False),
                sock=sock,
            )

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())  # asyncio.to_thread workers
                loop.close()

        self._thread = threading.Thread(target=run, name="dovecot-relay-sink", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise DovecotError(f"relay sink failed to start: {errors[0]!r}")

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():

            async def close() -> None:
                if self._server is not None:
                    self._server.close()
                    await self._server.wait_closed()
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            with contextlib.suppress(RuntimeError, TimeoutError):
                asyncio.run_coroutine_threadsafe(close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._thread = self._loop = self._server = None


# --------------------------------------------------------------------------- Dovecot


@dataclass(frozen=True)
class _Account:
    name: str
    uid: int
    gid: int
    group: str


class DovecotServer:
    """A Dovecot 2.3 API LPS operator on 127.0.0.1, configured from a sandbox configuration.

    Usage (synchronous; from async code wrap ``start``/``stop`` in ``asyncio.to_thread``)::

        with DovecotServer(pki=pki, introspection_url=url, client_id=cid, client_secret=secret) as dc:
            imap = imaplib.IMAP4(dc.host, dc.imap_port); imap.starttls(dc.client_ssl_context())

    Attributes (valid once started): :attr:`imap_port` (IMAP, STARTTLS), :attr:`submission_port`
    (submission, STARTTLS), :attr:`lmtp_port`, :attr:`sink` (the relay target), :attr:`work_dir`.
    """

    host = HOST

    def __init__(
        self,
        *,
        pki: TestPKI,
        introspection_url: str,
        client_id: str,
        client_secret: str,
        config: SandboxConfig | None = None,
        work_dir: Path | None = None,
        deliver: bool = True,
        debug: bool = False,
        start_timeout: float = 15.0,
        special_use: bool = False,
        login_service_count: int | None = None,
    ) -> None:
        """Prepare (but do not start) a Dovecot for ``config``'s BALs.

        Args:
            pki: the sandbox test PKI (server certificate, CAs and CRLs are copied at start).
            introspection_url: the mock PSC's ``.../protocol/openid-connect/token/introspect``
                on loopback http.
            client_id, client_secret: a PSC client registered at the mock (HTTP Basic auth of
                the introspection request).
            config: BALs, holders and structures; :func:`default_config` when None.
            work_dir: where config, logs, sockets and Maildirs go. Must be short (UNIX socket
                paths) and, when running as root, reachable by :data:`DOVECOT_USER`; when None
                a fresh directory under the system temp dir is made and removed by :meth:`stop`.
            deliver: relay sink delivers local recipients to Maildirs through LMTP.
            debug: ``auth_debug`` and ``verbose_ssl`` in the log.
            start_timeout: seconds to wait for the listeners.
            special_use: give every BAL the sandbox's folders (``Sent``, ``Drafts``, ``Trash``
                with their RFC 6154 attributes, subscribed), as the sandbox store does; the
                differential tests compare LIST answers with it.
            login_service_count: ``service_count`` of imap-login; 0 is Dovecot's
                high-performance mode (one login process serves many connections), which the
                benchmarks compare against. None keeps Dovecot's default (1, one process each).
        """
        parts = urlsplit(introspection_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            raise DovecotError("introspection_url must be an http(s) URL without credentials")
        self.pki = pki
        self.config = config or default_config()
        self.introspection_url = introspection_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.deliver = deliver
        self.debug = debug
        self.start_timeout = start_timeout
        self.special_use = special_use
        self.login_service_count = login_service_count
        self._given_work_dir = work_dir
        self.work_dir: Path = work_dir or Path()
        self.imap_port = 0
        self.submission_port = 0
        self.lmtp_port = 0
        self.sink = RelaySink(self.config.domain)
        self._proc: subprocess.Popen[bytes] | None = None
        self._account: _Account | None = None

    # ----------------------------------------------------------------- paths

    @property
    def config_path(self) -> Path:
        return self.work_dir / "etc" / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "log" / "dovecot.log"

    def maildir(self, address: str) -> Path:
        """The Maildir of a BAL (``cur``/``new``/``tmp`` appear on first delivery or login)."""
        return self.work_dir / "mail" / address.lower() / "Maildir"

    def log_text(self) -> str:
        """Dovecot's log plus what the master wrote on stderr (empty if none yet)."""
        out = []
        for path in (self.log_path, self.work_dir / "log" / "master.stderr"):
            with contextlib.suppress(OSError):
                out.append(path.read_text(encoding="utf-8", errors="replace"))
        return "".join(out)

    def describe(self) -> dict[str, Any]:
        """Where to connect, in the shape of ``sandbox.json``'s ``imap``/``smtp`` blocks (for benchmarks)."""
        return {
            "imap": {"host": self.host, "port": self.imap_port, "tls": "starttls"},
            "smtp": {"host": self.host, "port": self.submission_port, "tls": "starttls"},
            "lmtp": {"host": self.host, "port": self.lmtp_port},
            "ca_bundle": str(self.pki.ca_bundle_path),
            "work_dir": str(self.work_dir),
        }

    def client_ssl_context(self, client: IssuedCert | None = None) -> ssl.SSLContext:
        """A TLS ≥ 1.2 client context trusting the sandbox CAs, presenting ``client`` if given."""
        return self.pki.client_ssl_context(client)

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration, start the sink and Dovecot, wait for IMAP and submission.

        Raises:
            DovecotUnavailable: Dovecot or one of its services is not installed.
            DovecotError: setup or start failed (the message includes the log tail).
        """
        reason = dovecot_available()
        if reason is not None:
            raise DovecotUnavailable(reason)
        self._account = self._resolve_account()
        try:
            self._make_work_dir()
            self.sink.start()
            for attempt in range(3):  # a free port may be taken between the probe and Dovecot's bind
                ports: set[int] = set()
                while len(ports) < 3:
                    ports.add(_free_port())
                self.imap_port, self.submission_port, self.lmtp_port = sorted(ports)
                self.sink.lmtp_port = self.lmtp_port if self.deliver else 0
                self._write_files()
                if self._launch():
                    return
                if "Address already in use" not in self.log_text() or attempt == 2:
                    break
            raise DovecotError(f"Dovecot did not start; log:\n{self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop Dovecot (SIGTERM to the master, then SIGKILL to its process group) and the sink.

        Idempotent. A work directory this object created is removed.
        """
        self._terminate()
        self.sink.stop()
        if self._given_work_dir is None and self.work_dir != Path() and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def reload(self) -> None:
        """Re-copy the PKI files (e.g. a CRL after a revocation) and make Dovecot reload (SIGHUP).

        New connections see the new configuration once the master has restarted its services;
        this waits for the reload line in the log.
        """
        if self._proc is None:
            raise DovecotError("Dovecot is not running")
        before = self.log_text().count("SIGHUP received - reloading configuration")
        self._copy_tls()
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.log_text().count("SIGHUP received - reloading configuration") <= before:
            if time.monotonic() > deadline:
                raise DovecotError(f"Dovecot did not reload; log:\n{self._log_tail()}")
            time.sleep(0.05)
        time.sleep(0.3)  # the master restarts the login services after the log line

    # ----------------------------------------------------------------- internals

    def _resolve_account(self) -> _Account:
        pw = ensure_system_user(DOVECOT_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        return _Account(name=pw.pw_name, uid=pw.pw_uid, gid=pw.pw_gid, group=grp.getgrgid(pw.pw_gid).gr_name)

    def _make_work_dir(self) -> None:
        if self._given_work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="mssd-"))
        else:
            self.work_dir = self._given_work_dir.resolve()
            self.work_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.work_dir)) > _MAX_WORK_DIR_LEN:
            raise DovecotError(f"work_dir {self.work_dir} is too long for Dovecot's UNIX sockets")
        for sub in ("etc", "etc/tls", "state", "log", "mail"):
            (self.work_dir / sub).mkdir(mode=0o700, exist_ok=True)
        (self.work_dir / "run").mkdir(mode=0o755, exist_ok=True)  # Dovecot wants base_dir world-readable
        os.chmod(self.work_dir / "run", 0o755)
        if os.geteuid() == 0:
            # Dovecot runs as the unprivileged account: every parent must be traversable by it.
            for parent in self.work_dir.parents:
                if parent.stat().st_mode & 0o001 == 0 and parent.stat().st_uid != self._acct.uid:
                    raise DovecotError(f"{DOVECOT_USER} cannot reach {self.work_dir} ({parent} is not o+x); "
                                       "pass no work_dir, or one under /tmp")

    @property
    def _acct(self) -> _Account:
        if self._account is None:
            raise DovecotError("not started")
        return self._account

    def _copy_tls(self) -> None:
        tls = self.work_dir / "etc" / "tls"
        for src, name in ((self.pki.server_cert_path, "server.pem"), (self.pki.server_key_path, "server.key"),
                          (self.pki.ca_bundle_with_crls_path, "ca-crl.pem")):
            self.pki.refresh_crls()
            tmp = tls / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o600)
            os.replace(tmp, tls / name)
        self._chown_tree()

    def _chown_tree(self) -> None:
        if os.geteuid() != 0:
            return
        acct = self._acct
        for root, dirs, files in os.walk(self.work_dir):
            os.chown(root, acct.uid, acct.gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), acct.uid, acct.gid, follow_symlinks=False)

    def _bals(self, kind: set[str]) -> list[Any]:
        return [b for b in self.config.bals if b.kind in kind]

    def _write_files(self) -> None:
        etc = self.work_dir / "etc"
        acct = self._acct

        def write(name: str, text: str) -> None:
            path = etc / name
            path.write_text(text, encoding="utf-8")
            os.chmod(path, 0o600)

        # passwd-file format (doc.dovecot.org "Passwd-file"): user:password:uid:gid:gecos:home:shell:extra
        # userdb: every BAL of the configuration has a Maildir home.
        users = [f"{b.address.lower()}::{acct.uid}:{acct.gid}::{self.work_dir / 'mail' / b.address.lower()}::"
                 for b in self.config.bals]
        write("users.passwd", "\n".join(users) + "\n")
        # XOAUTH2/OAUTHBEARER binding: "<national id>/<BAL>" for each holder of a PER/ORG BAL.
        holders = [f"{h}/{b.address.lower()}:::::::user={b.address.lower()}"
                   for b in self._bals({"PER", "ORG"}) for h in b.holders]
        write("holders.passwd", "\n".join(holders) + "\n")
        # APP BALs: "<structure id (certificate OU)>/<BAL>", any password (nopassword).
        apps = [f"{b.structure_id}/{b.address.lower()}:::::::nopassword user={b.address.lower()}"
                for b in self._bals({"APP"})]
        write("appvalid.passwd", "\n".join(apps) + "\n")
        write("app.passwd", "# read when the client certificate is absent or invalid: nobody matches\n")

        parts = urlsplit(self.introspection_url)
        netloc = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}@{parts.netloc}"
        url = parts._replace(netloc=netloc).geturl()
        write("oauth2.conf.ext", _OAUTH2_TEMPLATE.format(url=url, debug="yes" if self.debug else "no"))
        dh = Path("/usr/share/dovecot/dh.pem")
        write("dovecot.conf", _MAIN_TEMPLATE.format(
            work=self.work_dir, etc=etc, user=acct.name, group=acct.group, uid=acct.uid, gid=acct.gid,
            domain=self.config.domain, imap_port=self.imap_port, submission_port=self.submission_port,
            lmtp_port=self.lmtp_port, sink_port=self.sink.port, debug="yes" if self.debug else "no",
            ssl_dh=f"ssl_dh = <{dh}" if dh.exists() else "# no ssl_dh: DHE suites disabled",
            instance=f"mssante-{os.getpid()}-{self.imap_port}",
            mailboxes=_SPECIAL_USE_MAILBOXES if self.special_use else "",
            login_service_count="" if self.login_service_count is None
            else f"service_count = {self.login_service_count}",
        ))
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()
        self._copy_tls()  # also chowns the whole tree

    def _launch(self) -> bool:
        acct = self._acct
        stderr = (self.work_dir / "log" / "master.stderr").open("wb")
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            kwargs = {"user": acct.uid, "group": acct.gid, "extra_groups": []}
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        try:
            self._proc = subprocess.Popen(
                [str(DOVECOT_BINARY), "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, cwd=self.work_dir, env=env,
                start_new_session=True, **kwargs,
            )
        finally:
            stderr.close()
        deadline = time.monotonic() + self.start_timeout
        for port in (self.imap_port, self.submission_port, self.lmtp_port):
            while not _wait_port(port, min(deadline, time.monotonic() + 0.2)):
                if self._proc.poll() is not None or time.monotonic() >= deadline:
                    self._terminate()
                    return False
        return True

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # the master stops its children on SIGTERM
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        # Children left behind share the process group created for the master (start_new_session).
        # The kernel does not reuse a PID while a process group of that ID exists, so this only
        # reaches our own Dovecot processes, or fails with ESRCH when none is left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()
        # never leak the introspection credentials into a test report
        secret = re.escape(quote(self.client_secret, safe=""))
        return re.sub(secret, "***", "\n".join(text[-lines:]))


# The sandbox store's folders (RFC 6154 §2 attributes), created and subscribed at first login.
_SPECIAL_USE_MAILBOXES = """\
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
"""


# Dovecot 2.3 oauth2 passdb settings (doc.dovecot.org/2.3/configuration_manual/authentication/oauth2/).
_OAUTH2_TEMPLATE = """\
# RFC 7662 introspection: POST token=<access token>, HTTP Basic client auth from the URL.
introspection_mode = post
introspection_url = {url}
timeout_msecs = 5000
# The token must be active (RFC 7662 §2.2) and carry PSC's scope_all (any-of match).
active_attribute = active
active_value = true
scope = scope_all
# Dovecot compares username_format expanded with the login name and with the token's
# username_attribute. The login name is a BAL address, the token's identity a national id:
# a constant makes that comparison always true; the holder check is the next passdb's job.
username_attribute = preferred_username
username_format = bal-holder-checked-by-next-passdb
# Export the national id as passdb field mss_holder, used as %{{passdb:mss_holder}}.
pass_attrs = mss_holder=%{{oauth2:preferred_username}}
debug = {debug}
"""

_MAIN_TEMPLATE = """\
# Generated by tests/interop/dovecot.py: a Dovecot 2.3 API LPS operator on loopback.
instance_name = {instance}
base_dir = {work}/run
state_dir = {work}/state
listen = 127.0.0.1
protocols = imap submission lmtp
hostname = {domain}

log_path = {work}/log/dovecot.log
info_log_path = {work}/log/dovecot.log
debug_log_path = {work}/log/dovecot.log
auth_verbose = yes
auth_debug = {debug}
verbose_ssl = {debug}
# The current command shows in the process title ("imap: [user ip IDLE]"): tests wait on it.
verbose_proctitle = yes

# Rootless: every process runs as one unprivileged account.
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}

# TLS: STARTTLS mandatory before AUTH (except loopback-to-loopback, see the module docstring).
ssl = required
ssl_min_protocol = TLSv1.2
ssl_cert = <{etc}/tls/server.pem
ssl_key = <{etc}/tls/server.key
{ssl_dh}
# Client certificates: CAs + CRLs; a certificate is "valid" (%{{cert}}) only if it chains,
# is in its validity period and is not revoked. No certificate is not a handshake failure.
ssl_ca = <{etc}/tls/ca-crl.pem
ssl_require_crl = yes
ssl_verify_client_cert = yes
ssl_cert_username_field = OU
auth_ssl_username_from_cert = yes
auth_ssl_require_client_cert = no

auth_mechanisms = plain xoauth2 oauthbearer
auth_username_format = %Lu
auth_cache_size = 0
# Tests exercise refusals: no 2 s failure delay (auth_failure_delay).
auth_failure_delay = 0
# Benchmarks open up to 100 sessions of one BAL from 127.0.0.1 (default limit: 10).
mail_max_userip_connections = 1000

# (a) PER/ORG BALs: PSC token by introspection, then the holder map.
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {etc}/oauth2.conf.ext
  result_success = continue-ok
  result_failure = return-fail
  result_internalfail = return-fail
}}
passdb {{
  driver = passwd-file
  mechanisms = xoauth2 oauthbearer
  args = username_format=%{{passdb:mss_holder}}/%L{{orig_user}} {etc}/holders.passwd
  result_success = return-ok
  result_failure = return-fail
  result_internalfail = return-fail
}}
# (b) APP BALs: valid client certificate (%{{cert}} = "valid") + PLAIN; OU bound to the BAL.
passdb {{
  driver = passwd-file
  mechanisms = plain
  args = username_format=%Lu/%L{{orig_user}} {etc}/app%{{cert}}.passwd
  result_success = return-ok
  result_failure = return-fail
  result_internalfail = return-fail
}}
userdb {{
  driver = passwd-file
  args = username_format=%Lu {etc}/users.passwd
}}

mail_location = maildir:~/Maildir
mail_privileged_group =
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}

submission_relay_host = 127.0.0.1
submission_relay_port = {sink_port}
submission_relay_trusted = no
submission_relay_ssl = no

service imap-login {{
  chroot =
  {login_service_count}
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service submission-login {{
  chroot =
  inet_listener submission {{
    address = 127.0.0.1
    port = {submission_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service imap-urlauth-login {{
  chroot =
}}
service anvil {{
  chroot =
  # Auth penalty (anvil, per remote IP: 2 s doubling up to 15 s after each failure) would
  # slow every refusal test from 127.0.0.1. A socket nobody may open disables it: auth
  # cannot connect, logs one error at start and runs without penalties (auth-penalty.c).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service ipc {{
  chroot =
}}
"""
