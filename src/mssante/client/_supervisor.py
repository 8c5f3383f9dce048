"""The session supervisor: the IMAP/SMTP sessions of several BALs in one process.

* **Reopen while credentials are valid** (ECO.1.2.7): each BAL's watch reconnects after a BYE
  or a drop with backoff (:meth:`Mailbox.watch`); if the watch itself stops on a recoverable
  error, the supervisor restarts it with backoff.
* **Close on the end of the PSC session** (ECO.1.2.6): a token source's ``on_end`` (or its
  ``ended`` event, watched here) or a ``PSCError(invalid_grant)`` closes every session of the
  BAL at once (sockets aborted synchronously, well within 2 s); the BAL is then ``ended``.
  An idle BAL asks PSC for nothing, so without a back-channel logout the end of its PSC session
  would go unnoticed until the next refresh: the opt-in ``psc_check`` asks each PER/ORG BAL's
  token source for a token periodically (see :class:`SessionSupervisor` for the trade-off).
* **Isolation** (ECO.1.2.3): one task per BAL; an exception in a BAL (or in the caller's
  ``on_message``) is contained, reported as a :class:`SupervisorEvent`, and never reaches
  another BAL or the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.errors import AuthError, AuthUnavailable, ConfigError, MssanteError, PSCError, TrustError, UsageError

from ._config import Backoff
from ._mailbox import Mailbox
from ._models import MailboxEvent, MessageSummary, WatchState

__all__ = ["BALStatus", "SessionSupervisor", "SupervisorEvent"]

log = logging.getLogger("mssante.client.supervisor")

BALStatus = Literal["idle", "running", "ended", "failed", "stopped"]
MessageHandler = Callable[[Mailbox, MessageSummary], Awaitable[None] | None]


@dataclass(frozen=True, kw_only=True)
class SupervisorEvent:
    """Something that happened to one BAL (never holds a secret).

    ``kind``: ``connected``/``disconnected`` (a session of the BAL), ``message`` (a new message
    was handed to ``on_message``), ``handler_error`` (``on_message`` raised; watching goes on),
    ``ended`` (PSC session over, every session closed), ``failed`` (stopped on an error a
    reconnection cannot fix), ``stopped`` (removed or supervisor closed). ``error``: the
    exception behind the event when there is one; for ``disconnected`` it tells an
    ``[UNAVAILABLE]`` (:class:`~mssante.errors.AuthUnavailable`) from a network drop
    (:class:`~mssante.errors.TransportError`).
    """

    address: str
    kind: Literal["connected", "disconnected", "message", "handler_error", "ended", "failed", "stopped"]
    detail: str = ""
    error: BaseException | None = field(default=None, compare=False)


@dataclass(eq=False)
class _Entry:
    mailbox: Mailbox
    on_message: MessageHandler | None
    state: WatchState
    status: BALStatus = "idle"
    task: asyncio.Task[None] | None = None
    end_watch: asyncio.Task[None] | None = None
    psc_watch: asyncio.Task[None] | None = None


class SessionSupervisor:
    """Runs the sessions of several BALs (see the module docstring).

    Args:
        on_event: called with each :class:`SupervisorEvent` (its exceptions are logged).
        backoff: delays before restarting a BAL's watch after a recoverable failure.
        psc_check: None (default): off. Otherwise every ``psc_check`` seconds, while a PER/ORG
            BAL runs, call ``token()`` on its token source, so that the end of the PSC session
            (logout without back-channel, revocation, refresh token expired) is noticed even
            when the mailbox is idle: an ``invalid_grant`` ends that BAL (every session
            closed, ECO.1.2.6); a PSC outage is only retried at the next check (ECO.1.2.7).
            A :class:`~mssante.psc.PSCSession` or a bridge source refreshes only when its access
            token is near expiry, so this refreshes no more often than a busy session would
            (about once per access token lifetime). Trade-off: each refresh is activity in the
            eyes of PSC and may push back its idle timeout, while FORGE's rule is that *only
            user activity extends the session* (ref2-requirements §4, FORGE-E013); hence off by
            default. With it on, the application must still end the PSC session on user
            inactivity itself (e.g. its 2 h lock, SC.SSI/IE.38); the refresh token's own
            expiry still ends it.
        clock: how the supervisor waits (restart backoff, PSC checks); tests give a
            :class:`mssante.testing.FakeClock`.
    """

    def __init__(self, *, on_event: Callable[[SupervisorEvent], None] | None = None,
                 backoff: Backoff | None = None, psc_check: float | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        """Prepare an empty supervisor.

        Raises:
            UsageError: ``psc_check`` is not a positive number of seconds.
        """
        if psc_check is not None and not psc_check > 0:
            raise UsageError("SessionSupervisor psc_check must be > 0 seconds (or None: off)")
        self._psc_check = psc_check
        self._on_event = on_event
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._running = False

    def __repr__(self) -> str:
        return f"SessionSupervisor({ {a: e.status for a, e in self._entries.items()} })"

    async def __aenter__(self) -> SessionSupervisor:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- registry -------------------------------------------------------------------------------
    def add(self, mailbox: Mailbox, *, on_message: MessageHandler | None = None, folder: str = "INBOX",
            state: WatchState | None = None) -> None:
        """Supervise ``mailbox``: watch ``folder`` and hand each new message to ``on_message``.

        Raises:
            UsageError: a mailbox with this address is already supervised.
        """
        key = mailbox.address.lower()
        if key in self._entries:
            raise UsageError(f"{mailbox.address} is already supervised")
        entry = _Entry(mailbox=mailbox, on_message=on_message, state=state or WatchState(folder=folder))
        self._entries[key] = entry
        mailbox.add_listener(lambda event: self._forward(entry, event))
        if self._running:
            self._launch(entry)

    def mailbox(self, address: str) -> Mailbox:
        """The supervised mailbox of ``address``.

        Raises:
            UsageError: not supervised.
        """
        return self._entry(address).mailbox

    def status(self, address: str) -> BALStatus:
        """``idle`` (not started), ``running``, ``ended`` (PSC session over), ``failed`` or ``stopped``.

        Raises:
            UsageError: not supervised.
        """
        return self._entry(address).status

    def _entry(self, address: str) -> _Entry:
        try:
            return self._entries[address.lower()]
        except KeyError:
            raise UsageError(f"{address} is not supervised") from None

    # -- running --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every BAL's task (idempotent)."""
        self._running = True
        for entry in self._entries.values():
            if entry.task is None:
                self._launch(entry)

    def _launch(self, entry: _Entry) -> None:
        entry.status = "running"
        name = f"mssante-bal-{entry.mailbox.address}"
        entry.task = asyncio.create_task(self._run(entry), name=name)
        ended = getattr(entry.mailbox.token_source, "ended", None)
        if isinstance(ended, asyncio.Event) and not callable(getattr(entry.mailbox.token_source, "on_end", None)):
            entry.end_watch = asyncio.create_task(self._wait_end(entry, ended), name=name + "-end")
        if self._psc_check is not None and entry.mailbox.kind != "APP" and entry.mailbox.token_source is not None:
            entry.psc_watch = asyncio.create_task(self._check_psc(entry, self._psc_check), name=name + "-psc-check")

    async def _wait_end(self, entry: _Entry, ended: asyncio.Event) -> None:
        await ended.wait()
        entry.mailbox.end("the PSC session ended")

    async def _check_psc(self, entry: _Entry, every: float) -> None:
        """Ask the BAL's token source for a token every ``every`` s (opt-in, see the class doc)."""
        box = entry.mailbox
        source = box.token_source
        while source is not None and not box.is_closed():
            await self._clock.sleep(every)
            if box.is_closed():
                return
            try:
                await source.token()
            except PSCError as exc:
                if exc.oauth_error == "invalid_grant":  # the PSC session is over (ECO.1.2.6)
                    box.end(f"the PSC session is over ({exc.message})")
                    return
                log.warning("PSC check of %s: %s", box.address, exc.message)
            except MssanteError as exc:  # PSC unreachable: the session stays valid (ECO.1.2.7)
                log.info("PSC check of %s: %s", box.address, exc.message)
            except Exception:  # a token source's bug must stay inside this BAL (ECO.1.2.3)
                log.exception("PSC check of %s failed", box.address)

    async def _run(self, entry: _Entry) -> None:
        box = entry.mailbox
        restarts = 0
        while True:
            try:
                async with contextlib.aclosing(box.watch(entry.state.folder, state=entry.state)) as messages:
                    async for summary in messages:
                        restarts = 0
                        await self._deliver(entry, summary)
                self._finish(entry, "ended" if box.end_reason else "stopped", box.end_reason or "")
                return
            except (PSCError, AuthError, TrustError, ConfigError, UsageError) as exc:
                if isinstance(exc, AuthUnavailable):  # temporary: keep trying (ECO.1.2.7)
                    await self._pause(entry, exc, restarts)
                    restarts += 1
                    continue
                ended = box.end_reason is not None or (isinstance(exc, PSCError) and exc.oauth_error == "invalid_grant")
                if ended:
                    box.end(box.end_reason or str(exc))
                self._finish(entry, "ended" if ended else "failed", str(exc), exc)
                if not ended:
                    await box.aclose()
                return
            except MssanteError as exc:
                await self._pause(entry, exc, restarts)
                restarts += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must stay inside this BAL (ECO.1.2.3)
                log.exception("supervised BAL %s failed", box.address)
                self._finish(entry, "failed", f"internal error: {type(exc).__name__}", exc)
                await box.aclose()
                return

    async def _pause(self, entry: _Entry, exc: MssanteError, restarts: int) -> None:
        self._report(SupervisorEvent(address=entry.mailbox.address, kind="disconnected", detail=str(exc), error=exc))
        await self._clock.sleep(self._backoff.delay(restarts))

    async def _deliver(self, entry: _Entry, summary: MessageSummary) -> None:
        address = entry.mailbox.address
        self._report(SupervisorEvent(address=address, kind="message", detail=f"UID {summary.uid}"))
        if entry.on_message is None:
            return
        try:
            result = entry.on_message(entry.mailbox, summary)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the application's handler must not stop the watch (ECO.1.2.3)
            log.exception("on_message failed for %s", address)
            self._report(SupervisorEvent(address=address, kind="handler_error", detail=type(exc).__name__, error=exc))

    def _finish(self, entry: _Entry, status: BALStatus, detail: str, error: BaseException | None = None) -> None:
        entry.status = status
        kind: Literal["ended", "failed", "stopped"] = status if status in ("ended", "failed") else "stopped"
        self._report(SupervisorEvent(address=entry.mailbox.address, kind=kind, detail=detail, error=error))

    def _forward(self, entry: _Entry, event: MailboxEvent) -> None:
        if event.kind in ("connected", "disconnected"):
            self._report(SupervisorEvent(address=event.address, kind=event.kind, detail=event.detail,
                                         error=event.error))
        elif event.kind == "ended" and entry.status == "running":
            entry.status = "ended"

    def _report(self, event: SupervisorEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("supervisor on_event callback failed")

    # -- stopping -------------------------------------------------------------------------------
    async def remove(self, address: str) -> None:
        """Stop supervising ``address``: cancel its task and close its sessions.

        Raises:
            UsageError: not supervised.
        """
        entry = self._entries.pop(self._entry(address).mailbox.address.lower())
        await self._stop(entry)

    async def _stop(self, entry: _Entry) -> None:
        for task in (entry.task, entry.end_watch, entry.psc_watch):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await entry.mailbox.aclose()
        if entry.status == "running":
            self._finish(entry, "stopped", "supervisor stopped")

    async def aclose(self) -> None:
        """Stop every BAL and close every session."""
        self._running = False
        await asyncio.gather(*(self._stop(e) for e in self._entries.values()), return_exceptions=True)
