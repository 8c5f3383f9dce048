"""What the bridge stores: sessions, pending logins, and the store interface both back ends implement."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Protocol

from mssante.errors import ContentError

__all__ = ["RESYNC", "EventListener", "LoginRecord", "SessionRecord", "SessionStore"]

LoginMethod = Literal["browser", "ciba"]
LoginStatus = Literal["pending", "complete", "failed"]
#: ``(session_id, event, data)``, called on the event loop, must not block; events are ``session_ended``,
#: ``refresh_failed`` (both forwarded to the session's event streams), ``session_changed`` (``{"version": n}``:
#: the record was rewritten, cached copies older than ``n`` are stale) and :data:`RESYNC` (session id ``""``:
#: events may have been lost, e.g. the Redis subscription was re-established; forget every cached record).
EventListener = Callable[[str, str, dict[str, Any]], None]
RESYNC = "resync"


@dataclass(frozen=True, kw_only=True)
class SessionRecord:
    """One thick client's PSC session, as stored. Token fields hold ciphertexts, never plaintext.

    Attributes:
        session_id: the bridge session id (256 random bits, base64url).
        installation_id: the installation that opened it; no other installation may use it.
        secret_digest: SHA-256 of the per-session secret (see :func:`session_secret_digest`).
        subject: the professional's ``sub`` / national id (audit, back-channel logout by ``sub``).
        psc_sid: PSC's session id (``sid`` claim), to match back-channel logout tokens.
        refresh_token: AES-GCM ciphertext of the refresh token; empty once the session ended.
        id_token: AES-GCM ciphertext of the ID token (``id_token_hint`` at logout); may be empty.
        refresh_expires_at: epoch seconds when the refresh token expires, if PSC said.
        created_at: epoch seconds.
        version: incremented at every write; writes are compare-and-swap on it.
        ended: why the session ended (``logout``, ``invalid_grant``...); empty while live.
        delegates: installations the owner delegated the session to (tokens and events only,
            see :mod:`mssante.bridge._delegation`); they end with the session.
    """

    session_id: str
    installation_id: str
    secret_digest: str
    subject: str
    psc_sid: str
    refresh_token: str
    id_token: str
    refresh_expires_at: float | None
    created_at: float
    version: int = 0
    ended: str = ""
    delegates: tuple[str, ...] = ()  # delegation (_delegation.py)

    def to_json(self) -> str:
        """Serialise for the store."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SessionRecord:
        """Parse what :meth:`to_json` wrote.

        Raises:
            ContentError: the stored value is not a session record.
        """
        record: SessionRecord = _parse(cls, text)
        delegates = tuple(record.delegates)
        if record.delegates != delegates:  # JSON gives a list: a record read back equals the one written
            record = replace(record, delegates=delegates)
        return record

    def bump(self, **changes: Any) -> SessionRecord:
        """Return a copy with ``changes`` and ``version + 1``.

        Raises:
            TypeError: an unknown field name.
        """
        return replace(self, version=self.version + 1, **changes)


@dataclass(frozen=True, kw_only=True)
class LoginRecord:
    """A login in progress (browser or CIBA); deleted once its result was handed over.

    Attributes:
        login_id: random id given to the thick client to await the result.
        installation_id: the installation that started it.
        method: ``browser`` or ``ciba``.
        state: the OAuth ``state`` of a browser login (index for the callback); empty for CIBA.
        pending: AES-GCM ciphertext of what the relying party needs to finish (PKCE verifier,
            nonce, state, or the CIBA ``auth_req_id``).
        expires_at: epoch seconds after which the login is void.
        status: ``pending``, ``complete`` or ``failed``.
        session_id: once complete, the new bridge session.
        session_secret: once complete, AES-GCM ciphertext of the session secret (handed over once).
        error: once failed, a short code (``expired_token``, ``access_denied``...).
        message: once failed, a human explanation (no secrets).
    """

    login_id: str
    installation_id: str
    method: LoginMethod
    state: str
    pending: str
    expires_at: float
    status: LoginStatus = "pending"
    session_id: str = ""
    session_secret: str = ""
    error: str = ""
    message: str = ""

    def to_json(self) -> str:
        """Serialise for the store."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> LoginRecord:
        """Parse what :meth:`to_json` wrote.

        Raises:
            ContentError: the stored value is not a login record.
        """
        record: LoginRecord = _parse(cls, text)
        return record


def _parse(cls: Any, text: str | bytes) -> Any:
    try:
        return cls(**json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ContentError(f"a stored {cls.__name__} is corrupt") from exc


class SessionStore(Protocol):
    """Where the bridge keeps installations, sessions and logins; SQLite or Redis.

    Attributes:
        shared: true when several bridge processes may use the store at once (Redis).
    """

    shared: bool

    async def start(self, listener: EventListener) -> None:
        """Open the store; ``listener`` receives session events published by any replica."""
        ...

    def events_current(self) -> bool:
        """Deliver the events already published by any process, without waiting; say whether none can be missing.

        True means a record cached by the listener's owner and not invalidated by an event is
        still the stored one (modulo the delivery delay of an event in flight, see the store);
        False means the event stream is interrupted and the store must be read.
        """
        ...

    async def aclose(self) -> None:
        """Close the store."""
        ...

    async def add_installation(self, installation_id: str, secret_hash: str) -> None:
        """Register (or replace) an installation's scrypt hash."""
        ...

    async def installation_hash(self, installation_id: str) -> str | None:
        """Return the stored hash of an installation, or None."""
        ...

    async def create_session(self, record: SessionRecord, ttl: float) -> None:
        """Store a new session that lives at most ``ttl`` seconds."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """Return a session, or None."""
        ...

    async def swap_session(self, record: SessionRecord, ttl: float) -> bool:
        """Write ``record`` if the stored version is ``record.version - 1``; say whether it was written."""
        ...

    async def find_sessions(self, *, psc_sid: str = "", subject: str = "") -> list[str]:
        """Return live session ids with this PSC ``sid`` or this subject."""
        ...

    async def count_sessions(self) -> int:
        """Return the number of live sessions."""
        ...

    async def put_login(self, record: LoginRecord) -> None:
        """Store (or overwrite) a login until its ``expires_at``."""
        ...

    async def get_login(self, login_id: str) -> LoginRecord | None:
        """Return a login, or None (unknown or expired)."""
        ...

    async def login_for_state(self, state: str) -> LoginRecord | None:
        """Return the pending browser login with this OAuth ``state``, or None."""
        ...

    async def take_login(self, login_id: str) -> bool:
        """Delete a login; true only for the one caller that deleted it (single hand-over)."""
        ...

    async def get_cached_token(self, session_id: str) -> tuple[str, float, float, int] | None:
        """Return a shared ``(ciphertext, obtained_at, expires_at, version)`` access-token cache entry, if any."""
        ...

    async def cache_token(
        self, session_id: str, ciphertext: str, obtained_at: float, expires_at: float, version: int
    ) -> None:
        """Share an encrypted access token with the other replicas until it expires."""
        ...

    async def acquire_lock(self, session_id: str, ttl: float) -> str | None:
        """Try to take the refresh lock of a session; return the lock token, or None if held."""
        ...

    async def release_lock(self, session_id: str, token: str) -> None:
        """Release the lock if ``token`` still holds it."""
        ...

    async def publish(self, session_id: str, event: str, data: dict[str, Any]) -> None:
        """Deliver an event to every replica's listener."""
        ...
