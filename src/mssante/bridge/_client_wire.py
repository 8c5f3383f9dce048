"""The HTTP exchanges of :mod:`mssante.bridge.client` with the bridge: error mapping, logins, event stream.

Package-private: :class:`~mssante.bridge.client.BridgeClient` and
:class:`~mssante.bridge.client.BridgeTokenSource` are the public face; these helpers hold the
wire details (the error answers, the login long-poll, the server-sent events and their
reconnection with backoff).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import httpx2

from mssante.errors import AuthUnavailable, ConfigError, PSCError, TimeoutError, UsageError

__all__ = ["SESSION_SECRET_HEADER", "listen_with_backoff", "poll_login", "post_login", "raise_for", "stream_events"]

log = logging.getLogger("mssante.bridge.client")
SESSION_SECRET_HEADER: Final = "X-Session-Secret"  # noqa: S105 - a header name
_BACKOFF: Final = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # seconds between event stream reconnections


def _failure(response: httpx2.Response) -> tuple[str, str]:
    try:
        body = response.json()
        return str(body.get("error", "")), str(body.get("message", ""))[:300]
    except (ValueError, AttributeError):
        return "", f"HTTP {response.status_code}"


def raise_for(response: httpx2.Response, what: str) -> None:
    """Map a bridge error answer to our errors."""
    if response.status_code < 400:
        return
    code, message = _failure(response)
    if response.status_code in (429, 502, 503, 504) or response.status_code >= 500:
        raise AuthUnavailable(f"the bridge cannot {what} now: {message or code}", imap_code="UNAVAILABLE")
    if response.status_code == 401:
        raise ConfigError(f"the bridge refused this installation's credentials ({code})")
    if response.status_code == 403:  # delegate_forbidden: what only the session's owner may do
        raise UsageError(f"the bridge refused: {message or code}")
    if code in ("session_ended", "session_not_found"):
        raise PSCError(f"the PSC session is over: {message}", oauth_error="invalid_grant", requirement="ECO.1.2.6")
    raise PSCError(f"the bridge could not {what}: {message or code}", oauth_error=code or None)


# -- logins ------------------------------------------------------------------------------------
async def post_login(http: httpx2.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """Start a login (``POST /logins``); return the bridge's answer."""
    try:
        response = await http.post("/logins", json=body)
    except httpx2.HTTPError as exc:
        raise AuthUnavailable(f"the bridge is unreachable ({type(exc).__name__})") from exc
    raise_for(response, "start a login")
    result: dict[str, Any] = response.json()
    return result


async def poll_login(http: httpx2.AsyncClient, login_id: str, max_wait: float) -> dict[str, Any]:
    """Long-poll ``GET /logins/{login_id}`` until the login is over; return the session's description."""
    deadline = time.monotonic() + max_wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the login did not finish within {max_wait:g} s")
        wait = min(25.0, left)
        try:
            response = await http.get(f"/logins/{login_id}", params={"wait": f"{wait:.1f}"}, timeout=wait + 10)
        except httpx2.HTTPError as exc:
            raise AuthUnavailable(f"the bridge is unreachable ({type(exc).__name__})") from exc
        raise_for(response, "finish the login")
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body


# -- event stream ------------------------------------------------------------------------------
async def listen_with_backoff(stream_once: Callable[[], Awaitable[None]], *, ended: asyncio.Event,
                              listening: asyncio.Event, end: Callable[[str], None]) -> None:
    """Run ``stream_once`` again and again, with backoff, until ``ended`` is set.

    Network failures reconnect; a refusal (:class:`PSCError`, :class:`ConfigError`) ends the
    session through ``end``; a closed HTTP client (``RuntimeError``) stops quietly.
    """
    failures = 0
    while not ended.is_set():
        try:
            await stream_once()
            failures = 0
        except (httpx2.HTTPError, AuthUnavailable) as exc:
            log.info("bridge event stream interrupted (%s); reconnecting", type(exc).__name__)
        except (PSCError, ConfigError) as exc:
            end(getattr(exc, "oauth_error", None) or exc.error)
            return
        except RuntimeError:  # the BridgeClient was closed under us
            return
        finally:
            listening.clear()
        if not ended.is_set():
            await asyncio.sleep(_BACKOFF[min(failures, len(_BACKOFF) - 1)])
            failures += 1


async def stream_events(http: httpx2.AsyncClient, url: str, headers: Mapping[str, str], read_timeout: float,
                        dispatch: Callable[[str, str], bool],
                        refused: Callable[[httpx2.Response], None] | None = None) -> None:
    """Read the server-sent events at ``url``, handing each to ``dispatch(event, data)`` until it returns true.

    ``refused`` sees an error answer first (and may raise its own error), before the common mapping.
    """
    timeout = httpx2.Timeout(10.0, read=read_timeout)
    async with http.stream("GET", url, headers=headers, timeout=timeout) as response:
        if response.status_code >= 400:
            await response.aread()
            if refused is not None:
                refused(response)
            raise_for(response, "stream events")
        event, data = "message", ""
        async for line in response.aiter_lines():
            if line == "":
                if dispatch(event, data):
                    return
                event, data = "message", ""
            elif line.startswith(":"):
                continue
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
