"""Starting and finishing logins: the browser (authorization code) flow and CIBA.

* Browser: the bridge builds the authorization URL with ``mssante.psc`` (PKCE S256, state,
  nonce), keeps the pending request encrypted in the store, hosts the redirect URI, and there
  redeems the code server side; the client secret never leaves the bridge (ANS: "serveur
  intermédiaire"). The thick client only opens the URL and awaits the result.
* CIBA: the bridge sends the request with the national id and a binding message, and polls
  PSC in a background task of the replica that started it (CIBA Core §7.3, poll mode).

A finished login is handed over once: the waiting client receives the session id and
secret, and the login record is deleted by that read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mssante.bridge._core import BridgeCore
from mssante.bridge._crypto import new_id
from mssante.bridge._errors import BridgeError
from mssante.bridge._records import LoginRecord
from mssante.errors import AuthUnavailable, MssanteError, PSCError, UsageError
from mssante.psc import AuthorizationRequest, Channel, CibaRequest, TokenSet

__all__ = ["LoginFlows"]

log = logging.getLogger("mssante.bridge")
#: The failure code of a login whose session the store could not keep (answered 503: log in again).
_STORE_FAILED = "store_unavailable"

#: Seconds at most between store reads while a client awaits a login; a login finished by this process
#: wakes its waiter at once, so the reads only matter for one finished by another replica (browser callback).
_POLL_STEP = 0.5
#: The same, for a CIBA login whose PSC polling runs in this process: it wakes its waiter when it ends, so the
#: store is read only as a safety net (10,000 logins waited on at once on Redis: two reads per waiter and
#: second emptied the connection pool, and logins failed with 503).
_LOCAL_STEP = 5.0


class LoginFlows:
    """Browser and CIBA logins on top of a :class:`BridgeCore`."""

    def __init__(self, core: BridgeCore) -> None:
        """Use ``core``'s store, PSC client and cipher."""
        self.core = core
        self._finished: dict[str, asyncio.Event] = {}  # logins whose result a client awaits here
        self._polling: set[str] = set()  # CIBA logins whose PSC polling runs in this process

    def _wake(self, login_id: str) -> None:
        finished = self._finished.pop(login_id, None)
        if finished is not None:
            finished.set()

    def _unknown(self) -> BridgeError:
        return BridgeError(404, "login_not_found", "no such login for this installation (or it expired)")

    async def start_browser(self, installation_id: str) -> tuple[str, str, float]:
        """Begin an authorization code login; return ``(login_id, authorization_url, expires_in)``.

        Raises:
            ConfigError: the redirect URI is not acceptable to ``mssante.psc``.
            PSCError, AuthUnavailable, TransportError, TrustError: PSC's discovery failed.
        """
        core = self.core
        url, request = await core.psc.begin_authorization(core.config.redirect_uri)
        login_id = new_id()
        pending = core.cipher.encrypt(json.dumps(request.to_dict()), context=f"{login_id}/pending")
        ttl = core.config.login_ttl
        await core.store.put_login(LoginRecord(
            login_id=login_id, installation_id=installation_id, method="browser", state=request.state.reveal(),
            pending=pending, expires_at=core.clock() + ttl))
        core.audit.record("login_start", "ok", installation=installation_id, detail="browser")
        return login_id, url, ttl

    async def callback(self, params: Mapping[str, str], ip: str = "") -> None:
        """Finish a browser login at the redirect URI: check state, redeem the code once.

        Raises:
            BridgeError: 400 ``invalid_state`` (unknown, expired or already used state: a
                replayed callback never reaches PSC, whose code replay detection would revoke
                the tokens, RFC 6749 §4.1.2); 400 with PSC's error when the exchange failed
                (``access_denied``, ``invalid_grant``...).
            AuthUnavailable: the store is unreachable.
        """
        core = self.core
        login = await core.store.login_for_state(params.get("state", ""))
        if login is None or login.method != "browser" or login.status != "pending":
            core.audit.record("login_callback", "invalid_state", ip=ip)
            raise BridgeError(400, "invalid_state", "this login is unknown, expired or already finished",
                              requirement="RFC 6749 §10.12")
        claim = await core.store.acquire_lock("login:" + login.login_id, core.config.lock_ttl)
        if claim is None:  # a concurrent callback for the same login is being handled
            raise BridgeError(400, "invalid_state", "this login is already being finished")
        try:
            request = AuthorizationRequest.from_dict(json.loads(
                core.cipher.decrypt(login.pending, context=f"{login.login_id}/pending").reveal()))
            try:
                tokens = await core.psc.complete_authorization(request, dict(params))
            except MssanteError as exc:
                code = exc.oauth_error if isinstance(exc, PSCError) and exc.oauth_error else exc.error
                await self._fail(login, code, exc.message)
                raise BridgeError(400, code, f"the login failed: {exc.message}") from exc
            await self._complete(login, tokens)
        finally:
            await core.store.release_lock("login:" + login.login_id, claim)

    async def start_ciba(self, installation_id: str, national_id: str, *, binding_message: str | None = None,
                         channel: Channel = "MOBILE") -> tuple[str, str, float]:
        """Send a CIBA request; return ``(login_id, binding_message, expires_in)``; poll PSC in the background.

        Raises:
            BridgeError: 400 ``invalid_request`` (bad national id, channel or binding message)
                or PSC's refusal (``unknown_user_id``, ``unauthorized_client``...).
            AuthUnavailable, TransportError, TrustError: PSC could not be reached.
        """
        core = self.core
        message = binding_message if binding_message is not None else f"{secrets.randbelow(100):02d}"
        try:
            request = await core.psc.start_ciba(national_id, binding_message=message, channel=channel)
        except UsageError as exc:
            raise BridgeError(400, "invalid_request", exc.message) from exc
        except PSCError as exc:
            raise BridgeError(400, exc.oauth_error or "psc_error", exc.message) from exc
        login_id = new_id()
        expires_in = max(1.0, request.expires_at - core.clock())
        login = LoginRecord(login_id=login_id, installation_id=installation_id, method="ciba", state="",
                            pending="", expires_at=core.clock() + expires_in + 60)
        await core.store.put_login(login)
        self._polling.add(login_id)
        core.spawn(self._poll(login, request), "bridge-ciba")
        core.audit.record("login_start", "ok", installation=installation_id, detail="ciba")
        return login_id, request.binding_message, expires_in

    async def _poll(self, login: LoginRecord, request: CibaRequest) -> None:
        try:
            try:
                tokens = await self.core.psc.wait_ciba(request)
            except MssanteError as exc:
                code = exc.oauth_error if isinstance(exc, PSCError) and exc.oauth_error else exc.error
                await self._fail(login, code, exc.message)
                return
            try:
                await self._complete(login, tokens)
            except MssanteError as exc:  # told to the waiting client by _complete
                log.warning("a CIBA login could not be completed: %s", exc.error)
        finally:
            self._polling.discard(login.login_id)
            self._wake(login.login_id)  # however it ended: the waiter reads the store now, not at its next step

    async def _complete(self, login: LoginRecord, tokens: TokenSet) -> None:
        """Keep the session and hand it to the waiting client; if it cannot be kept, say so at once.

        A store that fails here (10,000 logins on a busy Redis: no pooled connection in time) would
        otherwise leave the login pending until it expires, the client waiting for nothing, and PSC's
        session open with nobody to end it: its refresh token is revoked and the login fails
        (``store_unavailable``, answered 503: log in again).
        """
        core = self.core
        try:
            session_id, secret = await core.open_session(login.installation_id, tokens)
            sealed = core.cipher.encrypt(secret, context=f"{login.login_id}/secret")
            await core.store.put_login(replace(login, status="complete", session_id=session_id,
                                               session_secret=sealed, pending=""))
        except MssanteError as exc:
            if tokens.refresh_token is not None:
                with contextlib.suppress(MssanteError):
                    await core.psc.revoke(tokens.refresh_token)
            code = _STORE_FAILED if isinstance(exc, AuthUnavailable) else exc.error
            with contextlib.suppress(MssanteError):
                await self._fail(login, code, "the bridge could not keep the session; log in again")
            raise
        self._wake(login.login_id)
        core.audit.record("login_complete", "ok", installation=login.installation_id, session=session_id,
                          detail=login.method)

    async def _fail(self, login: LoginRecord, error: str, message: str) -> None:
        core = self.core
        await core.store.put_login(replace(login, status="failed", error=error[:64], message=message[:300],
                                           pending=""))
        self._wake(login.login_id)
        core.audit.record("login_complete", error[:64], installation=login.installation_id, detail=login.method)

    async def result(self, installation_id: str, login_id: str, wait: float) -> dict[str, Any] | None:
        """Await a login's outcome up to ``wait`` seconds; None while pending.

        Returns:
            ``{"session_id", "session_secret", "subject"}`` once (the login is then forgotten).

        Raises:
            BridgeError: 404 ``login_not_found`` (unknown, expired, another installation's, or
                already handed over); 400 with the failure code (``expired_token``,
                ``access_denied``...); 503 ``store_unavailable`` (the store failed to keep the session:
                log in again).
            AuthUnavailable: the store is unreachable.
        """
        core = self.core
        deadline = core.clock() + max(0.0, min(wait, 60.0))
        # Registered before each read of the store, so a login finished while the read is under way still
        # wakes this waiter (else it would sleep a whole step).
        finished = self._finished.setdefault(login_id, asyncio.Event())
        try:
            while True:
                login = await core.store.get_login(login_id) if len(login_id) <= 64 else None
                if login is None or login.installation_id != installation_id:
                    raise self._unknown()
                if login.status != "pending":
                    break
                left = deadline - core.clock()
                if left <= 0:
                    return None
                step = _LOCAL_STEP if login_id in self._polling else _POLL_STEP
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), min(step, left))
                if finished.is_set():  # woken (``_wake`` dropped it): a new event for the next wait
                    finished = self._finished.setdefault(login_id, asyncio.Event())
        finally:
            if self._finished.get(login_id) is finished:
                del self._finished[login_id]
        if not await core.store.take_login(login_id):
            raise self._unknown()
        if login.status == "failed":
            raise BridgeError(503 if login.error == _STORE_FAILED else 400, login.error or "login_failed",
                              login.message or "the login failed",
                              retry_after="5" if login.error == _STORE_FAILED else None)
        secret = core.cipher.decrypt(login.session_secret, context=f"{login_id}/secret")
        record = await core.store.get_session(login.session_id)
        return {"session_id": login.session_id, "session_secret": secret.reveal(),
                "subject": record.subject if record is not None else ""}
