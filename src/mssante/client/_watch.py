"""``Mailbox.watch``: new messages as they arrive, over IDLE or polling, across reconnections, none missed.

The rule that makes it robust: *the server's UIDs are the truth, notifications only wake us.*
The watcher remembers ``(UIDVALIDITY, last UID delivered)`` (:class:`WatchState`). After every
wake-up (IDLE update, poll tick, IDLE renewal) and after every reconnection it asks the server
for the UIDs above the last one delivered (``UID SEARCH UID n+1:*``, RFC 3501 §6.4.4), so
messages delivered while the connection was down are found by the next scan. If UIDVALIDITY
changed (RFC 3501 §2.3.1.1), old UIDs mean nothing: the whole folder is delivered again.

Reconnection (ECO.1.2.7) uses the mailbox's backoff; it stops on what a new connection cannot
fix: authentication refused after the retry rule, PSC session over (ECO.1.2.6), trust errors.
A discovery failure (DNS timeout, no SRV answer) is retried like a lost connection: a thousand
watchers started at once must not give up because the DNS was slow to answer them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mssante.errors import (
    AuthUnavailable,
    CommandFailed,
    DiscoveryError,
    LimitError,
    RemoteProtocolError,
    TransportError,
)
from mssante.wire.imap import (
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    RecentResponse,
    SearchKey,
    UidFetch,
    UidSearch,
    VanishedResponse,
)
from mssante.wire.imap import SearchResponse as _Search

from ._imap import IMAPConnection
from ._models import SUMMARY_ITEMS, MessageSummary, WatchState

if TYPE_CHECKING:
    from ._mailbox import Mailbox

__all__ = ["new_since", "watch", "watch_fetching"]

_WAKE = (ExistsResponse, RecentResponse, FetchResponse, ExpungeResponse, VanishedResponse)
_RECOVERABLE = (TransportError, AuthUnavailable, RemoteProtocolError, LimitError, DiscoveryError)
_SETTLE_POLL = 0.2  # seconds between two scans while idle_ready says not yet
_MAX_RESCANS = 20  # consecutive scans before waiting anyway (a server announcing changes forever)


#: UIDs fetched in one ``UID FETCH`` at most: a folder's whole history (a BAL watched for the first time, a
#: UIDVALIDITY change) comes in bounded steps, not as one response holding thousands of summaries.
FETCH_CHUNK = 200


async def new_since(
    conn: IMAPConnection, folder: str, uidvalidity: int | None, last_uid: int, extra_items: tuple[str, ...] = (),
    *, chunk: int = FETCH_CHUNK,
) -> tuple[list[tuple[MessageSummary, FetchResponse]], bool, bool]:
    """Summaries of the messages of the selected ``folder`` with a UID above ``last_uid``, in UID order, the
    ``chunk`` lowest at most.

    ``extra_items`` are fetched in the same ``UID FETCH`` (e.g. ``BODY.PEEK[HEADER.FIELDS (...)]``):
    no other command, no other connection.

    Returns:
        Each summary with the FETCH response it was built from, and whether the server announced
        a change (EXISTS/RECENT) meanwhile: a server may answer SEARCH from the state *before* the
        updates it sends with the answer (RFC 3501 §7: untagged updates may come with any
        command), so the caller scans again; and whether more UIDs than ``chunk`` were found (the
        caller scans again from the last one returned).

    Raises:
        CommandFailed, TransportError, RemoteProtocolError: the commands failed.
    """
    _, events = await conn.command(UidSearch(criteria=SearchKey.uid(f"{last_uid + 1}:*")))
    changed = any(isinstance(e, ExistsResponse | RecentResponse) for e in events)
    uids = sorted({uid for e in events if isinstance(e, _Search) for uid in e.ids if uid > last_uid})
    more = len(uids) > chunk
    uids = uids[:chunk]
    if not uids:
        return [], changed, False
    _, events = await conn.command(UidFetch(uids=uids, items=SUMMARY_ITEMS + extra_items))
    changed = changed or any(isinstance(e, ExistsResponse | RecentResponse) for e in events)
    wanted = set(uids)
    found = [(MessageSummary.from_fetch(e, folder=folder, uidvalidity=uidvalidity), e)
             for e in events if isinstance(e, FetchResponse) and e.uid in wanted]
    return sorted(found, key=lambda pair: pair[0].uid), changed, more


async def _wait_for_change(conn: IMAPConnection, duration: float) -> None:
    """IDLE until the server reports a change, or ``duration`` seconds (IDLE renewal, RFC 2177 §3)."""
    async with contextlib.aclosing(conn.idle(duration=duration)) as updates:
        async for event in updates:
            if isinstance(event, _WAKE):
                break


async def watch(box: Mailbox, state: WatchState) -> AsyncGenerator[MessageSummary, None]:
    """Yield the new messages of ``state.folder``; see the module docstring.

    Raises:
        TokenRejected, NotAuthorized: authentication refused (after the retry rule).
        PSCError: the PSC session is over (every session of the BAL was closed, ECO.1.2.6).
        TrustError: the server is not trusted any more.
        CommandFailed: the folder cannot be selected.
    """
    async with contextlib.aclosing(watch_fetching(box, state)) as found:
        async for summary, _ in found:
            yield summary


async def watch_fetching(
    box: Mailbox, state: WatchState, extra_items: tuple[str, ...] = (), *,
    on_connected: Callable[[WatchState], Awaitable[None]] | None = None,
    catch_up: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None = None,
    chunk: int = FETCH_CHUNK,
    idle_ready: Callable[[], Awaitable[bool]] | None = None,
    on_uidvalidity_change: Callable[[int | None, int | None], Awaitable[None]] | None = None,
) -> AsyncGenerator[tuple[MessageSummary, FetchResponse], None]:
    """:func:`watch`, each summary with its FETCH response holding ``extra_items`` too (fetched on the
    watch connection, in the same command as the summary: a fleet worker's X-MSS header fields).

    ``on_connected`` is awaited once, when the first connection is authenticated and before its
    ``SELECT`` and catch-up scan: it may set ``state.uidvalidity`` and ``state.last_uid`` (a fleet
    worker taking a BAL over moves its lease there, then reads the checkpoint), or raise to end
    the watch (the exception goes to the caller, the connection is logged out).

    ``catch_up`` (a fleet worker's bound on concurrent catch-ups) is entered after each (re)connection and
    held while the scans find messages, until the first wait: what was delivered while nobody watched is
    fetched by a bounded number of BALs at a time. ``chunk``: UIDs per ``UID FETCH`` at most.
    ``idle_ready``: asked before each wait until it says True; until then the watch scans every
    0.2 s instead of entering IDLE (a fleet worker taking a BAL over waits for the previous session's
    end: a Dovecot imap process stops notifying a mailbox's sessions when one of them closes).
    ``on_uidvalidity_change(previous, new)`` is awaited when a ``SELECT`` finds another UIDVALIDITY
    than the state's (RFC 3501 §2.3.1.1), before the folder is scanned again from UID 1: a fleet
    worker reports it at once, even for a folder left empty.

    Raises:
        TokenRejected, NotAuthorized: authentication refused (after the retry rule).
        PSCError: the PSC session is over (every session of the BAL was closed, ECO.1.2.6).
        TrustError: the server is not trusted any more.
        CommandFailed: the folder cannot be selected, or the server refused ``extra_items``.
        Exception: whatever ``on_connected`` raised.
    """
    options = box.options
    conn: IMAPConnection | None = None
    hook_error: BaseException | None = None
    failures = 0
    idle_failures = 0
    rescans = 0
    slot = _Slot(catch_up)  # the catch-up slot, held from a (re)connection until caught up
    try:
        while True:
            if box.closed:
                if box.end_reason is not None:
                    box._check_open()  # raises PSCError: the PSC session ended (ECO.1.2.6)
                return  # aclose(): stop quietly
            try:
                if conn is None or not conn.usable:
                    if conn is not None:
                        box.release(conn)
                        conn = None
                    conn = await box.open_imap()
                    if on_connected is not None:
                        hook, on_connected = on_connected, None
                        try:
                            await hook(state)
                        except BaseException as exc:
                            hook_error = exc  # not a lost connection to recover from: the caller's decision
                            raise
                    info = await conn.select(state.folder)
                    if state.uidvalidity is not None and info.uidvalidity != state.uidvalidity:
                        state.last_uid = 0  # RFC 3501 §2.3.1.1: every UID changed, deliver everything again
                        if on_uidvalidity_change is not None:
                            await on_uidvalidity_change(state.uidvalidity, info.uidvalidity)
                    state.uidvalidity = info.uidvalidity
                    if state.last_uid is None:
                        state.last_uid = (info.uidnext or 1) - 1 if info.uidnext else await _highest(conn)
                    box._trace("select", f"SELECT {state.folder} (watch)", f"UIDVALIDITY {info.uidvalidity}", True)
                    failures = 0
                    if catch_up is not None:
                        await slot.take()
                found, changed, more = await new_since(conn, state.folder, state.uidvalidity, state.last_uid or 0,
                                                       extra_items, chunk=chunk)
                for summary, response in found:
                    state.last_uid = summary.uid
                    box._trace("fetch", f"UID FETCH {summary.uid} (watch {state.folder})", "new message", True)
                    yield summary, response
                if more:
                    continue  # the rest of a backlog: the UIDs only grow, it ends
                if (found or changed) and rescans < _MAX_RESCANS:
                    # Scan again before waiting: what arrived while the caller held the last message
                    # may not be announced by the next IDLE (a server may report only changes made
                    # after IDLE starts), but the UIDs never lie.
                    rescans += 1
                    continue
                rescans = 0
                await slot.give_back()  # caught up: another BAL's turn
                if idle_ready is not None:
                    if not await idle_ready():
                        await options.clock.sleep(_SETTLE_POLL)
                        continue
                    idle_ready = None
                if conn.engine.has("IDLE") and idle_failures < options.idle_failures_before_polling:
                    try:
                        await _wait_for_change(conn, options.connection.idle_refresh)
                        idle_failures = 0
                    except CommandFailed:
                        idle_failures += 1
                else:
                    await options.clock.sleep(options.poll_interval)
            except _RECOVERABLE as exc:
                if exc is hook_error:
                    raise
                await slot.give_back()
                if conn is not None:
                    conn.abort()
                    box.release(conn)
                    conn = None
                state.reconnects += 1
                if box.is_closed():
                    continue  # the loop head decides: quiet stop or PSCError
                box._emit("disconnected", f"watch {state.folder}: {exc}", exc)
                await options.clock.sleep(options.backoff.delay(failures))
                failures += 1
    finally:
        await slot.give_back()
        if conn is not None:
            box.release(conn)
            await conn.logout(grace=1.0)


class _Slot:
    """A catch-up slot held at most once, without an exit stack per watch (a deque each: 0.6 KiB per idle BAL)."""

    __slots__ = ("_held", "_make")

    def __init__(self, make: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None) -> None:
        self._make = make
        self._held: contextlib.AbstractAsyncContextManager[Any] | None = None

    async def take(self) -> None:
        if self._make is not None and self._held is None:
            held = self._make()
            await held.__aenter__()
            self._held = held

    async def give_back(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await held.__aexit__(None, None, None)


async def _highest(conn: IMAPConnection) -> int:
    _, events = await conn.command(UidSearch(criteria=SearchKey.all()))
    return max((uid for e in events if isinstance(e, _Search) for uid in e.ids), default=0)
