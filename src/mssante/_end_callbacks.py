"""The "PSC session ended" callbacks of a token source (shared by PSCSession and BridgeTokenSource).

A mailbox or a supervisor registers a callback; when the session ends (ECO.1.2.6) each is run
once, sync or async. A failing callback is logged and never breaks the source that fires it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["EndCallbacks"]

S = TypeVar("S")


class EndCallbacks(Generic[S]):
    """Callbacks ``callback(source)`` to run once when ``source``'s session ends."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        """Log failures on ``log`` as "``what`` end callback failed"."""
        self._log = log
        self._what = what
        self._callbacks: list[Callable[[S], Awaitable[None] | None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._callbacks)

    def add(self, callback: Callable[[S], Awaitable[None] | None], source: S, *, ended: bool) -> None:
        """Register ``callback``; run it at once if the session has already ``ended``."""
        if ended:
            self._run(callback, source)
        else:
            self._callbacks.append(callback)

    def remove(self, callback: Callable[[S], Awaitable[None] | None]) -> None:
        """Forget ``callback``; nothing happens if it is not registered."""
        self._callbacks = [c for c in self._callbacks if c is not callback]

    def fire(self, source: S) -> None:
        """Run every registered callback once, then forget them."""
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            self._run(callback, source)

    def _run(self, callback: Callable[[S], Awaitable[None] | None], source: S) -> None:
        try:
            result = callback(source)
        except Exception as exc:  # a supervisor's bug must not break the token source
            self._log.warning("%s end callback failed: %s", self._what, type(exc).__name__)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.warning("%s end callback failed: %s", self._what, type(task.exception()).__name__)
