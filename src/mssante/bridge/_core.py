"""The bridge's engine, without HTTP: installations, sessions, tokens, events, logout.

Exactly-once refresh across replicas (PSC rotates refresh tokens, so a second refresh with the
old token would answer ``invalid_grant`` and kill the session, RFC 9700 §4.14.2):

1. look for a usable access token: this process's memory, then (Redis) the shared cache;
2. otherwise take the session's refresh lock (Redis ``SET NX PX`` + compare-and-delete);
   a replica that does not get it waits and re-reads the shared cache;
3. holding the lock, look again (the previous holder may just have refreshed), else refresh,
   write the record with a compare-and-swap on its version, share the new access token, release.

Session records are cached in this process's memory (at most :data:`MAX_CACHED` of them, each
for ``session_cache_ttl`` seconds), so that a token request answered from the access-token cache
touches neither the store nor a thread. The cache is invalidated by the store's events: a session
ended or refreshed by any instance publishes ``session_ended`` / ``session_changed``, and a record is
served from the cache only while :meth:`SessionStore.events_current` says no event can be missing.
A ``fresh`` request (after ``[AUTHENTICATIONFAILED]``), a refresh and an end always read the store.

Refresh ahead: a session whose client holds an event stream on this process is refreshed by the
bridge itself, at a random point between :data:`AHEAD_FROM` and :data:`AHEAD_TO` of its access
token's life (never later than ``refresh_margin`` before its expiry), at most
``refresh_concurrency`` refreshes at a time, earliest due first. The random point spreads sessions
that logged in together (10,000 logins within a minute would otherwise all expire within the same
minute, every cycle), and the client's own token request, made shortly before its token expires,
is answered from memory instead of waiting for PSC. PSC's session stays alive as long as the
client listens.

Access tokens are never written to disk. They are kept in process memory (as
:class:`~mssante.secret.Secret`) until they expire; with Redis they are also shared between
replicas AES-GCM-encrypted, under a key that never reaches Redis, with a TTL equal to their
remaining lifetime (~120 s), so that a replica can answer with the token another one just got.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from mssante.bridge._audit import Audit
from mssante.bridge._config import BridgeConfig
from mssante.bridge._crypto import (
    TokenCipher,
    hash_installation_secret,
    new_id,
    session_secret_digest,
    verify_installation_secret,
)
from mssante.bridge._errors import BridgeError, ended, not_found
from mssante.bridge._records import RESYNC, SessionRecord, SessionStore
from mssante.bridge._rp import check_logout_token, logout_at_psc
from mssante.errors import MssanteError, PSCError
from mssante.psc import PSCClient, TokenSet
from mssante.secret import Secret

__all__ = ["BridgeCore"]

log = logging.getLogger("mssante.bridge")
_DUMMY_DIGEST = session_secret_digest("not-a-session")
#: Seconds at most between looks at the shared cache while another instance refreshes; a waiter is woken
#: sooner by the refresh's ``session_changed`` event (or the end's ``session_ended``).
_WAIT_STEP = 0.25
#: Session records kept in memory at most; the oldest cached are dropped first.
MAX_CACHED: Final = 100_000
#: Events forwarded to a session's event streams (the others are for the replicas' caches).
_STREAM_EVENTS: Final = frozenset({"session_ended", "refresh_failed",
                                    "delegation_revoked"})  # delegation: _delegation.py (REVOKED)
#: Pseudo-event queued to every event stream when events may have been lost: look at the store.
CHECK: Final = "_check"
#: Refresh ahead between these fractions of an access token's life (see the module's docstring).
AHEAD_FROM: Final = 0.6
AHEAD_TO: Final = 0.85
#: Seconds before a refresh ahead is tried again after PSC failed it, or another holder had the lock.
_AHEAD_RETRY: Final = 5.0


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a shared refresh's failure as seen (its own request raises it; nobody else may await it)."""
    if not future.cancelled():
        future.exception()


