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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from mssante.errors import UsageError
from mssante.sandbox.api.messages import FOLDERS, Mailboxes

if TYPE_CHECKING:
    from mssante.sandbox.runner import Sandbox

__all__ = ["Event", "EventHub", "format_sse"]

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
        """The BAL the event is about (lower case), when it is about one.

        Raises:
            Nothing.
        """
        value = self.data.get("bal")
        return value.lower() if isinstance(value, str) else None


def format_sse(event: Event) -> bytes:
    """Serialise ``event`` as one server-sent event (WHATWG HTML §9.2).

    Raises:
        Nothing.
    """
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

    def __init__(self, sandbox: Sandbox, mailboxes: Mailboxes, *, poll_interval: float = 0.5,
                 keepalive: float = 15.0) -> None:
        """Prepare the hub; its watchers start with the first listener.

        Raises:
            Nothing.
        """
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
        """Send an event to every listener (a full listener queue drops it).

        Raises:
            Nothing.
        """
        event = Event(id=next(self._ids), kind=kind, data=data)
        for queue in list(self._listeners):
            if not queue.full():
                queue.put_nowait(event)

    def poke(self) -> None:
        """Look at the store now (call after a delivery this process made).

        Raises:
            Nothing.
        """
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
        """Stop receiving events on ``queue``.

        Raises:
            Nothing.
        """
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
        """End every stream and stop the watchers (idempotent).

        Raises:
            Nothing.
        """
        self._closed = True
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
