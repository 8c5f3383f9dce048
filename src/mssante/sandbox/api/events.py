"""Live events of the sandbox as server-sent events (SSE): new mail and journal updates.

Two sources feed one :class:`EventHub`:

* the journal (:meth:`Journal.subscribe`): every session record that opens, changes or closes
  becomes a ``journal`` event carrying :meth:`SessionRecord.to_dict`;
* the mailbox store, watched while someone listens: a message that appears in a folder becomes
  a ``message`` event, messages that disappear an ``expunge`` event. The store has no change
  feed of its own, so the watcher compares UID sets every :attr:`EventHub.poll_interval`
  seconds, and at once after :meth:`EventHub.poke` (the webmail and the API poke after they
  deliver). Nothing is watched when nobody listens.

The stream format is the WHATWG "server-sent events" one: ``event:``, ``id:`` and one
``data:`` line of JSON per event, and a comment line every :attr:`EventHub.keepalive` seconds
so proxies and browsers keep the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.errors
import email.header
import itertools
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from mssante.errors import UsageError
from mssante.sandbox.api.faults import attached
from mssante.sandbox.api.messages import FOLDERS, Mailboxes
from mssante.sandbox.fronts.faults import Faults

if TYPE_CHECKING:
    from mssante.sandbox.services import SandboxServices

__all__ = ["MAX_WAIT", "ConformanceFeed", "Event", "EventHub", "conformance_feed", "format_sse"]

log = logging.getLogger(__name__)

_QUEUE_SIZE: Final = 1000


@dataclass(frozen=True, kw_only=True)
class Event:
    """One live event: ``kind`` is ``message``, ``expunge`` or ``journal``."""

    id: int
    kind: str
    data: dict[str, Any]

    @property
    def bal(self) -> str | None:
        """The BAL the event is about (lower case), when it is about one."""
        value = self.data.get("bal")
        return value.lower() if isinstance(value, str) else None


def format_sse(event: Event) -> bytes:
    """Serialise ``event`` as one server-sent event (WHATWG HTML §9.2)."""
    data = json.dumps(event.data, ensure_ascii=False, sort_keys=True, default=str)
    return f"event: {event.kind}\nid: {event.id}\ndata: {data}\n\n".encode()


def _decoded(value: str | None) -> str | None:
    """A header value with its RFC 2047 encoded words decoded (as written when they are broken)."""
    if value is None:
        return None
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return value


_CLOSE: Final = Event(id=0, kind="close", data={})


class EventHub:
    """Fans live events out to every SSE listener of the sandbox HTTP server.

    Attributes:
        poll_interval: seconds between two looks at the store while someone listens.
        keepalive: seconds of silence after which a comment line is sent.
    """

    def __init__(self, sandbox: SandboxServices, mailboxes: Mailboxes, *, poll_interval: float = 0.5,
                 keepalive: float = 15.0) -> None:
        """Prepare the hub; its watchers start with the first listener."""
        self._sandbox = sandbox
        self._mailboxes = mailboxes
        self.poll_interval = poll_interval
        self.keepalive = keepalive
        self._ids = itertools.count(1)
        self._listeners: set[asyncio.Queue[Event]] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._previous: dict[tuple[str, str], dict[int, dict[str, Any]]] | None = None
        self._lock = asyncio.Lock()

    # -- publishing ---------------------------------------------------------------------------
    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Send an event to every listener (a full listener queue drops it)."""
        event = Event(id=next(self._ids), kind=kind, data=data)
        for queue in list(self._listeners):
            if not queue.full():
                queue.put_nowait(event)

    def poke(self) -> None:
        """Look at the store now (call after a delivery this process made)."""
        self._wake.set()

    # -- listening ----------------------------------------------------------------------------
    def listen(self) -> asyncio.Queue[Event]:
        """Start receiving events; pair with :meth:`unlisten`.

        Raises:
            UsageError: the hub is closed (the server is stopping).
        """
        if self._closed:
            raise UsageError("the sandbox is stopping")
        queue: asyncio.Queue[Event] = asyncio.Queue(_QUEUE_SIZE)
        self._listeners.add(queue)
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._watch_journal()), asyncio.create_task(self._watch_store())]
        return queue

    def unlisten(self, queue: asyncio.Queue[Event]) -> None:
        """Stop receiving events on ``queue``."""
        self._listeners.discard(queue)

    async def stream(self, accept: Callable[[Event], bool] = lambda e: True) -> AsyncIterator[bytes]:
        """Yield the SSE byte stream of the events ``accept`` lets through, until the hub closes.

        Raises:
            UsageError: the hub is closed.
        """
        queue = self.listen()
        try:
            async with self._lock:  # what is in the store now is not news to this listener
                if self._previous is None:
                    self._previous = await self._snapshot()
            yield b"retry: 2000\n: mssante sandbox events\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), self.keepalive)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is _CLOSE:
                    return
                if accept(event):
                    yield format_sse(event)
        finally:
            self.unlisten(queue)

    async def aclose(self) -> None:
        """End every stream (the conformance feed's too) and stop the watchers (idempotent)."""
        self._closed = True
        await conformance_feed(self._sandbox).aclose()  # its SSE streams and long polls end too
        for queue in list(self._listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(_CLOSE)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- watchers -----------------------------------------------------------------------------
    async def _watch_journal(self) -> None:
        journal = self._sandbox.journal
        queue = journal.subscribe()
        try:
            while True:
                record = await queue.get()
                self.publish("journal", record.to_dict())
        finally:
            journal.unsubscribe(queue)

    async def _snapshot(self) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
        out: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        if not self._mailboxes.available:
            return out
        store = self._mailboxes.store
        for bal in self._sandbox.config.bals:
            for folder in FOLDERS:
                try:
                    items = await store.list_messages(bal.address, folder)
                except UsageError:
                    continue
                out[(bal.address, folder)] = {
                    m.uid: {"subject": _decoded(getattr(m, "headers", {}).get("Subject")),
                            "from": _decoded(getattr(m, "headers", {}).get("From")),
                            "size": m.size, "internal_date": m.internal_date.isoformat()}
                    for m in items
                }
        return out

    async def _watch_store(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            async with self._lock:
                if not self._listeners:
                    self._previous = None
                    continue
                try:
                    current = await self._snapshot()
                except Exception:  # a store being reset or replaced: try again next round
                    log.exception("cannot read the mailbox store for live events")
                    continue
                if self._previous is not None:
                    self._diff(self._previous, current)
                self._previous = current

    def _diff(self, before: dict[tuple[str, str], dict[int, dict[str, Any]]],
              after: dict[tuple[str, str], dict[int, dict[str, Any]]]) -> None:
        for (bal, folder), messages in after.items():
            old = before.get((bal, folder), {})
            for uid in sorted(set(messages) - set(old)):
                self.publish("message", {"bal": bal, "folder": folder, "uid": uid, **messages[uid]})
            gone = sorted(set(old) - set(messages))
            if gone:
                self.publish("expunge", {"bal": bal, "folder": folder, "uids": gone})


# -- the conformance run's event stream ------------------------------------------------------------

#: Events kept by :class:`ConformanceFeed` (the oldest go first); a run of both profiles writes ~300.
_FEED_SIZE: Final = 5000
#: Step acknowledgements kept.
_ACKS_SIZE: Final = 10_000
#: Longest long-poll wait (``GET /api/conformance/events?wait=``), in seconds.
MAX_WAIT: Final = 60.0


class ConformanceFeed:
    """The events of conformance runs (``docs/schemas/conformance-events.schema.json``) and step acks.

    The suite publishes each event here (``POST /api/conformance/events``, or in-process), so a
    harness in any language, or the webmail, follows a run from the sandbox alone: long-poll
    (``GET /api/conformance/events?after=N&wait=S``, JSON Lines) or server-sent events. The
    harness says a step is done with ``POST /api/conformance/steps/{step}/done``; the suite
    reads it back (:meth:`ack`) and stops waiting for evidence early.
    """

    def __init__(self) -> None:
        """An empty feed."""
        self._events: list[tuple[int, dict[str, Any]]] = []
        self._seq = 0
        self._changed = asyncio.Condition()
        self._acks: dict[str, dict[str, Any]] = {}
        self.closed = False

    @property
    def last_seq(self) -> int:
        """Sequence number of the last event published (0: none)."""
        return self._seq

    async def publish(self, event: dict[str, Any]) -> int:
        """Append one run event; its sequence number.

        Raises:
            UsageError: not a version 1 event object with a ``type`` and a ``run_id``.
        """
        if event.get("v") != 1 or not isinstance(event.get("type"), str) or not isinstance(event.get("run_id"), str):
            raise UsageError('a conformance event is an object with "v": 1, "type" and "run_id"')
        async with self._changed:
            self._seq += 1
            self._events.append((self._seq, dict(event)))
            del self._events[:-_FEED_SIZE]
            self._changed.notify_all()
            return self._seq

    def since(self, after: int, run_id: str | None = None) -> list[tuple[int, dict[str, Any]]]:
        """The events after sequence ``after`` (of one run when ``run_id`` is given)."""
        return [(n, e) for n, e in self._events if n > after and (run_id is None or e.get("run_id") == run_id)]

    def latest_run(self) -> list[dict[str, Any]]:
        """The events of the last run published (from its ``run`` event), oldest first."""
        start = next((i for i in range(len(self._events) - 1, -1, -1) if self._events[i][1].get("type") == "run"),
                     None)
        return [] if start is None else [e for _, e in self._events[start:]]

    async def wait_after(self, after: int, within: float) -> None:
        """Return once an event after ``after`` exists, or ``within`` seconds passed, or the feed closed."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self._seq > after or self.closed), within)

    async def stream(self, after: int, run_id: str | None, keepalive: float = 15.0) -> AsyncIterator[bytes]:
        """The SSE byte stream of the events after ``after``, live, until the feed closes."""
        yield b"retry: 2000\n: mssante conformance events\n\n"
        while not self.closed:
            cursor = self._seq
            for seq, event in self.since(after, run_id):
                data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
                yield f"event: {event.get('type')}\nid: {seq}\ndata: {data}\n\n".encode()
            after = cursor
            await self.wait_after(after, keepalive)
            if self._seq == after and not self.closed:
                yield b": keep-alive\n\n"

    def acknowledge(self, step: str, *, ok: bool = True, detail: str = "", understood: Any = None) -> dict[str, Any]:
        """Record that the LPS did (``ok``) or could not do step ``step``.

        ``understood``: for a ``read`` step, what the LPS understood of each message read (a list
        of objects: ``message_id``, ``patient``, ``documents``, ``subject_shown``), kept bounded.

        Raises:
            UsageError: ``step`` is not a step id, or ``understood`` is not a list of objects.
        """
        if not step or len(step) > 80 or not all(c.isalnum() or c in "._-" for c in step):
            raise UsageError("a step id is 1 to 80 characters among letters, digits, '.', '_' and '-'")
        entry = {"step": step, "done": True, "ok": ok, "detail": detail[:500], "at": time.time()}
        if understood is not None:
            entry["understood"] = _understood(understood)
        self._acks[step] = entry
        while len(self._acks) > _ACKS_SIZE:
            del self._acks[next(iter(self._acks))]
        return entry

    def ack(self, step: str) -> dict[str, Any] | None:
        """The acknowledgement of ``step``, if the LPS sent one."""
        return self._acks.get(step)

    async def aclose(self) -> None:
        """End the live streams and wake the long polls."""
        self.closed = True
        async with self._changed:
            self._changed.notify_all()


_UNDERSTOOD_ITEMS: Final = 50
_UNDERSTOOD_SIZE: Final = 20_000


def _understood(value: Any) -> list[dict[str, Any]]:
    """The ``understood`` list of a step acknowledgement, checked: a list of at most 50 JSON objects."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UsageError("understood must be a list of objects (one per message read)")
    if len(value) > _UNDERSTOOD_ITEMS or len(json.dumps(value, default=str)) > _UNDERSTOOD_SIZE:
        raise UsageError(f"understood is too large (at most {_UNDERSTOOD_ITEMS} messages, {_UNDERSTOOD_SIZE} octets)")
    return [dict(v) for v in value]


_FEEDS: weakref.WeakKeyDictionary[Faults, ConformanceFeed] = weakref.WeakKeyDictionary()


def conformance_feed(sandbox: SandboxServices) -> ConformanceFeed:
    """The :class:`ConformanceFeed` of ``sandbox`` (created on first use; keyed like the bench faults)."""
    return attached(_FEEDS, sandbox, ConformanceFeed)