class UrgentFirst:
    """At most ``size`` holders at once; the waiters enter most urgent first (lowest ``due``), then in order.

    The refreshes in flight at PSC are bounded (:attr:`BridgeConfig.psc_concurrency`); when more wait,
    the one whose token expires first goes first, so that a burst of refreshes ahead (tokens with a
    third of their life left) never holds back a client whose token is about to expire.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        """Waiters not yet let in (cancelled ones included until their turn comes)."""
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def slot(self, due: float) -> AsyncIterator[None]:
        """Hold one of the ``size`` places while the block runs; wait for it by urgency."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (due, next(self._order), turn))
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():  # let in, then cancelled: pass the place on
                    self._release()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            turn = heapq.heappop(self._waiting)[2]
            if not turn.done():  # a cancelled waiter is skipped
                turn.set_result(None)
                return
        self._free += 1


class BridgeCore:
    """Sessions and tokens for thick clients, over a :class:`SessionStore` and a :class:`PSCClient`.

    Attributes:
        refreshes: refreshes this process made (tests, metrics).
    """

    def __init__(self, config: BridgeConfig, *, store: SessionStore, psc: PSCClient, cipher: TokenCipher,
                 audit: Audit, clock: Callable[[], float] = time.time) -> None:
        """Wire the parts; :meth:`start` opens the store."""
        self.config = config
        self.store = store
        self.psc = psc
        self.cipher = cipher
        self.audit = audit
        self.clock = clock
        self.refreshes = 0
        self._memory: dict[str, tuple[Secret, float, float, int]] = {}
        # Sessions whose token in memory is the latest any replica announced (session_changed): while the
        # store's events are current, a refresh ahead need not look at the shared cache for a newer one.
        self._latest: set[str] = set()
        self._records: dict[str, tuple[SessionRecord, float]] = {}  # id -> (record, cached until)
        self._events_seen = 0  # bumped by every event: a store read that overlapped one is not cached
        self._changes: dict[str, asyncio.Event] = {}  # sessions whose refresh someone awaits
        self._verified: dict[str, bytes] = {}
        self._checking: dict[tuple[str, bytes], asyncio.Future[bool]] = {}  # scrypt checks under way
        self._subscribers: dict[str, set[asyncio.Queue[tuple[str, dict[str, Any]]]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logout_jtis: dict[str, float] = {}
        self._ahead: list[tuple[float, str]] = []  # heap of (when, session id): refreshes ahead
        self._ahead_at: dict[str, float] = {}  # the one live entry of each session in the heap
        self._ahead_wake = asyncio.Event()
        self._ahead_slots = asyncio.Semaphore(config.refresh_concurrency)
        self._psc_slots = UrgentFirst(config.psc_concurrency)  # refreshes in flight at PSC, earliest expiry first
        self._inflight: dict[str, asyncio.Future[tuple[Secret, float]]] = {}  # refreshes under way here
        self._random = random.Random()  # noqa: S311 - spreads refreshes, no secret

    async def start(self) -> None:
        """Open the store and start the session watcher.

        Raises:
            ConfigError: the store cannot be opened.
        """
        await self.store.start(self._on_event)
        if self.config.introspect_interval > 0:
            self.spawn(self._watch(), "bridge-watcher")
        if self.config.refresh_ahead:
            self.spawn(self._refresh_ahead(), "bridge-refresh-ahead")

    async def aclose(self) -> None:
        """Stop background tasks and close the store."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.store.aclose()

    def spawn(self, coro: Any, name: str) -> None:
        """Run ``coro`` in the background until it ends or the bridge closes."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- installations ------------------------------------------------------------------------
    async def add_installation(self, installation_id: str) -> str:
        """Register an installation; return its new secret (shown once, stored only as a scrypt hash).

        Raises:
            UsageError: the id is empty or has characters outside ``[A-Za-z0-9._-]``.
        """
        if not installation_id or not all(c.isalnum() or c in "._-" for c in installation_id):
            raise BridgeError(400, "invalid_installation_id", "installation ids use letters, digits, '.', '_', '-'")
        secret = new_id()
        await self.store.add_installation(installation_id, await asyncio.to_thread(hash_installation_secret, secret))
        self._verified.pop(installation_id, None)
        return secret

    def remembered(self, installation_id: str, secret: str) -> bool:
        """True when this credential was verified before (checking it again costs no scrypt)."""
        known = self._verified.get(installation_id)
        return known is not None and hmac.compare_digest(known, hashlib.sha256(secret.encode("utf-8")).digest())

    async def check_installation(self, installation_id: str, secret: str) -> bool:
        """Verify an installation credential (scrypt once, then a SHA-256 memo in memory).

        Raises:
            AuthUnavailable: the store is unreachable.
        """
        memo = hashlib.sha256(secret.encode("utf-8")).digest()
        known = self._verified.get(installation_id)
        if known is not None:
            return hmac.compare_digest(known, memo)
        # One scrypt for every concurrent request with the same credential: after a restart, thousands of
        # workstations of one installation come back at once, and each scrypt costs ~50 ms of CPU and 16 MiB.
        key = (installation_id, memo)
        pending = self._checking.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._verify(installation_id, secret, memo))
            self._checking[key] = pending
            pending.add_done_callback(lambda _: self._checking.pop(key, None))
        return await asyncio.shield(pending)

    async def _verify(self, installation_id: str, secret: str, memo: bytes) -> bool:
        stored = await self.store.installation_hash(installation_id)
        ok = await asyncio.to_thread(verify_installation_secret, secret, stored or "scrypt$2$1$1$AA$AA")
        if ok and stored is not None:
            self._verified[installation_id] = memo
            return True
        return False

    # -- sessions -----------------------------------------------------------------------------
    def _seal_tokens(self, session_id: str, tokens: TokenSet) -> dict[str, Any]:
        refresh = tokens.refresh_token
        extra = {"id_token": tokens.id_token.reveal() if tokens.id_token else "", "claims": dict(tokens.id_claims),
                 "scope": tokens.scope, "session_state": tokens.session_state or ""}
        return {
            "refresh_token": self.cipher.encrypt(refresh, context=f"{session_id}/refresh") if refresh else "",
            "id_token": self.cipher.encrypt(json.dumps(extra), context=f"{session_id}/id"),
            "refresh_expires_at": tokens.refresh_expires_at,
            "psc_sid": tokens.session_state or "",
        }

    def _token_set(self, record: SessionRecord) -> TokenSet:
        """Rebuild the previous token set of a record, for a refresh or a logout."""
        extra = json.loads(self.cipher.decrypt(record.id_token, context=f"{record.session_id}/id").reveal())
        refresh = self.cipher.decrypt(record.refresh_token, context=f"{record.session_id}/refresh")
        cached = self._memory.get(record.session_id)
        return TokenSet(
            access_token=cached[0] if cached else Secret("-"), expires_at=cached[2] if cached else 0.0,
            refresh_token=refresh, refresh_expires_at=record.refresh_expires_at,
            id_token=Secret(extra["id_token"]) if extra["id_token"] else None, id_claims=extra["claims"],
            session_state=extra["session_state"] or None, scope=extra["scope"],
        )

    async def open_session(self, installation_id: str, tokens: TokenSet) -> tuple[str, Secret]:
        """Store a new session for freshly obtained tokens; return its id and secret.

        Raises:
            PSCError: PSC gave no refresh token (the bridge could not keep the session).
            AuthUnavailable: the store is unreachable.
        """
        if tokens.refresh_token is None:
            raise PSCError("PSC gave no refresh token; the bridge cannot keep this session")
        session_id, secret = new_id(), new_id()
        now = self.clock()
        record = SessionRecord(
            session_id=session_id, installation_id=installation_id, secret_digest=session_secret_digest(secret),
            subject=tokens.national_id or tokens.subject or "", created_at=now, **self._seal_tokens(session_id, tokens),
        )
        await self.store.create_session(record, self.config.session_ttl)
        self._remember(record)
        await self._cache(session_id, tokens, record.version)
        self.audit.record("session_open", "ok", installation=installation_id, session=session_id,
                          subject=record.subject)
        return session_id, Secret(secret)

    async def session(self, installation_id: str, session_id: str, secret: str, *, allow_ended: bool = False,
                      fresh: bool = False) -> SessionRecord:
        """Return the session if this installation owns it and ``secret`` is its session secret.

        With ``fresh`` the record is read from the store, never from this process's cache.

        Raises:
            BridgeError: 404 ``session_not_found`` (unknown id, wrong secret, other installation:
                one answer for all), or 410 ``session_ended``.
            AuthUnavailable: the store is unreachable.
        """
        record = await self.current_session(session_id, fresh=fresh) if len(session_id) <= 64 else None
        digest = session_secret_digest(secret)
        expected = record.secret_digest if record is not None else _DUMMY_DIGEST
        same = hmac.compare_digest(digest.encode(), expected.encode())
        if record is None or not same or not hmac.compare_digest(record.installation_id, installation_id):
            raise not_found()
        if record.ended and not allow_ended:
            raise ended(record.ended)
        return record

    async def current_session(self, session_id: str, *, fresh: bool = False) -> SessionRecord | None:
        """Return the session record, from this process's cache when the store's events allow it.


        Raises:
            AuthUnavailable: the store is unreachable.
            ContentError: the stored record is corrupt.
        """
        cache = self.config.session_cache_ttl > 0 and self.store.events_current()
        if cache and not fresh:
            entry = self._records.get(session_id)
            if entry is not None and self.clock() < entry[1]:
                return entry[0]
        seen = self._events_seen
        record = await self.store.get_session(session_id)
        if cache and record is not None and seen == self._events_seen and self.store.events_current() \
                and seen == self._events_seen:
            self._remember(record)
        return record

    def _remember(self, record: SessionRecord) -> None:
        if self.config.session_cache_ttl <= 0:
            return
        records = self._records
        records.pop(record.session_id, None)
        records[record.session_id] = (record, self.clock() + self.config.session_cache_ttl)
        if len(records) > MAX_CACHED:
            del records[next(iter(records))]

    async def count_sessions(self) -> int:
        """Return the number of live sessions in the store.

        Raises:
            AuthUnavailable: the store is unreachable.
        """
        return await self.store.count_sessions()

    # -- access tokens ------------------------------------------------------------------------
    async def _cache(self, session_id: str, tokens: TokenSet, version: int) -> float:
        now = self.clock()
        expires = tokens.expires_at  # the earlier of expires_in and the JWT's exp (TokenSet)
        self._memory[session_id] = (tokens.access_token, now, expires, version)
        self._latest.add(session_id)
        if session_id in self._subscribers:
            self.plan_ahead(session_id, now, expires)
        if self.store.shared:
            sealed = self.cipher.encrypt(tokens.access_token, context=f"{session_id}/access")
            await self.store.cache_token(session_id, sealed, now, expires, version)
        return expires

    def _usable(self, entry: tuple[Any, float, float, int], floor: int) -> bool:
        _, obtained, expires, version = entry
        margin = min(self.config.refresh_margin, max(0.0, expires - obtained) / 2)
        return version >= floor and self.clock() < expires - margin

    async def _cached(self, session_id: str, floor: int) -> tuple[Secret, float] | None:
        entry = self._memory.get(session_id)
        if entry is not None and self._usable(entry, floor):
            return entry[0], entry[2]
        if self.store.shared:
            shared = await self.store.get_cached_token(session_id)
            if shared is not None and self._usable(shared, floor):
                token = self.cipher.decrypt(shared[0], context=f"{session_id}/access")
                self._memory[session_id] = (token, shared[1], shared[2], shared[3])
                self._latest.add(session_id)
                return token, shared[2]
        return None

    async def access_token(self, record: SessionRecord, *, fresh: bool = False) -> tuple[Secret, float]:
        """Return a valid access token and its expiry time, refreshing it once if needed.

        With ``fresh``, only a token obtained after ``record`` was read is returned (after the
        client's ``[AUTHENTICATIONFAILED]``); concurrent fresh requests share one refresh.

        Raises:
            BridgeError: 410 ``session_ended`` (refresh refused with ``invalid_grant``: the
                session is now ended and ``session_ended`` emitted, ECO.1.2.6); 503
                ``refresh_failed`` (PSC unreachable or erring; ``refresh_failed`` emitted; the
                session stays, ECO.1.2.7) or ``refresh_busy``.
            AuthUnavailable: the store is unreachable.
        """
        sid = record.session_id
        floor = record.version + 1 if fresh else 0
        deadline = self.clock() + self.config.lock_ttl
        while True:
            hit = await self._cached(sid, floor)
            if hit is not None:
                return hit
            running = self._inflight.get(sid)
            if running is not None:  # refreshing here already: share its outcome, no polling
                return await asyncio.shield(running)
            lock = await self.store.acquire_lock(sid, self.config.lock_ttl)
            if lock is None:  # another replica refreshes: its session_changed event wakes us
                if self.clock() > deadline:
                    raise BridgeError(503, "refresh_busy", "another refresh of this session is in progress",
                                      retry_after="1")
                await self._await_change(sid)
                continue
            try:
                return await self._refresh_once(sid, floor)
            finally:
                await self.store.release_lock(sid, lock)

    async def _refresh_once(self, session_id: str, floor: int, *, ahead: bool = False) -> tuple[Secret, float]:
        """Refresh, holding the session's lock; this process's other requests for it share the outcome.

        Under load, thousands of requests waiting for the refreshes of their sessions would otherwise
        poll the cache and the lock several times a second each, and that polling alone saturates the
        event loop. ``ahead``: refresh even if the token in the cache is still usable.
        """
        future: asyncio.Future[tuple[Secret, float]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self._inflight[session_id] = future
        try:
            held = self._memory.get(session_id)  # the token it replaces: the sooner it expires, the sooner its turn
            async with self._psc_slots.slot(held[2] if held is not None else 0.0):  # not in the HTTP pool's queue
                hit = None if ahead else await self._cached(session_id, floor)
                result = hit if hit is not None else await self._refresh(session_id)
        except Exception as exc:
            future.set_exception(exc)
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._inflight.get(session_id) is future:
                del self._inflight[session_id]

    async def _refresh(self, session_id: str) -> tuple[Secret, float]:
        record = await self.store.get_session(session_id)
        if record is None:
            raise not_found()
        if record.ended:
            raise ended(record.ended)
        try:
            tokens = await self.psc.refresh(self._token_set(record))
        except PSCError as exc:
            if exc.oauth_error == "invalid_grant":
                await self.end(session_id, "invalid_grant")
                raise ended("invalid_grant") from exc
            await self._refresh_failed(record, exc)
            raise BridgeError(503, "refresh_failed", f"PSC refused the refresh: {exc.oauth_error}",
                              retry_after="5") from exc
        except MssanteError as exc:
            await self._refresh_failed(record, exc)
            raise BridgeError(503, "refresh_failed", "PSC is unreachable; try again", retry_after="5") from exc
        self.refreshes += 1
        new = record.bump(**self._seal_tokens(session_id, tokens))
        if not await self.store.swap_session(new, self.config.session_ttl):
            current = await self.store.get_session(session_id)  # ended (logout) while refreshing
            with contextlib.suppress(MssanteError):
                if tokens.refresh_token is not None:
                    await self.psc.revoke(tokens.refresh_token)
            raise ended(current.ended if current is not None and current.ended else "conflict")
        self._remember(new)
        expires = await self._cache(session_id, tokens, new.version)
        with contextlib.suppress(MssanteError):  # the other instances drop their cached record
            await self.store.publish(session_id, "session_changed", {"version": new.version})
        self.audit.record("refresh", "ok", installation=record.installation_id, session=session_id)
        return tokens.access_token, expires

    async def _refresh_failed(self, record: SessionRecord, exc: MssanteError) -> None:
        self.audit.record("refresh", "failed", installation=record.installation_id, session=record.session_id,
                          detail=exc.error)
        with contextlib.suppress(MssanteError):
            await self.store.publish(record.session_id, "refresh_failed", {"error": exc.error})

    # -- ending -------------------------------------------------------------------------------
    async def end(self, session_id: str, reason: str) -> SessionRecord | None:
        """Mark the session ended, forget its tokens and emit ``session_ended`` to every replica.

        Returns:
            The record as it was before (with its token ciphertexts), or None if it was unknown
            or already ended.

        Raises:
            AuthUnavailable: the store is unreachable.
        """
        for _ in range(10):
            record = await self.store.get_session(session_id)
            if record is None or record.ended:
                return None
            gone = record.bump(ended=reason, refresh_token="", id_token="")
            if await self.store.swap_session(gone, self.config.tombstone_ttl):
                break
        else:
            return None
        self._memory.pop(session_id, None)
        self._records.pop(session_id, None)
        self._latest.discard(session_id)
        await self.store.publish(session_id, "session_ended", {"reason": reason})
        self.audit.record("session_end", reason, installation=record.installation_id, session=session_id,
                          subject=record.subject)
        return record

    async def logout(self, record: SessionRecord) -> None:
        """End the session, then end it at PSC (end-session with ``id_token_hint``) and revoke its refresh token.

        ``session_ended`` is emitted first so that the client closes its IMAP/SMTP sessions at
        once (ECO.1.2.6); PSC failures are logged, the session is over for the bridge anyway.

        Raises:
            AuthUnavailable: the store is unreachable.
        """
        before = await self.end(record.session_id, "logout")
        if before is not None:
            tokens = self._token_set(before)
            await logout_at_psc(self.psc, tokens)

    async def backchannel_logout(self, logout_token: str) -> int:
        """Validate a back-channel logout token and end the sessions it names (OIDC BCL 1.0 §2.6-2.7).

        Returns:
            The number of sessions ended.

        Raises:
            PSCError: (``invalid_logout_token``) invalid or replayed token.
            AuthUnavailable, TransportError, TrustError: PSC's JWKS could not be fetched.
        """
        claims = await check_logout_token(self.psc, logout_token, self._logout_jtis)
        by_subject = "" if claims.sid else claims.subject or ""  # §2.7: sid names one session, sub alone all
        ids = await self.store.find_sessions(psc_sid=claims.sid or "", subject=by_subject)
        count = 0
        for session_id in ids:
            if await self.end(session_id, "backchannel_logout") is not None:
                count += 1
        self.audit.record("backchannel_logout", "ok", subject=claims.subject or "", detail=f"{count} session(s)")
        return count

    # -- events -------------------------------------------------------------------------------
    def subscribe(self, session_id: str) -> asyncio.Queue[tuple[str, dict[str, Any]]]:
        """Return a queue receiving this session's events until :meth:`unsubscribe`.

        The first subscriber of a session puts it in the refresh-ahead schedule (when enabled).
        """
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=64)
        queues = self._subscribers.setdefault(session_id, set())
        queues.add(queue)
        if len(queues) == 1 and session_id not in self._ahead_at:
            entry = self._memory.get(session_id)
            if entry is not None:
                self.plan_ahead(session_id, entry[1], entry[2])
            else:  # unknown here (another replica got its token): look at the shared cache soon
                self._schedule(session_id, self.clock() + self._random.uniform(0, _AHEAD_RETRY))
        return queue

    def unsubscribe(self, session_id: str, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        """Stop delivering events to ``queue``."""
        queues = self._subscribers.get(session_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[session_id]

    # -- refresh ahead ------------------------------------------------------------------------
    def plan_ahead(self, session_id: str, obtained: float, expires: float) -> float:
        """Schedule the refresh ahead of a token obtained at ``obtained`` that expires at ``expires``.

        Returns:
            The time chosen: uniformly between :data:`AHEAD_FROM` and :data:`AHEAD_TO` of the
            token's life, and never later than the refresh margin before its expiry.
        """
        life = max(0.0, expires - obtained)
        margin = min(self.config.refresh_margin, life / 2)
        when = min(obtained + life * self._random.uniform(AHEAD_FROM, AHEAD_TO), expires - margin)
        self._schedule(session_id, when)
        return when

    def _schedule(self, session_id: str, when: float) -> None:
        if not self.config.refresh_ahead:
            return
        self._ahead_at[session_id] = when
        heapq.heappush(self._ahead, (when, session_id))
        if self._ahead[0][1] == session_id:
            self._ahead_wake.set()

    async def _refresh_ahead(self) -> None:
        """Run the refreshes ahead when they are due, earliest first, ``refresh_concurrency`` at a time."""
        heap, planned = self._ahead, self._ahead_at
        while True:
            self._ahead_wake.clear()
            now = self.clock()
            while heap and heap[0][0] <= now:
                when, session_id = heapq.heappop(heap)
                if planned.get(session_id) != when:
                    continue  # replaced by a later plan
                del planned[session_id]
                if session_id not in self._subscribers:
                    continue  # nobody listens any more: the client asks when it needs a token
                await self._ahead_slots.acquire()
                self.spawn(self._renew(session_id), "bridge-refresh-ahead")
                now = self.clock()
            delay = heap[0][0] - now if heap else 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ahead_wake.wait(), delay)

    async def _young(self, session_id: str) -> tuple[float, float] | None:
        """``(obtained, expires)`` of a token of this session obtained less than half its life ago, if any."""
        def young(entry: tuple[Any, float, float, int] | None) -> bool:
            return entry is not None and self.clock() < entry[1] + (entry[2] - entry[1]) * AHEAD_FROM

        entry: tuple[Any, float, float, int] | None = self._memory.get(session_id)
        latest = session_id in self._latest and self.store.events_current()  # no replica announced a newer one
        if not young(entry) and self.store.shared and not latest:
            entry = await self.store.get_cached_token(session_id)
        return (entry[1], entry[2]) if entry is not None and young(entry) else None

    async def _renew(self, session_id: str) -> None:
        """Refresh ahead, unless someone (a token request, another replica) just did."""
        try:
            young = await self._young(session_id)
            if young is not None:
                self.plan_ahead(session_id, *young)
                return
            lock = await self.store.acquire_lock(session_id, self.config.lock_ttl)
            if lock is None:  # another refresh is under way; its result is looked at then
                self._schedule(session_id, self.clock() + _AHEAD_RETRY)
                return
            try:
                young = await self._young(session_id)
                if young is not None:
                    self.plan_ahead(session_id, *young)
                else:
                    await self._refresh_once(session_id, 0, ahead=True)  # plans the next one (_cache)
            finally:
                await self.store.release_lock(session_id, lock)
        except BridgeError as exc:
            if exc.code == "refresh_failed":  # PSC erred (refresh_failed emitted): again, while the token lasts
                self._retry_ahead(session_id)
        except MssanteError as exc:
            log.warning("refresh ahead failed: %s", exc.error)
            self._retry_ahead(session_id)
        finally:
            self._ahead_slots.release()

    def _retry_ahead(self, session_id: str) -> None:
        entry = self._memory.get(session_id)
        now = self.clock()
        left = entry[2] - now if entry is not None else 0.0
        if left > _AHEAD_RETRY:  # halfway to the expiry each time: a few tries, not a flood on a PSC that is down
            self._schedule(session_id, now + max(_AHEAD_RETRY, left / 2))

    async def _await_change(self, session_id: str) -> None:
        """Wait until the session changes (refreshed or ended anywhere), at most ``_WAIT_STEP`` seconds."""
        changed = self._changes.setdefault(session_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), _WAIT_STEP)

    def _on_event(self, session_id: str, event: str, data: dict[str, Any]) -> None:
        self._events_seen += 1
        if event == RESYNC:  # events may have been lost: every event stream looks at the store
            self._records.clear()
            self._latest.clear()
            for queues in self._subscribers.values():
                for queue in queues:
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait((CHECK, {}))
            return
        changed = self._changes.pop(session_id, None)
        if changed is not None:
            changed.set()
        if event == "session_ended":
            self._memory.pop(session_id, None)
            self._records.pop(session_id, None)
            self._latest.discard(session_id)
        elif event == "session_changed":
            entry = self._records.get(session_id)
            version = data.get("version")
            held = self._memory.get(session_id)
            if held is None or not isinstance(version, int) or held[3] < version:  # another replica refreshed
                self._latest.discard(session_id)
            if entry is not None and (not isinstance(version, int) or entry[0].version < version):
                del self._records[session_id]
        if event not in _STREAM_EVENTS:
            return
        for queue in list(self._subscribers.get(session_id, ())):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((event, data))

    async def _watch(self) -> None:
        """Check the sessions whose client listens here: refresh token expiry, introspection."""
        while True:
            await asyncio.sleep(self.config.introspect_interval)
            for session_id in list(self._subscribers):
                try:
                    await self._check(session_id)
                except MssanteError as exc:
                    log.warning("session check failed: %s", exc.error)

    async def _check(self, session_id: str) -> None:
        record = await self.store.get_session(session_id)
        if record is None or record.ended:
            return
        if record.refresh_expires_at is not None and self.clock() >= record.refresh_expires_at:
            await self.end(session_id, "refresh_expired")
            return
        entry = self._memory.get(session_id)
        if entry is not None and self.clock() < entry[2] - 1:
            answer = await self.psc.introspect(entry[0], token_type_hint="access_token")  # noqa: S106
            if answer.get("active") is False:
                await self.end(session_id, "introspection_inactive")
