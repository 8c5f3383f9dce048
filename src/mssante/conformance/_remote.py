"""Drive a sandbox that runs in another process, through its HTTP API (``/api``).

Used by ``mssante conformance run`` when ``STATE_DIR/sandbox.json`` names a sandbox that
answers (the two-terminal setup: ``mssante sandbox up`` in one, the suite in the other).
Standard library only (``urllib``, in a worker thread). Every case runs as with a sandbox of
the suite's own process: the API refuses the next token of a BAL for good
(``POST /api/faults {"reject_next_token"}``), simulates a CRL outage (``"crl_outage"``) and
ends a professional's PSC sessions (``DELETE /api/psc/sessions/{national_id}``).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from mssante.conformance._control import EndMode, MessageSummary
from mssante.errors import ConfigError, ConnectError, UsageError
from mssante.sandbox.dns import DNSQuery
from mssante.sandbox.fronts.faults import AuthFailureCode, BadServerCertificate
from mssante.sandbox.fronts.journal import SessionRecord
from mssante.sandbox.fronts.probe import HelloRecord, TLSProbe

__all__ = ["HTTPControl", "record_from_dict"]

T = TypeVar("T")

_TIMEOUT = 15.0


def record_from_dict(data: dict[str, Any]) -> SessionRecord:
    """Rebuild a journal record from its JSON form (``SessionRecord.to_dict``).

    Raises:
        UsageError: the JSON is not a session record.
    """
    try:
        return SessionRecord.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"the sandbox API returned an invalid journal record: {exc}") from exc


class HTTPControl:
    """:class:`~mssante.conformance._control.SandboxControl` over a running sandbox's ``/api``."""

    def __init__(self, info: dict[str, Any], state_dir: Path) -> None:
        """Use the sandbox described by ``info`` (its ``sandbox.json``).

        Raises:
            ConfigError: ``info`` has no ``api_url``.
        """
        url = info.get("api_url")
        if not isinstance(url, str) or not url.startswith("http://127.0.0.1"):
            raise ConfigError("sandbox.json has no loopback api_url")
        self._info = info
        self._state_dir = state_dir
        self._api = url.rstrip("/")

    @property
    def info(self) -> dict[str, Any]:
        """``sandbox.json`` content."""
        return self._info

    @property
    def state_dir(self) -> Path:
        """The state directory."""
        return self._state_dir

    @property
    def responders(self) -> tuple[str, ...]:
        """Responder addresses, guessed from the default names (``crbio-xdm@``, ``vsm@``)."""
        names = [str(b.get("address", "")) for b in self._info.get("bals", ())]
        return tuple(sorted((n for n in names if n.split("@")[0] in ("crbio-xdm", "vsm")),
                            key=lambda n: not n.startswith("crbio")))

    def _call(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
        request = urllib.request.Request(self._api + path, data=body, method=method,  # noqa: S310 - loopback http
                                         headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:  # noqa: S310 - loopback http
                raw = response.read()
                return json.loads(raw) if raw and "json" in response.headers.get("Content-Type", "") else raw
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            if exc.code == 404:
                raise UsageError(f"the sandbox API has no {method} {path}: {detail}") from exc
            raise UsageError(f"the sandbox API refused {method} {path}: {exc.code} {detail}") from exc
        except (OSError, ValueError) as exc:
            raise ConnectError(f"the sandbox API at {self._api} does not answer: {exc}") from exc

    async def _acall(self, method: str, path: str, body: bytes | None = None,
                     content_type: str = "application/json") -> Any:
        return await asyncio.to_thread(self._call, method, path, body, content_type)

    async def _json(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        return await self._acall(method, path, body)

    async def records(self, *, since: float | None = None) -> list[SessionRecord]:
        """Journal records.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API refused or returned something else.
        """
        query = "" if since is None else f"?since={since:.6f}"
        data = await self._json("GET", "/journal" + query)
        if not isinstance(data, list):
            raise UsageError("GET /api/journal did not return a list")
        return [record_from_dict(d) for d in data if isinstance(d, dict)]

    async def clear_faults(self) -> None:
        """``DELETE /api/faults``.

        Raises:
            ConnectError: the API does not answer.
        """
        await self._json("DELETE", "/faults")

    async def fail_next_auth(self, count: int, code: AuthFailureCode, bal: str) -> None:
        """``POST /api/faults`` with ``fail_auth``.

        Raises:
            UsageError: refused by the API.
            ConnectError: the API does not answer.
        """
        await self._json("POST", "/faults", {"fail_auth": {"count": count, "code": code, "bal": bal}})

    async def reject_next_token(self, bal: str) -> bool:
        """``POST /api/faults`` with ``reject_next_token``; False when the sandbox introspects tokens.

        Raises:
            ConnectError: the API does not answer.
        """
        try:
            await self._json("POST", "/faults", {"reject_next_token": {"bal": bal}})
        except UsageError as exc:
            if "introspect" in str(exc):
                return False
            raise
        return True

    async def fault_state(self) -> dict[str, Any]:
        """``GET /api/faults``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API answered something else than an object.
        """
        data = await self._json("GET", "/faults")
        if not isinstance(data, dict):
            raise UsageError("GET /api/faults did not return an object")
        return data

    async def set_crl_outage(self, mode: Literal["503", "timeout"] | None) -> None:
        """``POST /api/faults`` with ``crl_outage``.

        Raises:
            ConnectError: the API does not answer.
        """
        await self._json("POST", "/faults", {"crl_outage": mode})

    async def set_psc_unavailable(self, unavailable: bool) -> None:
        """``POST /api/faults`` with ``token_check_unavailable`` (the fronts' PSC token checks only).

        Raises:
            ConnectError: the API does not answer.
        """
        await self._json("POST", "/faults", {"token_check_unavailable": unavailable})

    async def set_bad_server_certificate(self, kind: BadServerCertificate | None) -> None:
        """``POST /api/faults`` with ``bad_server_certificate``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: unknown ``kind`` (refused by the sandbox).
        """
        await self._json("POST", "/faults", {"bad_server_certificate": kind})

    async def end_sessions(self, bal: str, mode: EndMode) -> int:
        """``DELETE /api/sessions/{bal}?mode=``.

        Raises:
            ConnectError: the API does not answer.
        """
        data = await self._json("DELETE", f"/sessions/{urllib.parse.quote(bal, safe='@')}?mode={mode}")
        return int(data.get("ended", 0)) if isinstance(data, dict) else 0

    async def end_psc_sessions(self, national_id: str) -> int:
        """``DELETE /api/psc/sessions/{national_id}``.

        Raises:
            ConfigError: the running sandbox is older and does not offer it.
            ConnectError: the API does not answer.
        """
        try:
            data = await self._json("DELETE", f"/psc/sessions/{urllib.parse.quote(national_id)}")
        except UsageError as exc:
            raise ConfigError("ce bac à sable ne sait pas terminer une session PSC par son API "
                              "(DELETE /api/psc/sessions/{national_id}) : mettez mssante à jour puis relancez "
                              "« mssante sandbox up »") from exc
        return int(data.get("ended", 0)) if isinstance(data, dict) else 0

    async def list_messages(self, bal: str, folder: str = "INBOX") -> list[MessageSummary]:
        """``GET /api/bals/{bal}/messages?folder=``.

        Raises:
            UsageError: unknown BAL or folder.
            ConnectError: the API does not answer.
        """
        path = f"/bals/{urllib.parse.quote(bal, safe='@')}/messages?folder={urllib.parse.quote(folder)}"
        data = await self._json("GET", path)
        out = []
        for m in data.get("messages", ()) if isinstance(data, dict) else ():
            sender = m.get("from") or {}
            headers = {"Message-ID": m.get("message_id") or "", "Subject": m.get("subject") or "",
                       "From": str(sender.get("address") or "")}
            out.append(MessageSummary(uid=int(m["uid"]), flags=tuple(m.get("flags", ())), headers=headers))
        return out

    async def get_message(self, bal: str, folder: str, uid: int) -> bytes:
        """``GET /api/bals/{bal}/messages/{uid}/raw?folder=``.

        Raises:
            UsageError: unknown BAL, folder or UID.
            ConnectError: the API does not answer.
        """
        path = f"/bals/{urllib.parse.quote(bal, safe='@')}/messages/{uid}/raw?folder={urllib.parse.quote(folder)}"
        data = await self._acall("GET", path)
        return data if isinstance(data, bytes) else json.dumps(data).encode()

    async def deliver(self, bal: str, message: bytes) -> None:
        """``POST /api/bals/{bal}/messages`` with the raw message.

        Raises:
            UsageError: refused by the API.
            ConnectError: the API does not answer.
        """
        await self._acall("POST", f"/bals/{urllib.parse.quote(bal, safe='@')}/messages", message, "message/rfc822")

    async def server_names(self, since: float) -> list[str | None]:
        """``GET /api/tls/handshakes?since=``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API refused.
        """
        data = await self._json("GET", f"/tls/handshakes?since={since:.6f}")
        items = data.get("handshakes", ()) if isinstance(data, dict) else ()
        return [str(h["server_name"]) if h.get("server_name") else None for h in items if isinstance(h, dict)]

    async def _listed(self, path: str, key: str, read: Callable[[Any], T], since: float) -> list[T]:
        data = await self._json("GET", f"{path}?since={since:.6f}")
        try:
            return [read(item) for item in data[key]]
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"GET /api{path}: unexpected answer ({exc})") from None

    async def client_hellos(self, since: float) -> list[HelloRecord]:
        """``GET /api/tls/client-hellos?since=``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API refused, or answered something else.
        """
        return await self._listed("/tls/client-hellos", "client_hellos", HelloRecord.from_json, since)

    async def dns_queries(self, since: float) -> list[DNSQuery]:
        """``GET /api/dns/queries?since=``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API refused, or answered something else.
        """
        return await self._listed("/dns/queries", "queries", DNSQuery.from_json, since)

    async def set_tls_probe(self, mode: TLSProbe | None) -> None:
        """``POST /api/faults`` with ``tls_probe``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API refused.
        """
        await self._json("POST", "/faults", {"tls_probe": mode})

    async def publish_event(self, event: dict[str, Any]) -> None:
        """``POST /api/conformance/events``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API refused the event.
        """
        await self._json("POST", "/conformance/events", event)

    async def step_ack(self, step: str) -> dict[str, Any] | None:
        """``GET /api/conformance/steps/{step}``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API refused.
        """
        data = await self._json("GET", f"/conformance/steps/{urllib.parse.quote(step)}")
        return data if isinstance(data, dict) and data.get("done") else None

    async def alive(self) -> bool:
        """``GET /api/health`` answers 200."""
        try:
            data = await self._json("GET", "/health")
        except (ConnectError, UsageError):
            return False
        return isinstance(data, dict) and data.get("status") == "ok"

    async def aclose(self) -> None:
        """Nothing to release."""

    async def annuaire_log(self, since: float) -> list[dict[str, Any]] | None:
        """``GET /api/annuaire/access-log?since=``.

        Raises:
            ConnectError: the API does not answer.
            UsageError: the API refused.
        """
        data = await self._json("GET", f"/annuaire/access-log?since={since:.6f}")
        items = data.get("requests", ()) if isinstance(data, dict) else ()
        return [dict(i) for i in items if isinstance(i, dict)]

    async def psc_logins(self, national_id: str, since: float) -> int | None:
        """``GET /api/psc/sessions/{national_id}?since=``; None when this sandbox does not say.

        Raises:
            ConnectError: the API does not answer.
        """
        try:
            data = await self._json("GET", f"/psc/sessions/{urllib.parse.quote(national_id)}?since={since:.6f}")
        except UsageError:  # an older sandbox: the route is DELETE only
            return None
        value = data.get("logins") if isinstance(data, dict) else None
        return value if isinstance(value, int) else None

    def access_token_lifetime(self) -> float | None:
        """``psc.access_token_lifetime`` of ``sandbox.json``, when given."""
        value = self._info.get("psc", {}).get("access_token_lifetime")
        return float(value) if isinstance(value, int | float) else None
