"""The thick client's side of the bridge: logins and a :class:`~mssante.credentials.TokenSource`.

The thick client never talks to PSC and never holds the PSC client secret (ANS webinar:
"serveur intermédiaire"). It holds an installation credential, and per login a session id and
secret, in memory. Access tokens are kept in memory only, until shortly before they expire
(ECO.1.2.5), wrapped in :class:`~mssante.secret.Secret`.

:class:`BridgeTokenSource` listens to the bridge's event stream: on ``session_ended`` it sets
:attr:`~BridgeTokenSource.ended` and runs the ``on_end`` callbacks, with which the mailbox
supervisor closes the IMAP/SMTP sessions (ECO.1.2.6); later calls to ``token()`` raise
``PSCError(oauth_error="invalid_grant")``. Network failures do not end the session: the stream
reconnects, and ``token()`` raises :class:`~mssante.errors.AuthUnavailable` (ECO.1.2.7).

Delegation (:mod:`mssante.bridge._delegation`): the owner of a session hands it to another
installation, a fleet of workers, with :meth:`BridgeTokenSource.delegate` (and takes it back with
:meth:`BridgeTokenSource.revoke`). The delegate's workers, each with that installation's own
credential and no session secret, use :meth:`BridgeClient.delegated`: a token source that gets
tokens and events like the owner's, ends on ``session_ended`` and on ``delegation_revoked``, and
is refused logout and delegation (:class:`~mssante.errors.UsageError`, HTTP 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from mssante._end_callbacks import EndCallbacks
from mssante.bridge._client_wire import (
    SESSION_SECRET_HEADER,
    listen_with_backoff,
    poll_login,
    post_login,
    raise_for,
    stream_events,
)
from mssante.errors import AuthUnavailable, PSCError, UsageError
from mssante.secret import Secret

__all__ = ["BridgeClient", "BridgeTokenSource", "PendingLogin"]

log = logging.getLogger("mssante.bridge.client")
EndCallback = Callable[["BridgeTokenSource"], Awaitable[None] | None]


class BridgeTokenSource:
    """PSC access tokens for one professional's session, obtained from the bridge.

    Attributes:
        session_id: the bridge session id.
        subject: the professional's national id, as the bridge reported it.
        ended: set once the session is over (logout, refresh refused, back-channel logout), or,
            for a delegate, once the owner revoked the delegation.
        end_reason: why it ended, once :attr:`ended` is set (for a delegate: ``delegation_revoked``
            when the owner revoked it, ``not_delegated`` when the bridge answered that the session is
            not delegated to this installation).
        delegated: true for a delegate's source (no session secret, see :meth:`BridgeClient.delegated`).
        listening: set while the event stream is connected and subscribed.
    """

    def __init__(self, client: BridgeClient, session_id: str, session_secret: Secret | None, *, subject: str = "",
                 margin: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Use the session ``session_id``; refetch tokens ``margin`` s before expiry (at most half their life).

        ``session_secret`` None: the session was delegated to ``client``'s installation (delegate routes).
        """
        self._client = client
        self.session_id = session_id
        self._secret = session_secret
        self.delegated = session_secret is None
        self.subject = subject
        self._margin = margin
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: tuple[Secret, float, float] | None = None
        self._callbacks: EndCallbacks[BridgeTokenSource] = EndCallbacks(log, "session")
        self._listener: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()
        self.listening = asyncio.Event()
        self.end_reason: str | None = None

    def __repr__(self) -> str:
        return (f"BridgeTokenSource(ended={self.ended.is_set()}, cached={self._cached is not None}, "
                f"delegated={self.delegated})")

    def _headers(self) -> dict[str, str]:
        return {} if self._secret is None else {SESSION_SECRET_HEADER: self._secret.reveal()}

    def _url(self, suffix: str = "") -> str:
        return f"/{'delegated' if self._secret is None else 'sessions'}/{self.session_id}{suffix}"

    # -- tokens -------------------------------------------------------------------------------
    async def token(self, *, fresh: bool = False) -> Secret:
        """Return a valid access token: the cached one, or a new one from the bridge.

        Raises:
            PSCError: ``oauth_error="invalid_grant"``: the PSC session is over (:attr:`ended`
                is set, ECO.1.2.6); other codes for other refusals.
            AuthUnavailable: the bridge (or PSC behind it) is unreachable or busy; the session
                stays valid, retry later (ECO.1.2.7).
            ConfigError: the bridge refused the installation credentials.
        """
        async with self._lock:
            if self.ended.is_set():
                raise self._over()
            if fresh:
                self._cached = None
            now = self._clock()
            if self._cached is not None:
                token, obtained, expires = self._cached
                if now < expires - min(self._margin, (expires - obtained) / 2):
                    return token
                self._cached = None
            try:
                response = await self._client.http.post(self._url("/token"), headers=self._headers(),
                                                        json={"fresh": fresh})
                self._refused(response)
                raise_for(response, "give a token")
                body = response.json()
                token = Secret(str(body["access_token"]))
                expires_in = float(body["expires_in"])
            except PSCError as exc:
                if exc.oauth_error == "invalid_grant":
                    self._end("session_ended")
                raise
            except httpx2.HTTPError as exc:
                raise AuthUnavailable(f"the bridge is unreachable ({type(exc).__name__})",
                                      imap_code="UNAVAILABLE") from exc
            except (ValueError, KeyError, TypeError) as exc:
                raise AuthUnavailable("the bridge answered an unreadable token") from exc
            if not token:
                raise PSCError("the bridge gave an empty token")
            self._cached = (token, now, now + max(0.0, expires_in))
            return token

    def _refused(self, response: httpx2.Response) -> None:
        """A delegate's 404: the session is not delegated to this installation (never, or revoked meanwhile)."""
        if self.delegated and response.status_code == 404:
            self._end("not_delegated")
            raise self._over()

    @property
    def end_message(self) -> str:
        """Why this source ended, for the mailboxes it ends (ECO.1.2.6): the same words whichever path saw the
        end first (the event stream, a token request's 404, a mailbox created after it)."""
        if self.end_reason in ("delegation_revoked", "not_delegated"):
            return f"the bridge session is not (or no longer) delegated to this installation ({self.end_reason})"
        return f"the PSC session is over ({self.end_reason})"

    def _over(self) -> PSCError:
        return PSCError(self.end_message, oauth_error="invalid_grant", requirement="ECO.1.2.6")

    # -- end ----------------------------------------------------------------------------------
    def on_end(self, callback: EndCallback) -> None:
        """Call ``callback(source)`` (sync or async) when the session ends; at once if it already has."""
        self._callbacks.add(callback, self, ended=self.ended.is_set())

    def remove_on_end(self, callback: EndCallback) -> None:
        """Forget ``callback`` (given to :meth:`on_end`); nothing happens if it is not registered.

        A mailbox calls it when it is closed, so that a long-lived source keeps no closed mailbox.
        """
        self._callbacks.remove(callback)

    def _end(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self._cached = None
        self.ended.set()
        log.info("bridge session ended (%s)", reason)
        self._callbacks.fire(self)

    # -- event stream -------------------------------------------------------------------------
    def listen(self) -> None:
        """Start the event-stream task (idempotent); it runs until the session ends or :meth:`aclose`."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="bridge-events")

    async def _listen(self) -> None:
        await listen_with_backoff(self._stream_once, ended=self.ended, listening=self.listening, end=self._end)

    async def _stream_once(self) -> None:
        await stream_events(self._client.http, self._url("/events"), self._headers(), self._client.stream_timeout,
                            self._dispatch, self._refused)

    def _dispatch(self, event: str, data: str) -> bool:
        """Handle one event; true when the stream is over."""
        try:
            payload = json.loads(data) if data else {}
        except ValueError:
            payload = {}
        if event == "ready":
            self.listening.set()
        elif event == "session_ended":
            self._end(str(payload.get("reason", "session_ended")))
            return True
        elif event == "delegation_revoked" and self.delegated:  # the delegate's stream only (its own delegation)
            self._end("delegation_revoked")
            return True
        elif event == "refresh_failed":
            log.warning("the bridge could not refresh the PSC session (%s); it stays open", payload.get("error"))
        return False

    # -- logout / close -----------------------------------------------------------------------
    async def logout(self) -> None:
        """Log out at the bridge (which ends the PSC session and revokes the refresh token).

        Raises:
            AuthUnavailable: the bridge is unreachable (the session is ended locally anyway).
            UsageError: a delegate's source: only the owner may log out (the bridge answers 403).
        """
        if self.delegated:  # asked of the bridge, which refuses; the session goes on for everyone
            response = await self._call("DELETE", "")
            raise_for(response, "log out")
            raise UsageError("the bridge did not refuse a delegate's logout")  # never: 403 or 404 above
        try:
            response = await self._client.http.delete(self._url(), headers=self._headers())
        except httpx2.HTTPError as exc:
            raise AuthUnavailable(f"the bridge is unreachable ({type(exc).__name__})") from exc
        finally:
            self._end("logout")
        if response.status_code >= 500:
            raise_for(response, "log out")

    # -- delegation (the owner's side) -----------------------------------------------------------
    async def _call(self, method: str, suffix: str, body: dict[str, Any] | None = None) -> httpx2.Response:
        try:
            return await self._client.http.request(method, self._url(suffix), headers=self._headers(), json=body)
        except httpx2.HTTPError as exc:
            raise AuthUnavailable(f"the bridge is unreachable ({type(exc).__name__})") from exc

    async def delegate(self, installation_id: str) -> list[str]:
        """Delegate this session to the installation ``installation_id`` (a fleet); return its delegates.

        The delegate gets tokens and events for the session with its own installation credential
        (:meth:`BridgeClient.delegated`), never the session secret; it cannot log out nor delegate.
        Delegating again to the same installation changes nothing.

        Raises:
            PSCError: ``installation_not_found``, ``invalid_request`` (the owner itself, too many
                delegates), or ``invalid_grant`` (the session is over, ECO.1.2.6).
            UsageError: this source is itself a delegate's (the bridge answers 403).
            AuthUnavailable: the bridge is unreachable or busy.
            ConfigError: the bridge refused the installation credentials.
        """
        response = await self._call("POST", "/delegations", {"installation_id": installation_id})
        raise_for(response, "delegate the session")
        return [str(d) for d in response.json()["delegates"]]

    async def delegations(self) -> list[str]:
        """The installations this session is delegated to.

        Raises:
            PSCError: ``invalid_grant``: the session is over (ECO.1.2.6).
            UsageError: this source is itself a delegate's (the bridge answers 403).
            AuthUnavailable: the bridge is unreachable or busy.
            ConfigError: the bridge refused the installation credentials.
        """
        response = await self._call("GET", "/delegations")
        raise_for(response, "list the delegations")
        return [str(d) for d in response.json()["delegates"]]

    async def revoke(self, installation_id: str) -> None:
        """Revoke the delegation to ``installation_id``: its event streams close, its token requests fail.

        Raises:
            PSCError: ``delegation_not_found``, or ``invalid_grant`` (the session is over).
            UsageError: this source is itself a delegate's (refused here; the bridge would answer 404).
            AuthUnavailable: the bridge is unreachable or busy.
            ConfigError: the bridge refused the installation credentials.
        """
        if self.delegated:
            raise UsageError("a delegate cannot revoke delegations; the session's owner can")
        response = await self._call("DELETE", f"/delegations/{installation_id}")
        raise_for(response, "revoke the delegation")

    async def aclose(self) -> None:
        """Stop listening and forget the cached token (the session stays open at the bridge)."""
        self._cached = None
        self._client._sources.discard(self)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None


class PendingLogin:
    """A browser login in progress: open :attr:`url` in the user's browser, then :meth:`wait`.

    Attributes:
        url: PSC's authorization URL.
        login_id: the bridge's login handle.
        expires_in: seconds the login stays valid.
    """

    def __init__(self, client: BridgeClient, login_id: str, url: str, expires_in: float) -> None:
        """Remember the login."""
        self._client = client
        self.login_id = login_id
        self.url = url
        self.expires_in = expires_in

    def __repr__(self) -> str:
        return "PendingLogin(<url>)"

    async def wait(self, max_wait: float | None = None) -> BridgeTokenSource:
        """Await the end of the login; return the session's token source (listening to events).

        Raises:
            PSCError: the login failed (``access_denied``, ``expired_token``, ``invalid_grant``...).
            TimeoutError: ``max_wait`` elapsed first.
            AuthUnavailable: the bridge is unreachable.
            ConfigError: the bridge refused the installation credentials.
        """
        return await self._client.await_login(self.login_id, self.expires_in if max_wait is None else max_wait)


class BridgeClient:
    """A thick-client installation's connection to the bridge (``async with BridgeClient(...) as c``).

    Attributes:
        http: the httpx2 client (base URL, installation credentials).
        stream_timeout: seconds without any byte after which the event stream reconnects.
    """

    def __init__(self, base_url: str, installation_id: str, installation_secret: str | Secret, *,
                 verify: ssl.SSLContext | bool = True, timeout: float = 30.0, stream_timeout: float = 60.0,
                 transport: httpx2.AsyncBaseTransport | None = None, margin: float = 10.0) -> None:
        """Connect to the bridge at ``base_url`` with an installation credential."""
        secret = installation_secret.reveal() if isinstance(installation_secret, Secret) else installation_secret
        self.http = httpx2.AsyncClient(base_url=base_url, auth=httpx2.BasicAuth(installation_id, secret),
                                       verify=verify, timeout=timeout, trust_env=False, transport=transport)
        self.stream_timeout = stream_timeout
        self._margin = margin
        self._sources: set[BridgeTokenSource] = set()  # each leaves when closed (a fleet worker's churn)

    def __repr__(self) -> str:
        return f"BridgeClient({str(self.http.base_url)!r})"

    async def __aenter__(self) -> BridgeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every token source's listener and close the connections."""
        for source in list(self._sources):
            await source.aclose()
        await self.http.aclose()

    async def begin_browser_login(self) -> PendingLogin:
        """Start a browser login; open the returned :attr:`PendingLogin.url`, then await it.

        Raises:
            PSCError, AuthUnavailable, ConfigError: see :meth:`PendingLogin.wait`.
        """
        body = await post_login(self.http, {"method": "browser"})
        return PendingLogin(self, str(body["login_id"]), str(body["authorization_url"]), float(body["expires_in"]))

    async def login_with_browser(self, open_url: Callable[[str], Awaitable[None] | None],
                                 max_wait: float | None = None) -> BridgeTokenSource:
        """Start a browser login, hand the URL to ``open_url`` (e.g. ``webbrowser.open``), await the end.

        Raises:
            PSCError, TimeoutError, AuthUnavailable, ConfigError: see :meth:`PendingLogin.wait`.
        """
        pending = await self.begin_browser_login()
        opened = open_url(pending.url)
        if inspect.isawaitable(opened):
            await opened
        return await pending.wait(max_wait)

    async def login_with_ciba(self, national_id: str, *, binding_message: str | None = None,
                              channel: str = "MOBILE", on_binding: Callable[[str], None] | None = None,
                              max_wait: float | None = None) -> BridgeTokenSource:
        """Log in by CIBA: the professional approves on their e-CPS / card; return the token source.

        ``on_binding`` receives the binding message to show in the application (CIBA Core §7.1).

        Raises:
            PSCError: ``access_denied``, ``expired_token``, ``unknown_user_id``...
            TimeoutError: ``max_wait`` elapsed first.
            AuthUnavailable: the bridge is unreachable.
            ConfigError: the bridge refused the installation credentials.
        """
        body: dict[str, Any] = {"method": "ciba", "national_id": national_id, "channel": channel}
        if binding_message is not None:
            body["binding_message"] = binding_message
        started = await post_login(self.http, body)
        if on_binding is not None:
            on_binding(str(started["binding_message"]))
        wait = float(started["expires_in"]) + 5 if max_wait is None else max_wait
        return await self.await_login(str(started["login_id"]), wait)

    def session(self, session_id: str, session_secret: str | Secret, *, listen: bool = False) -> BridgeTokenSource:
        """The token source of a session this installation owns, from its id and secret (kept by the LPS).

        ``listen``: start its event-stream task at once (see :meth:`BridgeTokenSource.listen`).
        Nothing is asked of the bridge here: a wrong id or secret shows at the first call.
        """
        secret = session_secret if isinstance(session_secret, Secret) else Secret(session_secret)
        return self._adopt(BridgeTokenSource(self, session_id, secret, margin=self._margin), listen)

    def delegated(self, session_id: str, *, listen: bool = True) -> BridgeTokenSource:
        """The token source of a session another installation delegated to this one (a fleet worker).

        Tokens and events come from the delegate routes, authenticated by this client's installation
        credential alone; :attr:`BridgeTokenSource.ended` is set by ``session_ended`` (ECO.1.2.6) and
        by ``delegation_revoked``. ``listen``: start the event-stream task at once.
        Nothing is asked of the bridge here: a session not delegated shows at the first call
        (``PSCError`` ``invalid_grant``, the one answer for an unknown session).
        """
        return self._adopt(BridgeTokenSource(self, session_id, None, margin=self._margin), listen)

    def _adopt(self, source: BridgeTokenSource, listen: bool) -> BridgeTokenSource:
        self._sources.add(source)
        if listen:
            source.listen()
        return source

    async def await_login(self, login_id: str, max_wait: float) -> BridgeTokenSource:
        """Long-poll the bridge for a login's outcome; return a listening token source.

        Raises:
            PSCError, TimeoutError, AuthUnavailable, ConfigError: see :meth:`PendingLogin.wait`.
        """
        body = await poll_login(self.http, login_id, max_wait)
        source = BridgeTokenSource(self, str(body["session_id"]), Secret(str(body["session_secret"])),
                                   subject=str(body.get("subject", "")), margin=self._margin)
        return self._adopt(source, True)
