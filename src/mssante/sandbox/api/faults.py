"""Fault injection through the API: ``POST /api/faults`` bodies and the ``GET`` answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mssante.errors import UsageError
from mssante.sandbox.fronts.faults import BAD_SERVER_CERTIFICATES

if TYPE_CHECKING:
    from mssante.sandbox.runner import Sandbox

__all__ = ["apply_faults", "faults_json"]


def faults_json(sandbox: Sandbox) -> dict[str, Any]:
    """The faults in force and the live authenticated sessions.

    Raises:
        Nothing.
    """
    faults = sandbox.faults
    return {
        "psc_unavailable": faults.psc_unavailable,
        "delay": faults.delay,
        "pending_auth_failures": faults.pending_auth_failures,
        "bad_server_certificate": faults.bad_server_certificate,
        "live_sessions": [{"bal": s.bal, "front": s.front} for s in faults.sessions()],
    }


def apply_faults(sandbox: Sandbox, payload: dict[str, Any]) -> None:
    """Apply a fault request: ``{"psc_unavailable": bool, "delay": s, "fail_auth": {...},
    "bad_server_certificate": "expired"|"foreign"|"wrong-host"|"revoked"|null}``.

    Raises:
        UsageError: a field has the wrong type or an unknown value.
    """
    faults = sandbox.faults
    known = {"psc_unavailable", "delay", "fail_auth", "bad_server_certificate"}
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
