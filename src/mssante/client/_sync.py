"""The synchronous face: :class:`SyncMailbox` runs the async :class:`Mailbox` in a portal thread.

One implementation (house rule 8): every method hands the async method's coroutine to an event
loop running in a background thread (like starlette's ``TestClient`` portal or aiosmtpd's
``Controller``) and waits for its result. Nothing is re-implemented here.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from mssante.message import ComposedMessage, Draft

from ._mailbox import Mailbox
from ._models import Folder, MessageSummary, ReceivedMessage, SendResult, WatchState

__all__ = ["SyncMailbox"]

T = TypeVar("T")


class _Portal:
    """An event loop in a daemon thread; ``run(coro)`` blocks the caller until the coroutine is done."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mssante-portal", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError("the portal is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._thread.is_alive():
            self.run(self._loop.shutdown_asyncgens())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


async def _build(kwargs: dict[str, Any]) -> Mailbox:
    return Mailbox(**kwargs)


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


class SyncMailbox:
    """The blocking twin of :class:`Mailbox`: same arguments, same methods, same errors.

    Use it as a context manager (or call :meth:`close`) so the portal thread stops.

    Raises:
        UsageError: as :class:`Mailbox`.
    """

    def __init__(self, address: str, **kwargs: Any) -> None:
        """Start the portal thread and build the async :class:`Mailbox` inside it.

        Raises:
            UsageError: ``kind`` and ``credentials`` do not match (see :class:`Mailbox`).
        """
        self._portal = _Portal()
        try:
            self.mailbox = self._portal.run(_build({"address": address, **kwargs}))
        except BaseException:
            self._portal.close()
            raise
        self.address = address

    def __repr__(self) -> str:
        return f"SyncMailbox({self.mailbox!r})"

    def __enter__(self) -> SyncMailbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send(self, message: Draft | ComposedMessage) -> SendResult:
        """See :meth:`Mailbox.send` (same Raises)."""
        return self._portal.run(self.mailbox.send(message))

    def folders(self) -> builtins.list[Folder]:
        """See :meth:`Mailbox.folders` (same Raises)."""
        return self._portal.run(self.mailbox.folders())

    def status(self, folder: str = "INBOX") -> dict[str, int]:
        """See :meth:`Mailbox.status` (same Raises)."""
        return self._portal.run(self.mailbox.status(folder))

    def list(self, folder: str = "INBOX", *, unseen_only: bool = False, limit: int | None = None
             ) -> builtins.list[MessageSummary]:
        """See :meth:`Mailbox.list` (same Raises)."""
        return self._portal.run(self.mailbox.list(folder, unseen_only=unseen_only, limit=limit))

    def fetch(self, uid: int, folder: str = "INBOX", *, mark_seen: bool = False) -> ReceivedMessage:
        """See :meth:`Mailbox.fetch` (same Raises)."""
        return self._portal.run(self.mailbox.fetch(uid, folder, mark_seen=mark_seen))

    def flag(self, uid: int, folder: str = "INBOX", *, seen: bool | None = True, flagged: bool | None = None) -> None:
        """See :meth:`Mailbox.flag` (same Raises)."""
        self._portal.run(self.mailbox.flag(uid, folder, seen=seen, flagged=flagged))

    def move(self, uid: int, to: str, folder: str = "INBOX") -> int | None:
        """See :meth:`Mailbox.move` (same Raises)."""
        return self._portal.run(self.mailbox.move(uid, to, folder))

    def delete(self, uid: int, folder: str = "INBOX", *, expunge: bool = False) -> None:
        """See :meth:`Mailbox.delete` (same Raises)."""
        self._portal.run(self.mailbox.delete(uid, folder, expunge=expunge))

    def watch(self, folder: str = "INBOX", *, state: WatchState | None = None) -> Iterator[MessageSummary]:
        """See :meth:`Mailbox.watch` (same Raises); closing the generator stops the watch."""
        messages = self.mailbox.watch(folder, state=state)
        try:
            while True:
                try:
                    yield self._portal.run(_next(messages))
                except StopAsyncIteration:
                    return
        finally:
            self._portal.run(messages.aclose())

    def close(self) -> None:
        """Close every session, then stop the portal thread."""
        try:
            self._portal.run(self.mailbox.aclose())
        finally:
            self._portal.close()
