"""The embedded store: one SQLite file (stdlib ``sqlite3``), written through ``asyncio.to_thread``.

Writes and scans run in a thread; reads by key (a session, a login, an installation) run on the
event loop's own read connection (:meth:`SQLiteStore._lookup`): in WAL mode they never wait for a
writer, and they cost less than a thread hand-off.

Session events go through an ``events`` table written in the file: every instance on the file
(a restarted process, a CLI command, a second bridge) reads them. Before the bridge answers from
its in-memory session cache it calls :meth:`SQLiteStore.events_current`, which asks SQLite on
the event loop whether another connection committed anything (``PRAGMA data_version``, a read of
the WAL index that takes microseconds and never waits for a writer) and, only then, reads the new
events. A session ended or refreshed by another instance is therefore never answered from a stale
cache. A background task does the same every :data:`POLL_INTERVAL` seconds, so that event streams
held here learn of it without a request.

The refresh lock and the access-token cache still live in this process's memory: two processes
on one file could refresh a session twice at the same instant (PSC's rotation would then end it).
Use :mod:`Redis <mssante.bridge._redis>` to run replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Final, TypeVar

from mssante.bridge._records import EventListener, LoginRecord, SessionRecord
from mssante.errors import ConfigError

__all__ = ["SQLiteStore"]

log = logging.getLogger("mssante.bridge")
T = TypeVar("T")
#: Seconds between two looks for events written by another instance (when no request looks first).
POLL_INTERVAL: Final = 0.5
#: Seconds an event row is kept: longer than any instance can go without polling.
EVENT_TTL: Final = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS installations (id TEXT PRIMARY KEY, hash TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, psc_sid TEXT NOT NULL, subject TEXT NOT NULL,
    ended TEXT NOT NULL, expires_at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_sid ON sessions (psc_sid);
CREATE INDEX IF NOT EXISTS sessions_subject ON sessions (subject);
CREATE TABLE IF NOT EXISTS logins (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS logins_state ON logins (state);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,
    at REAL NOT NULL);
"""


