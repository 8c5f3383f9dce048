"""Fault injection through the API: ``POST /api/faults`` bodies and the ``GET`` answer.

Besides the fronts' switches (:class:`~mssante.sandbox.fronts.faults.Faults`), two faults serve
the conformance suite when it drives a sandbox of another process (:class:`BenchFaults`):

* **refuse the next token of a BAL** (ECO.1.2.1, RFC 5530 §3): a fault "fail the next
  authentication" cannot tell a client that retries with the *same* token from one that fetched
  a *fresh* one. :class:`TokenGate` makes the next PSC token presented for a BAL really invalid:
  that token (by ``jti``) is refused now and every time it comes back (counted as *reused*),
  while a new token of the same PSC session is accepted. It wraps the mock PSC's local token
  check, so it needs ``token_check = "local"``.
* **CRL outage** (ECO.1.1.7, keep the last valid CRL): every ``/crl/...`` download answers 503,
  or hangs until the fault is cleared (at most :data:`CRL_HOLD` seconds) then answers 503.

It also keeps the **TLS server names** (SNI, RFC 6066 §3) the fronts' handshakes received
(:meth:`BenchFaults.record_sni`, installed as the fronts' ``sni_callback``): an LPS that
connects by IP address sends none, and checks the certificate against the address, which only
the sandbox's certificate (with its IP SAN) accepts; and every **ClientHello** (the versions and
suites the LPS offers, :attr:`BenchFaults.hellos`). The **TLS probe** fault (``tls_probe``)
serves at STARTTLS a context that only speaks TLS 1.0/1.1 (``old-tls``, ECO.1.1.1) or TLS 1.2
with suites outside the Ref #2 list (``weak-suites``, ECO.1.1.3), see
:mod:`mssante.sandbox.fronts.probe`: a correct LPS cannot complete that handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from starlette.responses import PlainTextResponse, Response

from mssante.errors import TokenRejected, UsageError
from mssante.sandbox.fronts.faults import BAD_SERVER_CERTIFICATES, Faults
from mssante.sandbox.fronts.probe import TLS_PROBES, HelloLog, TLSProbe, probe_context

if TYPE_CHECKING:
    from mssante.sandbox.dns import DNSQuery
    from mssante.sandbox.psc.mock import MockPSC
    from mssante.sandbox.runner import Sandbox
    from mssante.sandbox.services import SandboxServices

__all__ = [
    "CRL_HOLD",
    "HANDSHAKES_KEPT",
    "BenchFaults",
    "CRLOutage",
    "TokenGate",
    "apply_faults",
    "attached",
    "bench_faults",
    "clear_faults",
    "dns_queries",
    "faults_json",
    "token_fingerprint",
]

CRLOutageMode = Literal["503", "timeout"]
#: Longest a CRL download is held in the ``timeout`` outage (an LPS gives up well before).
CRL_HOLD: Final = 60.0
#: TLS handshakes remembered by :meth:`BenchFaults.record_sni`.
HANDSHAKES_KEPT: Final = 2000


def token_fingerprint(jti: str) -> str:
    """A short, non-reversible fingerprint of a token id, for evidence (never the token itself)."""
    return hashlib.sha256(jti.encode()).hexdigest()[:12]


@dataclass
class TokenGate:
    """Refuses the next token presented by a holder of a BAL, and that token forever after."""

    bal: str
    holders: frozenset[str]
    armed: bool = True
    poisoned: set[str] = field(default_factory=set)
    refused: int = 0
    reused: int = 0

    def wrap(self, inner: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
        """A token check that applies the gate after ``inner``.

        Raises:
            Nothing (the returned callable raises TokenRejected, and whatever ``inner`` raises).
        """

        def validate(token: str) -> dict[str, Any]:
            claims = inner(token)
            jti = str(claims.get("jti", ""))
            who = str(claims.get("preferred_username") or claims.get("SubjectNameID") or "")
            if jti in self.poisoned:
                self.reused += 1
                raise TokenRejected(f"token {token_fingerprint(jti)} was refused before and presented again")
            if self.armed and who in self.holders:
                self.armed = False
                self.refused += 1
                self.poisoned.add(jti)
                raise TokenRejected(f"token {token_fingerprint(jti)} refused by the conformance bench")
            return claims

        return validate

    def to_json(self) -> dict[str, Any]:
        """``{"bal", "armed", "refused", "reused"}``.
        """
        return {"bal": self.bal, "armed": self.armed, "refused": self.refused, "reused": self.reused}


@dataclass
class CRLOutage:
    """The CRL distribution points fail: 503 at once, or after a hold (``timeout``)."""

    mode: CRLOutageMode
    requests: int = 0
    cleared: asyncio.Event = field(default_factory=asyncio.Event)

    async def respond(self) -> Response:
        """The answer to one CRL download during the outage."""
        self.requests += 1
        if self.mode == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cleared.wait(), CRL_HOLD)
        return PlainTextResponse("LCR indisponible (panne simulée par le bac à sable)", status_code=503,
                                 headers={"Retry-After": "60", "Cache-Control": "no-store"})

    def to_json(self) -> dict[str, Any]:
        """``{"mode", "requests"}``.
        """
        return {"mode": self.mode, "requests": self.requests}


class BenchFaults:
    """The conformance bench's faults of one sandbox (see the module docstring)."""

    def __init__(self, sandbox: Sandbox) -> None:
        """No fault in force; ``sandbox`` is the one whose faults these are (not kept)."""
        self._psc = weakref.ref(sandbox.psc)
        self._config = sandbox.config
        self._faults = weakref.ref(sandbox.faults)
        pki = sandbox.pki
        self._probe_files = (pki.server_cert_path, pki.server_key_path, pki.ca_bundle_path)
        self._probe_contexts: dict[tuple[TLSProbe, bool], ssl.SSLContext] = {}
        self._probe_lock = threading.Lock()
        self.token_gate: TokenGate | None = None
        self.crl_outage: CRLOutage | None = None
        self.tls_probe: TLSProbe | None = None
        self.handshakes: deque[tuple[float, str | None]] = deque(maxlen=HANDSHAKES_KEPT)
        self.hellos = HelloLog()

    def record_sni(self, _conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        """``SSLContext.sni_callback`` of the fronts: remember when a handshake began and its SNI (or None).

        Raises:
            Nothing (it never aborts the handshake).
        """
        self.handshakes.append((time.time(), server_name))

    def watch(self, ctx: ssl.SSLContext, *, probe: bool = False) -> None:
        """Record the SNI and the ClientHello of every handshake ``ctx`` serves."""
        ctx.sni_callback = self.record_sni
        self.hellos.install(ctx, probe=probe)

    def _probe_context(self, mode: TLSProbe, require_client_cert: bool) -> ssl.SSLContext:
        # Runs in a worker thread (Faults.tls_context), hence the lock; built once per mode and kind of front.
        with self._probe_lock:
            ctx = self._probe_contexts.get((mode, require_client_cert))
            if ctx is None:
                chain, key, bundle = self._probe_files
                ctx = probe_context(mode, chain, key, client_ca=bundle if require_client_cert else None)
                self.watch(ctx, probe=True)
                self._probe_contexts[(mode, require_client_cert)] = ctx
            return ctx

    def set_tls_probe(self, mode: TLSProbe | None) -> None:
        """Serve the TLS probe ``mode`` at every STARTTLS (``old-tls``, ``weak-suites``), or the real context (None).

        Raises:
            UsageError: unknown mode.
        """
        if mode is not None and mode not in TLS_PROBES:
            raise UsageError(f"tls_probe must be one of {', '.join(TLS_PROBES)} or null")
        faults = self._faults()
        self.tls_probe = mode
        if faults is not None:
            faults.probe_context_factory = None if mode is None else functools.partial(self._probe_context, mode)

    def server_names(self, since: float) -> list[tuple[float, str | None]]:
        """The handshakes begun at or after ``since``: (time, server name or None)."""
        return [h for h in self.handshakes if h[0] >= since]

    def reject_next_token(self, bal: str) -> bool:
        """Arm a :class:`TokenGate` for ``bal``; False when tokens are checked by introspection.

        Raises:
            UsageError: ``bal`` is not a PER/ORG BAL of the sandbox.
        """
        config = self._config
        target = config.bal(bal)
        if target is None or not target.holders:
            raise UsageError(f"{bal} is not a PER/ORG BAL of the sandbox")
        if config.token_check != "local":  # noqa: S105 - a mode name
            return False
        self.remove_gate()
        gate = TokenGate(bal=target.address, holders=frozenset(target.holders))
        psc = self._sandbox_psc()
        original = psc.validate_access_token  # the class's bound method: any previous gate is gone
        setattr(psc, "validate_access_token", gate.wrap(original))  # noqa: B010 - instance override, removed by clear
        self.token_gate = gate
        return True

    def _sandbox_psc(self) -> MockPSC:
        psc = self._psc()
        if psc is None:
            raise UsageError("the sandbox is stopped")
        return psc

    def remove_gate(self) -> None:
        """Restore the mock PSC's own token check."""
        psc = self._psc()
        if psc is not None and "validate_access_token" in vars(psc):
            del psc.validate_access_token
        self.token_gate = None

    def set_crl_outage(self, mode: CRLOutageMode | None) -> None:
        """Start (``"503"``, ``"timeout"``) or end (None) the CRL outage.

        Raises:
            UsageError: unknown mode.
        """
        if mode is not None and mode not in ("503", "timeout"):
            raise UsageError('crl_outage must be "503", "timeout" or null')
        if self.crl_outage is not None:
            self.crl_outage.cleared.set()
        self.crl_outage = None if mode is None else CRLOutage(mode=mode)

    def clear(self) -> None:
        """Remove the token gate and the CRL outage."""
        self.remove_gate()
        self.set_crl_outage(None)
        self.set_tls_probe(None)


T = TypeVar("T")


def attached(table: weakref.WeakKeyDictionary[Faults, T], sandbox: SandboxServices, make: Callable[[], T]) -> T:
    """The object of ``table`` that belongs to ``sandbox``, made by ``make`` on first use.

    Keyed by the sandbox's fronts :class:`Faults` (one per sandbox, hashable; the sandbox is
    not), so it lives as long as the sandbox and the API and the in-process suite share it.

    Raises:
        Nothing (``make`` excepted).
    """
    found = table.get(sandbox.faults)
    if found is None:
        found = table[sandbox.faults] = make()
    return found


_BENCH: weakref.WeakKeyDictionary[Faults, BenchFaults] = weakref.WeakKeyDictionary()


def bench_faults(sandbox: Sandbox) -> BenchFaults:
    """The :class:`BenchFaults` of ``sandbox`` (created on first use)."""
    return attached(_BENCH, sandbox, lambda: BenchFaults(sandbox))


def clear_faults(sandbox: Sandbox) -> None:
    """Remove every fault: the fronts' switches, PSC unavailability, the token gate, the CRL outage."""
    sandbox.faults.clear()
    sandbox.psc.unavailable = False
    bench_faults(sandbox).clear()


def dns_queries(sandbox: Sandbox, since: float) -> list[DNSQuery]:
    """The queries the sandbox DNS answered at or after ``since`` (none before it started)."""
    return [] if sandbox.dns is None else sandbox.dns.queries.since(since)


def faults_json(sandbox: Sandbox) -> dict[str, Any]:
    """The faults in force and the live authenticated sessions."""
    faults = sandbox.faults
    bench = bench_faults(sandbox)
    return {
        "psc_unavailable": faults.psc_unavailable,
        "delay": faults.delay,
        "pending_auth_failures": faults.pending_auth_failures,
        "bad_server_certificate": faults.bad_server_certificate,
        "token_gate": None if bench.token_gate is None else bench.token_gate.to_json(),
        "crl_outage": None if bench.crl_outage is None else bench.crl_outage.to_json(),
        "tls_probe": bench.tls_probe if faults.probe_context_factory is not None else None,  # Faults.clear ends it
        "live_sessions": [{"bal": s.bal, "front": s.front} for s in faults.sessions()],
    }


def apply_faults(sandbox: Sandbox, payload: dict[str, Any]) -> None:
    """Apply a fault request: ``{"psc_unavailable": bool, "token_check_unavailable": bool, "delay": s,
    "fail_auth": {...},
    "bad_server_certificate": "expired"|"foreign"|"wrong-host"|"revoked"|"impostor"|null,
    "reject_next_token": {"bal": address}, "crl_outage": "503"|"timeout"|null,
    "tls_probe": "old-tls"|"weak-suites"|null}``.

    Raises:
        UsageError: a field has the wrong type or an unknown value, or ``reject_next_token``
            cannot be honoured (unknown BAL, tokens checked by introspection).
    """
    faults = sandbox.faults
    known = {"psc_unavailable", "token_check_unavailable", "delay", "fail_auth", "bad_server_certificate",
             "reject_next_token", "crl_outage", "tls_probe"}
    unknown = set(payload) - known
    if unknown:
        raise UsageError(f"unknown fault fields: {sorted(unknown)}")
    if "bad_server_certificate" in payload:
        kind = payload["bad_server_certificate"]
        if kind is not None and kind not in BAD_SERVER_CERTIFICATES:
            raise UsageError(f"bad_server_certificate must be one of {', '.join(BAD_SERVER_CERTIFICATES)} or null")
        faults.set_bad_server_certificate(kind)
    if "psc_unavailable" in payload:
        if not isinstance(payload["psc_unavailable"], bool):
            raise UsageError("psc_unavailable must be true or false")
        faults.psc_unavailable = payload["psc_unavailable"]
        sandbox.psc.unavailable = payload["psc_unavailable"]
    if "token_check_unavailable" in payload:  # the fronts' token checks only; PSC's endpoints keep working
        if not isinstance(payload["token_check_unavailable"], bool):
            raise UsageError("token_check_unavailable must be true or false")
        faults.psc_unavailable = payload["token_check_unavailable"]
    if "delay" in payload:
        delay = payload["delay"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 60:
            raise UsageError("delay must be a number of seconds between 0 and 60")
        faults.delay = float(delay)
    if "fail_auth" in payload:
        spec = payload["fail_auth"]
        if not isinstance(spec, dict):
            raise UsageError('fail_auth must be {"count": n, "code": "...", "bal": "..."}')
        count = spec.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int):
            raise UsageError("fail_auth.count must be an integer")
        faults.fail_next_auth(count, spec.get("code", "AUTHENTICATIONFAILED"), bal=spec.get("bal"))
    if "crl_outage" in payload:
        bench_faults(sandbox).set_crl_outage(payload["crl_outage"])
    if "tls_probe" in payload:
        bench_faults(sandbox).set_tls_probe(payload["tls_probe"])
    if "reject_next_token" in payload:
        spec = payload["reject_next_token"]
        if not isinstance(spec, dict) or not isinstance(spec.get("bal"), str):
            raise UsageError('reject_next_token must be {"bal": "address of a BAL PER/ORG"}')
        if not bench_faults(sandbox).reject_next_token(spec["bal"]):
            raise UsageError("reject_next_token needs token_check = 'local' (this sandbox introspects tokens)")
