"""How the suite drives the sandbox operator: :class:`SandboxControl` and its in-process form.

A case never touches sandbox internals directly; it goes through :class:`SandboxControl`,
which has two implementations:

* :class:`InProcessControl` (this module): the suite runs in the process of the
  :class:`~mssante.sandbox.runner.Sandbox` and uses its Python objects (journal, faults,
  store, mock PSC). This is what ``mssante conformance run`` does by default: it starts the
  sandbox itself on the given state directory.
* :class:`~mssante.conformance._remote.HTTPControl`: a sandbox already running in another
  process, driven through its ``/api``.

Both implementations offer the same faults, including the bench's own ones
(:mod:`mssante.sandbox.api.faults`): refusing the next PSC token of a BAL for good (token
freshness, ECO.1.2.1), a CRL outage (ECO.1.1.7) and the TLS probe (ECO.1.1.1, ECO.1.1.3); and
the same observations: the session journal, the ClientHellos and the DNS queries (ECO.1.1.9).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from mssante.errors import UsageError
from mssante.sandbox.api.events import conformance_feed
from mssante.sandbox.api.faults import bench_faults, clear_faults, dns_queries, faults_json
from mssante.sandbox.dns import DNSQuery
from mssante.sandbox.fronts.faults import AuthFailureCode, BadServerCertificate
from mssante.sandbox.fronts.journal import SessionRecord
from mssante.sandbox.fronts.probe import HelloRecord, TLSProbe
from mssante.sandbox.runner import Sandbox

__all__ = ["InProcessControl", "MessageSummary", "SandboxControl"]

EndMode = Literal["bye", "drop"]


@dataclass(frozen=True, kw_only=True)
class MessageSummary:
    """A stored message as the suite sees it: UID, flags and a few headers."""

    uid: int
    flags: tuple[str, ...]
    headers: dict[str, str]

    @property
    def message_id(self) -> str | None:
        """The Message-ID header, when present."""
        return next((v for k, v in self.headers.items() if k.lower() == "message-id"), None)


class SandboxControl(Protocol):
    """What the cases need from the sandbox operator."""

    @property
    def info(self) -> dict[str, Any]:
        """The ``sandbox.json`` content (domain, fronts, BALs, PSC)."""
        ...

    @property
    def state_dir(self) -> Path:
        """The sandbox's state directory (results go to ``conformance/latest.json`` there)."""
        ...

    @property
    def responders(self) -> tuple[str, ...]:
        """Addresses of the XDM auto-responder ("répondeur automatique"), CR de biologie first.
        """
        ...

    async def records(self, *, since: float | None = None) -> list[SessionRecord]:
        """Journal records started at or after ``since`` (all when None), oldest first.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def clear_faults(self) -> None:
        """Remove every injected fault (and any token rejection).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def fail_next_auth(self, count: int, code: AuthFailureCode, bal: str) -> None:
        """Make the next ``count`` authentications of ``bal`` fail with ``code``.

        Raises:
            UsageError: invalid arguments.
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def reject_next_token(self, bal: str) -> bool:
        """Make the next PSC token presented for ``bal`` invalid for good; False if unsupported.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def fault_state(self) -> dict[str, Any]:
        """The faults in force, as ``GET /api/faults`` answers (``token_gate.reused`` counts the
        refused token presented again; ``crl_outage.requests`` the CRL downloads refused).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def set_crl_outage(self, mode: Literal["503", "timeout"] | None) -> None:
        """Make the CRL distribution points fail (``503`` at once, or ``timeout``), or work again (None).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def set_psc_unavailable(self, unavailable: bool) -> None:
        """Switch PSC token checks to ``[UNAVAILABLE]`` / ``454 4.7.0`` (or back).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def set_bad_server_certificate(self, kind: BadServerCertificate | None) -> None:
        """Serve a bad server certificate at every STARTTLS (``None``: the real one again).

        Raises:
            TransportError: the sandbox cannot be reached.
            UsageError: unknown ``kind``.
        """
        ...

    async def end_sessions(self, bal: str, mode: EndMode) -> int:
        """End the live IMAP/SMTP sessions of ``bal`` (``BYE``/``421`` or TCP drop).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def end_psc_sessions(self, national_id: str) -> int:
        """End every PSC session of a professional (refresh tokens become invalid).

        Raises:
            ConfigError: the running sandbox offers no way to do it.
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def list_messages(self, bal: str, folder: str = "INBOX") -> list[MessageSummary]:
        """Summaries of a folder of ``bal``.

        Raises:
            UsageError: unknown BAL or folder.
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def get_message(self, bal: str, folder: str, uid: int) -> bytes:
        """The raw message.

        Raises:
            UsageError: unknown BAL, folder or UID.
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def deliver(self, bal: str, message: bytes) -> None:
        """Put ``message`` in the INBOX of ``bal`` (as if received from another BAL).

        Raises:
            UsageError: unknown BAL or message too large.
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def server_names(self, since: float) -> list[str | None]:
        """The TLS server names (SNI) of the fronts' handshakes begun since ``since`` (None: no SNI sent).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def client_hellos(self, since: float) -> list[HelloRecord]:
        """The ClientHellos the fronts (and the TLS probe) received since ``since``, oldest first.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def dns_queries(self, since: float) -> list[DNSQuery]:
        """The queries the sandbox DNS answered since ``since``, oldest first.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def set_tls_probe(self, mode: TLSProbe | None) -> None:
        """Serve the TLS probe ``mode`` at every STARTTLS (TLS 1.0/1.1 only, or weak suites only), or
        the real context again (None).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def publish_event(self, event: dict[str, Any]) -> None:
        """Give one run event to the sandbox (``POST /api/conformance/events``).

        Raises:
            TransportError: the sandbox cannot be reached.
            UsageError: the sandbox refused the event.
        """
        ...

    async def step_ack(self, step: str) -> dict[str, Any] | None:
        """The LPS's acknowledgement of ``step`` (``{"at", "ok", "detail"}``, and ``understood`` for a
        ``read`` step), or None.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def alive(self) -> bool:
        """Whether the sandbox still answers."""
        ...

    async def aclose(self) -> None:
        """Release what the control holds (restores any wrapped sandbox method)."""
        ...

    async def annuaire_log(self, since: float) -> list[dict[str, Any]] | None:
        """The Annuaire Santé mock's requests since ``since`` (``time``, ``method``, ``path``, ``query``,
        ``status``, ``matches``); None when this sandbox does not show them.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    async def psc_logins(self, national_id: str, since: float) -> int | None:
        """How many PSC logins (new SSO sessions) ``national_id`` made since ``since``; None when unknown.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        ...

    def access_token_lifetime(self) -> float | None:
        """The PSC access token lifetime of this sandbox, in seconds; None when unknown."""
        ...


class InProcessControl:
    """:class:`SandboxControl` over a :class:`~mssante.sandbox.runner.Sandbox` of this process."""

    def __init__(self, sandbox: Sandbox) -> None:
        """Drive ``sandbox`` (already started).

        Raises:
            UsageError: the sandbox is not started.
        """
        if not sandbox.info:
            raise UsageError("the sandbox is not started")
        self._sb = sandbox
        self._bench = bench_faults(sandbox)

    @property
    def info(self) -> dict[str, Any]:
        """``sandbox.json`` content."""
        return self._sb.info

    @property
    def state_dir(self) -> Path:
        """The state directory."""
        return self._sb.state_dir

    @property
    def responders(self) -> tuple[str, ...]:
        """The configured responder addresses, ``crbio`` ones first."""
        pairs = sorted(self._sb.config.responders, key=lambda p: p[1] != "crbio")
        return tuple(address for address, _ in pairs)

    async def records(self, *, since: float | None = None) -> list[SessionRecord]:
        """Journal records (see :class:`SandboxControl`)."""
        return self._sb.journal.records(since=since)

    async def clear_faults(self) -> None:
        """Clear faults and the token gate."""
        clear_faults(self._sb)

    async def fail_next_auth(self, count: int, code: AuthFailureCode, bal: str) -> None:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: negative count or unknown code.
        """
        self._sb.faults.fail_next_auth(count, code, bal=bal)

    async def reject_next_token(self, bal: str) -> bool:
        """See the module docstring; False when the sandbox checks tokens by introspection.

        Raises:
            UsageError: ``bal`` is not a PER/ORG BAL of the sandbox.
        """
        return self._bench.reject_next_token(bal)

    async def fault_state(self) -> dict[str, Any]:
        """See :class:`SandboxControl`."""
        return faults_json(self._sb)

    async def set_crl_outage(self, mode: Literal["503", "timeout"] | None) -> None:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: unknown mode.
        """
        self._bench.set_crl_outage(mode)

    async def set_psc_unavailable(self, unavailable: bool) -> None:
        """See :class:`SandboxControl`."""
        self._sb.faults.psc_unavailable = unavailable

    async def set_bad_server_certificate(self, kind: BadServerCertificate | None) -> None:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: unknown ``kind``.
        """
        self._sb.faults.set_bad_server_certificate(kind)

    async def end_sessions(self, bal: str, mode: EndMode) -> int:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: bad mode.
        """
        return await self._sb.faults.end_sessions(bal, mode)

    async def end_psc_sessions(self, national_id: str) -> int:
        """See :class:`SandboxControl`."""
        return await self._sb.psc.end_session(national_id)

    async def list_messages(self, bal: str, folder: str = "INBOX") -> list[MessageSummary]:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: unknown BAL or folder.
        """
        items = await self._sb.store.list_messages(bal, folder)
        return [MessageSummary(uid=m.uid, flags=m.flags, headers=dict(m.headers)) for m in items]

    async def get_message(self, bal: str, folder: str, uid: int) -> bytes:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: unknown BAL, folder or UID.
        """
        return await self._sb.store.get_message(bal, folder, uid)

    async def deliver(self, bal: str, message: bytes) -> None:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: unknown BAL or message too large.
        """
        await self._sb.store.deliver(bal, message)

    async def server_names(self, since: float) -> list[str | None]:
        """See :class:`SandboxControl`."""
        return [name for _, name in self._bench.server_names(since)]

    async def client_hellos(self, since: float) -> list[HelloRecord]:
        """See :class:`SandboxControl`."""
        return self._bench.hellos.since(since)

    async def dns_queries(self, since: float) -> list[DNSQuery]:
        """See :class:`SandboxControl`."""
        return dns_queries(self._sb, since)

    async def set_tls_probe(self, mode: TLSProbe | None) -> None:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: unknown mode.
        """
        self._bench.set_tls_probe(mode)

    async def publish_event(self, event: dict[str, Any]) -> None:
        """See :class:`SandboxControl`.

        Raises:
            UsageError: not a version 1 event.
        """
        await conformance_feed(self._sb).publish(event)

    async def step_ack(self, step: str) -> dict[str, Any] | None:
        """See :class:`SandboxControl`."""
        return conformance_feed(self._sb).ack(step)

    async def alive(self) -> bool:
        """Always True: the sandbox runs in this process."""
        return True

    async def aclose(self) -> None:
        """Restore the mock PSC."""
        self._bench.clear()

    async def annuaire_log(self, since: float) -> list[dict[str, Any]] | None:
        """See :class:`SandboxControl`."""
        http = self._sb.http
        if http is None:
            return None
        return [asdict(r) for r in list(http.annuaire.access_log) if r.time >= since]

    async def psc_logins(self, national_id: str, since: float) -> int | None:
        """See :class:`SandboxControl`."""
        return self._sb.psc.logins_since(national_id, since)

    def access_token_lifetime(self) -> float | None:
        """See :class:`SandboxControl`."""
        return self._sb.config.lifetimes.access_token