class SQLiteStore:
    """Sessions in a SQLite file (or ``:memory:``), for a single bridge process.

    Attributes:
        shared: always false.
    """

    shared = False

    def __init__(self, path: Path | str, *, clock: Any = time.time) -> None:
        """Use the database at ``path`` (created if missing, mode 0600).

        Raises:
            Nothing: the file is opened by :meth:`start`.
        """
        self.path = str(path)
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._guard = threading.Lock()
        self._listener: EventListener | None = None
        self._locks: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float, float, int]] = {}
        self._reader: sqlite3.Connection | None = None  # event loop thread only: events_current()
        self._data_version = -1
        self._looked = False  # a look was made in this turn of the event loop
        self._seq = 0
        self._poller: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            file = Path(self.path)
            file.parent.mkdir(parents=True, exist_ok=True)
            file.touch(mode=0o600, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    async def start(self, listener: EventListener) -> None:
        """Open the file and create the tables.

        Raises:
            ConfigError: the file cannot be opened or is not a SQLite database.
        """
        self._listener = listener
        if self._db is None:
            try:
                self._db = await asyncio.to_thread(self._open)
                if self.path != ":memory:":  # an in-memory database is private to its one connection
                    self._reader = sqlite3.connect(self.path, isolation_level=None, timeout=0.05)
                    self._seq = int(self._reader.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
                    self._data_version = int(self._reader.execute("PRAGMA data_version").fetchone()[0])
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError(f"cannot open the bridge store {self.path}: {exc}") from exc
            self._poller = asyncio.create_task(self._poll_events(), name="bridge-sqlite-events")

    async def aclose(self) -> None:
        """Close the database."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    # -- events -------------------------------------------------------------------------------
    def events_current(self) -> bool:
        """Deliver the events other connections wrote since the last look; true unless SQLite is busy.

        Runs on the event loop: ``PRAGMA data_version`` changes only when another connection
        committed, and the events table is read only then (by its primary key).

        A look answers for the rest of its turn of the event loop: the callbacks run in that turn
        were all scheduled before it (asyncio runs them first in, first out, and the turn-over
        callback scheduled by the look comes after them), so whatever a request waited for,
        its arrival included, happened before the look. A request that arrives after the look is
        scheduled after the turn-over and looks again. The concurrent requests of a burst, read
        from the sockets in one turn, thus share one look instead of one each.

        Raises:
            Nothing: a busy or failing file answers False (the caller reads the store instead).
        """
        reader = self._reader
        if reader is None:
            return self._db is not None  # ":memory:": this connection is the only writer
        if self._looked:
            return True
        try:
            version = int(reader.execute("PRAGMA data_version").fetchone()[0])
            if version == self._data_version:
                self._looked_now()
                return True
            rows = reader.execute("SELECT seq, session, event, data FROM events WHERE seq > ? ORDER BY seq",
                                  (self._seq,)).fetchall()
        except sqlite3.Error:
            return False
        self._data_version = version
        for seq, session_id, event, data in rows:
            self._seq = int(seq)
            self._deliver(str(session_id), str(event), data)
        self._looked_now()
        return True

    def _looked_now(self) -> None:
        try:
            asyncio.get_running_loop().call_soon(self._turn_over)
        except RuntimeError:  # no event loop (a synchronous caller): nothing to share
            return
        self._looked = True

    def _turn_over(self) -> None:
        self._looked = False

    def _deliver(self, session_id: str, event: str, data: str) -> None:
        if event == "session_ended":
            self._tokens.pop(session_id, None)
        try:
            payload = json.loads(data)
        except ValueError:
            log.warning("ignored a malformed bridge event")
            return
        if self._listener is not None and isinstance(payload, dict):
            self._listener(session_id, event, payload)

    async def _poll_events(self) -> None:
        purge_every = int(60 / POLL_INTERVAL)
        for turn in itertools.count():
            await asyncio.sleep(POLL_INTERVAL)
            self.events_current()
            if turn % purge_every == purge_every - 1:
                with contextlib.suppress(sqlite3.Error, ConfigError):
                    await self._exec("DELETE FROM events WHERE at < ?", (self._clock() - EVENT_TTL,))

    async def _call(self, sql: str, params: tuple[Any, ...], rows: bool) -> Any:
        def work() -> Any:
            if self._db is None:
                raise ConfigError("the bridge store is not open")
            with self._guard:
                cursor = self._db.execute(sql, params)
                return cursor.fetchall() if rows else cursor.rowcount

        return await asyncio.to_thread(work)

    async def _lookup(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """A read by key on the event loop's own connection, without a thread hand-off.

        In WAL mode a reader never waits for a writer, and a read by primary key or index takes
        microseconds, less than handing it to a thread and back (with 10,000 sessions held, the
        hand-offs of the refreshes' reads cost more than the reads). It sees every write committed
        before it, so a record written and then read back is the new one. A busy or failing file (or
        ``:memory:``, private to the writer's connection) falls back to the thread.
        """
        reader = self._reader
        if reader is not None:
            with contextlib.suppress(sqlite3.OperationalError):
                rows: list[tuple[Any, ...]] = reader.execute(sql, params).fetchall()
                return rows
        return await self._rows(sql, params)

    async def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        return int(await self._call(sql, params, False))

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = await self._call(sql, params, True)
        return result

    # -- installations ------------------------------------------------------------------------
    async def add_installation(self, installation_id: str, secret_hash: str) -> None:
        """Register or replace an installation.

        Raises:
            ConfigError: the store is not open.
        """
        await self._exec("INSERT OR REPLACE INTO installations VALUES (?, ?, ?)",
                        (installation_id, secret_hash, self._clock()))

    async def installation_hash(self, installation_id: str) -> str | None:
        """Return the installation's hash or None.

        Raises:
            ConfigError: the store is not open.
        """
        rows = await self._lookup("SELECT hash FROM installations WHERE id = ?", (installation_id,))
        return str(rows[0][0]) if rows else None

    # -- sessions -----------------------------------------------------------------------------
    async def create_session(self, record: SessionRecord, ttl: float) -> None:
        """Insert a new session.

        Raises:
            ConfigError: the store is not open.
        """
        await self._exec(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.session_id, record.version, record.psc_sid, record.subject, record.ended,
             self._clock() + ttl, record.to_json()),
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """Return the session, or None if unknown or past its lifetime.

        Raises:
            ConfigError: the store is not open.
            ContentError: the stored row is corrupt.
        """
        rows = await self._lookup("SELECT data FROM sessions WHERE id = ? AND expires_at > ?",
                                  (session_id, self._clock()))
        return SessionRecord.from_json(rows[0][0]) if rows else None

    async def swap_session(self, record: SessionRecord, ttl: float) -> bool:
        """Compare-and-swap on ``version``.

        Raises:
            ConfigError: the store is not open.
        """
        changed = await self._exec(
            "UPDATE sessions SET version = ?, ended = ?, expires_at = ?, data = ? WHERE id = ? AND version = ?",
            (record.version, record.ended, self._clock() + ttl, record.to_json(), record.session_id,
             record.version - 1),
        )
        return changed == 1

    async def find_sessions(self, *, psc_sid: str = "", subject: str = "") -> list[str]:
        """Return live sessions matching the PSC ``sid`` or the subject.

        Raises:
            ConfigError: the store is not open.
        """
        rows = await self._rows(
            "SELECT id FROM sessions WHERE ended = '' AND expires_at > ? AND "
            "((? != '' AND psc_sid = ?) OR (? != '' AND subject = ?))",
            (self._clock(), psc_sid, psc_sid, subject, subject),
        )
        return [str(r[0]) for r in rows]

    async def count_sessions(self) -> int:
        """Return the number of live sessions.

        Raises:
            ConfigError: the store is not open.
        """
        rows = await self._rows("SELECT count(*) FROM sessions WHERE ended = '' AND expires_at > ?", (self._clock(),))
        return int(rows[0][0])

    # -- logins -------------------------------------------------------------------------------
    async def put_login(self, record: LoginRecord) -> None:
        """Store or overwrite a login.

        Raises:
            ConfigError: the store is not open.
        """
        await self._exec("INSERT OR REPLACE INTO logins VALUES (?, ?, ?, ?)",
                        (record.login_id, record.state, record.expires_at, record.to_json()))

    async def get_login(self, login_id: str) -> LoginRecord | None:
        """Return an unexpired login or None.

        Raises:
            ConfigError: the store is not open.
            ContentError: the stored row is corrupt.
        """
        rows = await self._lookup("SELECT data FROM logins WHERE id = ? AND expires_at > ?", (login_id, self._clock()))
        return LoginRecord.from_json(rows[0][0]) if rows else None

    async def login_for_state(self, state: str) -> LoginRecord | None:
        """Return the unexpired login with this OAuth state, or None.

        Raises:
            ConfigError: the store is not open.
            ContentError: the stored row is corrupt.
        """
        if not state:
            return None
        rows = await self._rows("SELECT data FROM logins WHERE state = ? AND expires_at > ?", (state, self._clock()))
        return LoginRecord.from_json(rows[0][0]) if rows else None

    async def take_login(self, login_id: str) -> bool:
        """Delete a login; true for the caller that deleted it.

        Raises:
            ConfigError: the store is not open.
        """
        return await self._exec("DELETE FROM logins WHERE id = ?", (login_id,)) == 1

    async def purge(self) -> None:
        """Delete expired logins and sessions.

        Raises:
            ConfigError: the store is not open.
        """
        now = self._clock()
        await self._exec("DELETE FROM logins WHERE expires_at <= ?", (now,))
        await self._exec("DELETE FROM sessions WHERE expires_at <= ?", (now,))

    # -- process-local coordination (single process) -------------------------------------------
    async def get_cached_token(self, session_id: str) -> tuple[str, float, float, int] | None:
        """Return this process's cache entry (access tokens are never written to the file)."""
        entry = self._tokens.get(session_id)
        if entry is not None and entry[2] <= self._clock():
            self._tokens.pop(session_id, None)
            return None
        return entry

    async def cache_token(
        self, session_id: str, ciphertext: str, obtained_at: float, expires_at: float, version: int
    ) -> None:
        """Keep an encrypted access token in this process's memory until it expires."""
        self._tokens[session_id] = (ciphertext, obtained_at, expires_at, version)

    async def acquire_lock(self, session_id: str, ttl: float) -> str | None:
        """Take the in-process refresh lock."""
        if session_id in self._locks:
            return None
        token = secrets.token_hex(16)
        self._locks[session_id] = token
        return token

    async def release_lock(self, session_id: str, token: str) -> None:
        """Release the in-process refresh lock."""
        if self._locks.get(session_id) == token:
            del self._locks[session_id]

    async def publish(self, session_id: str, event: str, data: dict[str, Any]) -> None:
        """Write the event for every instance on this file, then deliver it here.

        Raises:
            ConfigError: the store is not open.
        """
        text = json.dumps(data, separators=(",", ":"))
        if self._reader is None:  # ":memory:": nobody else can read the table
            self._deliver(session_id, event, text)
            return
        await self._exec("INSERT INTO events (session, event, data, at) VALUES (?, ?, ?, ?)",
                         (session_id, event, text, self._clock()))
        self.events_current()
