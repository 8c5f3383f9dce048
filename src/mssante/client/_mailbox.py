"""The async mailbox facade: send, list, fetch, flag, move, delete and watch one BAL.

Example::

    async with Mailbox(
        "marie.curie@hopital.mssante.fr", kind="PER", credentials=psc_session,
        tls=TrustSettings(ca_bundle=Path("igc-sante.pem")), traces=JSONLinesSink(Path("traces.jsonl")),
        product_reference="DEV935997",
    ) as box:
        await box.send(Draft(sender=Sender(address=box.address), to=("dr.x@...",), text="Bonjour"))
        for summary in await box.list("INBOX", unseen_only=True):
            message = await box.fetch(summary.uid)
        async for summary in box.watch():
            ...

Every action is traced (ECO.4.1.1/2): author, workstation time, action, request (credentials
redacted, never a message body) and the server's answer, failures included.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import Literal, TypeVar

from mssante.credentials import ClientCertificate, TokenSource
from mssante.discovery import MailServers, ManualServers, Resolver
from mssante.errors import CommandFailed, LimitError, MssanteError, PSCError, UsageError
from mssante.message import ComposedMessage, ComposeSettings, Draft, compose_message
from mssante.trace import Action, TraceSink, make_record
from mssante.wire.imap import (
    Append,
    Event,
    ExistsResponse,
    FetchResponse,
    ListMailboxes,
    ListResponse,
    LiteralChunk,
    SearchKey,
    SearchResponse,
    Status,
    StatusResponse,
    UidCopy,
    UidExpunge,
    UidFetch,
    UidMove,
    UidSearch,
    UidStore,
)
from mssante.wire.imap import Expunge as _Expunge

from ._auth import BALCredentials
from ._config import BALKind, MailboxOptions, TrustSettings
from ._imap import IMAPConnection
from ._imap_results import SelectInfo
from ._models import SUMMARY_ITEMS, Folder, MailboxEvent, MessageSummary, ReceivedMessage, SendResult, WatchState
from ._sessions import BALSessions
from ._smtp import SMTPSubmission, StaleSession
from ._watch import watch as _watch

__all__ = ["Mailbox"]

log = logging.getLogger("mssante.client")
T = TypeVar("T")
Listener = Callable[[MailboxEvent], None]


def _grew_after_results(events: builtins.list[Event]) -> bool:
    """Whether ``EXISTS`` came after a command's results: they were computed on an older view.

    A server runs a command on the session's view and announces what was delivered meanwhile
    after the results (RFC 3501 §7; the sandbox and Dovecot both do), so a ``UID SEARCH`` on a
    folder selected earlier misses those messages until the next command. An ``EXISTS`` before
    the results means the server synchronised first: nothing to redo.
    """
    results = False
    for event in events:
        if isinstance(event, SearchResponse):
            results = True
        elif isinstance(event, ExistsResponse) and results:
            return True
    return False

class Mailbox:
    """One BAL on the API LPS (IMAP + SMTP submission), async.

    Args:
        address: the BAL address.
        kind: ``"PER"``, ``"ORG"`` (PSC token, XOAUTH2) or ``"APP"`` (ORG AUTH_CLI certificate, PLAIN).
        credentials: a :class:`~mssante.credentials.TokenSource` (PER/ORG) or a
            :class:`~mssante.credentials.ClientCertificate` (APP).
        servers: discovered servers (:func:`mssante.discovery.discover`) or a manual
            configuration; None: DNS SRV discovery on first use (ECO.1.1.9) with ``resolver``.
        resolver: the resolver for discovery (default: the system's); when it offers
            ``resolve_address`` (:class:`~mssante.discovery.DNSPythonResolver` does), it also
            gives the addresses of the SRV targets, unless ``options.connection.resolve``
            maps them (the certificate is still checked against the target name). Give every
            mailbox the same resolver: its answers are shared for their TTL, so many BALs of
            one domain make one query (:class:`~mssante.discovery.DNSCache`).
        tls: trust anchors and revocation policy (IGC Santé, ECO.1.1.x).
        traces: where functional traces go (ECO.4.1.x); None: not traced.
        product_reference: the Convergence product reference (X-MSS-NIL, ECO.2.4.3), needed to
            send a :class:`~mssante.message.Draft`.
        options: timeouts, backoff, Sent copy, polling (:class:`MailboxOptions`).

    Every connection of the BAL (the IMAP command connection, IMAP watch connections, the SMTP
    submission connection) belongs to the mailbox, so that :meth:`end` can close them all at
    once when the professional's PSC session ends (ECO.1.2.6).

    Raises:
        UsageError: ``kind`` and ``credentials`` do not match.
    """

    def __init__(
        self,
        address: str,
        *,
        kind: BALKind,
        credentials: TokenSource | ClientCertificate,
        servers: MailServers | ManualServers | None = None,
        resolver: Resolver | None = None,
        tls: TrustSettings,
        traces: TraceSink | None = None,
        product_reference: str | None = None,
        options: MailboxOptions | None = None,
    ) -> None:
        self.address = address
        self.kind: BALKind = kind
        self.options = options or MailboxOptions()
        self._creds = BALCredentials(address, kind, credentials, app_password=self.options.app_password)
        self._sessions = BALSessions(self, self._creds, servers=servers, resolver=resolver, tls=tls,
                                     options=self.options)
        self._traces = traces
        self._listeners: list[Listener] = []
        self._closed = False
        self._end_reason: str | None = None
        self._ended: asyncio.Event | None = None  # made on first use (a thousand idle BALs need none)
        self._compose = ComposeSettings(product_reference=product_reference) if product_reference else None
        self._selected: SelectInfo | None = None
        self._special: dict[str, str] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        on_end = getattr(credentials, "on_end", None)
        if callable(on_end):  # PSCSession, BridgeTokenSource (ECO.1.2.6)

            def ended(source: object) -> None:
                self.end(str(getattr(source, "end_message", None) or "the PSC session ended"))

            on_end(ended)
            remove = getattr(credentials, "remove_on_end", None)
            if callable(remove):  # forgotten on close: the source must not keep dead mailboxes
                self._unsubscribe = lambda: remove(ended)

    def __repr__(self) -> str:
        state = "ended" if self._end_reason else "closed" if self._closed else "open"
        return f"{type(self).__name__}({self.address!r}, {self.kind}, {state})"

    async def __aenter__(self) -> Mailbox:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- events and traces ----------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` on each :class:`MailboxEvent` (exceptions are logged, ECO.1.2.3)."""
        self._listeners.append(listener)

    def _emit(self, kind: Literal["connected", "disconnected", "ended", "closed"], detail: str = "",
              error: BaseException | None = None) -> None:
        event = MailboxEvent(address=self.address, kind=kind, detail=detail, error=error)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not break the mail flow (ECO.1.2.3)
                log.exception("mailbox listener failed")

    @property
    def token_source(self) -> TokenSource | None:
        """The PSC token source of a PER/ORG BAL, None for an APP BAL."""
        return self._creds.token_source

    @property
    def author(self) -> str:
        """The identity written in traces (ECO.4.1.1)."""
        return self.options.author or self._creds.author()

    def _trace(self, action: Action, request: str, response: str, ok: bool) -> None:
        if self._traces is None:
            return
        try:
            self._traces.emit(
                make_record(author=self.author, bal=self.address, action=action, request=request,
                            response=response, ok=ok)
            )
        except Exception:  # ECO.1.2.3: a trace sink failure never breaks the action
            log.exception("trace sink failed")

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True after :meth:`aclose` or the end of the PSC session."""
        return self._closed

    def is_closed(self) -> bool:
        """Same as :attr:`closed` (a call, so that type checkers re-read it after an await)."""
        return self._closed

    @property
    def ended(self) -> asyncio.Event:
        """Set when the PSC session ended (:meth:`end`, ECO.1.2.6): wait on it."""
        if self._ended is None:
            self._ended = asyncio.Event()
            if self._end_reason is not None:
                self._ended.set()
        return self._ended

    @property
    def end_reason(self) -> str | None:
        """Why the PSC session ended, or None."""
        return self._end_reason

    def _check_open(self) -> None:
        if self._end_reason is not None:
            raise PSCError(
                f"{self.address}: {self._end_reason}; every session was closed (sign in with PSC again)",
                oauth_error="invalid_grant",
                requirement="ECO.1.2.6",
            )
        if self._closed:
            raise UsageError(f"{self.address}: the mailbox is closed")

    def _note(self, exc: BaseException) -> None:
        """React to an error: ``invalid_grant`` from the token source ends every session (ECO.1.2.6)."""
        if isinstance(exc, PSCError) and exc.oauth_error == "invalid_grant":
            self.end(f"the PSC session is over ({exc.message})")

    def _forget_source(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            try:
                unsubscribe()
            except Exception:  # a token source's bug must not break closing (ECO.1.2.3)
                log.exception("token source remove_on_end failed")

    def end(self, reason: str) -> None:
        """Close every session of this BAL now, because its PSC session is over (ECO.1.2.6).

        Synchronous: sockets are aborted at once; later calls raise :class:`PSCError`
        (``invalid_grant``) and :meth:`watch` iterations stop with it. Idempotent, and a no-op
        once the mailbox is closed (:meth:`aclose`): a closed mailbox has no session to end.
        """
        if self._end_reason is not None or self._closed:
            return
        self._end_reason = reason
        self._closed = True
        self._sessions.abort_all()
        self._forget_source()
        if self._ended is not None:
            self._ended.set()
        self._trace("disconnect", "end of the PSC session", reason, True)
        self._emit("ended", reason)

    def abort(self) -> None:
        """Close every session at once, without LOGOUT / QUIT; :meth:`watch` iterations then stop quietly.
        Idempotent. For a caller whose polite close cannot wait (a worker stopping watches that did not end
        when cancelled)."""
        self._forget_source()
        self._closed = True
        self._sessions.abort_all()

    async def aclose(self) -> None:
        """LOGOUT / QUIT every session (bounded), then close. Idempotent."""
        self._forget_source()
        if self._closed and not self._sessions.live:
            return
        self._closed = True
        await self._sessions.close_all(grace=1.0)
        self._trace("logout", "close every session", "closed", True)
        self._emit("closed")

    # -- connections ----------------------------------------------------------------------------
    async def open_imap(self) -> IMAPConnection:
        """A new authenticated IMAP connection, owned by this mailbox until closed.

        Raises:
            MssanteError: see :meth:`list` (transport, trust, authentication, PSC).
        """
        return await self._sessions.open_imap()

    def release(self, conn: IMAPConnection | SMTPSubmission) -> None:
        """Forget a connection that was closed."""
        self._sessions.release(conn)

    def imap_session(self) -> contextlib.AbstractAsyncContextManager[IMAPConnection]:
        """The shared IMAP command connection, (re)opened as needed, one user at a time.

        Raises:
            MssanteError: see :meth:`open_imap`.
        """
        return self._sessions.imap_session()

    async def imap_call(self, action: Action, request: str, fn: Callable[[IMAPConnection], Awaitable[T]]) -> T:
        """Run ``fn`` on the command connection, traced; reopen once if the connection was lost.

        Raises:
            MssanteError: what ``fn`` or the connection raised.
        """
        return await self._sessions.imap_call(action, request, fn)

    def _on_new_imap(self) -> None:
        self._selected = None

    async def _select(self, conn: IMAPConnection, folder: str) -> SelectInfo:
        if self._selected is None or self._selected.name != folder:
            self._selected = None
            self._selected = await conn.select(folder)
        return self._selected

    # -- folders --------------------------------------------------------------------------------
    async def folders(self) -> builtins.list[Folder]:
        """The folders, with their RFC 6154 special use (``LIST ... RETURN (SPECIAL-USE)``).

        Raises:
            CommandFailed: LIST refused.
            TokenRejected, NotAuthorized, AuthUnavailable, PSCError: authentication (see :meth:`send`).
            TransportError, TrustError, ProtocolError: the connection failed or is not trusted.
        """

        async def run(conn: IMAPConnection) -> builtins.list[Folder]:
            _, events = await conn.command(ListMailboxes(special_use=conn.engine.has("SPECIAL-USE")))
            return [Folder.from_list(e) for e in events if isinstance(e, ListResponse)]

        found = await self.imap_call("list", 'LIST "" "*"', run)
        self._special = {f.special_use.lower(): f.name for f in found if f.special_use}
        return found

    async def special_folder(self, use: str) -> str:
        """The name of the folder with special use ``use`` (``"\\\\Sent"``, ``"\\\\Trash"``...).

        Falls back to the conventional name (``Sent``, ``Trash``) when the server marks none.

        Raises:
            MssanteError: see :meth:`folders`.
        """
        if self._special is None:
            await self.folders()
        assert self._special is not None
        return self._special.get(use.lower(), use.lstrip("\\"))

    async def status(self, folder: str = "INBOX") -> dict[str, int]:
        """``STATUS`` of a folder without selecting it (RFC 3501 §6.3.10): MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN.

        Raises:
            CommandFailed: no such folder. MssanteError: see :meth:`folders`.
        """

        async def run(conn: IMAPConnection) -> dict[str, int]:
            _, events = await conn.command(Status(mailbox=folder))
            return {k: v for e in events if isinstance(e, StatusResponse) for k, v in e.items}

        return await self.imap_call("list", f"STATUS {folder}", run)

    # -- reading --------------------------------------------------------------------------------
    async def list(self, folder: str = "INBOX", *, unseen_only: bool = False, limit: int | None = None
                   ) -> builtins.list[MessageSummary]:
        """Summaries of the messages of ``folder`` (no body), oldest first.

        Messages delivered since the connection's last command are included: when the server
        announces them (``EXISTS``) after the search results, the search is run once more.

        Args:
            folder: the folder name.
            unseen_only: only messages without ``\\Seen``.
            limit: only the ``limit`` most recent ones.

        Raises:
            CommandFailed: no such folder, or a command refused.
            MssanteError: authentication, transport or trust failures (see :meth:`folders`).
        """

        async def run(conn: IMAPConnection) -> builtins.list[MessageSummary]:
            info = await self._select(conn, folder)
            criteria = SearchKey.unseen() if unseen_only else SearchKey.all()
            _, events = await conn.command(UidSearch(criteria=criteria))
            if _grew_after_results(events):  # the search ran on a view older than this call
                _, events = await conn.command(UidSearch(criteria=criteria))
            uids = sorted({uid for e in events if isinstance(e, SearchResponse) for uid in e.ids})
            if limit is not None:
                uids = uids[-limit:] if limit > 0 else []
            if not uids:
                return []
            _, events = await conn.command(UidFetch(uids=uids, items=SUMMARY_ITEMS))
            out = [MessageSummary.from_fetch(e, folder=folder, uidvalidity=info.uidvalidity)
                   for e in events if isinstance(e, FetchResponse) and e.uid in uids]
            return sorted(out, key=lambda s: s.uid)

        return await self.imap_call("list", f"UID SEARCH {'UNSEEN' if unseen_only else 'ALL'} in {folder}", run)

    async def fetch(self, uid: int, folder: str = "INBOX", *, mark_seen: bool = False) -> ReceivedMessage:
        """The whole message ``uid``: raw octets (streamed, bounded), parsed on first use of ``.parsed``.

        Args:
            uid: the message UID in ``folder``.
            folder: the folder.
            mark_seen: set ``\\Seen`` (``BODY[]``); default ``BODY.PEEK[]`` leaves flags alone.

        Raises:
            CommandFailed: no such message or folder.
            LimitError: larger than ``options.connection.max_message_size`` (the connection is dropped).
            MssanteError: authentication, transport or trust failures (see :meth:`folders`).
        """
        limit = self.options.connection.max_message_size
        item = "BODY[]" if mark_seen else "BODY.PEEK[]"

        async def run(conn: IMAPConnection) -> tuple[bytes, tuple[str, ...]]:
            await self._select(conn, folder)
            chunks = bytearray()
            raw: bytes | None = None
            flags: tuple[str, ...] = ()
            for _attempt in range(2):
                grew = False
                async for event in conn.stream(UidFetch(uids=uid, items=("UID", "FLAGS", item))):
                    if isinstance(event, LiteralChunk):
                        if event.total > limit:
                            raise LimitError(f"message {uid} has {event.total} octets, over the limit of {limit}")
                        chunks += event.data
                    elif isinstance(event, FetchResponse):
                        if event.uid == uid:
                            body = event.get("BODY[]")
                            raw = body if isinstance(body, bytes) else bytes(chunks)
                            flags = event.flags or flags
                        chunks = bytearray()
                    elif isinstance(event, ExistsResponse):
                        grew = True
                if raw is not None or not grew:  # not found, and the view did not grow meanwhile
                    break
            if raw is None:
                raise CommandFailed(f"no message with UID {uid} in {folder}")
            return raw, flags

        raw, flags = await self.imap_call("read" if mark_seen else "fetch", f"UID FETCH {uid} ({item}) in {folder}",
                                          run)
        return ReceivedMessage(folder=folder, uid=uid, flags=flags, raw=raw)

    # -- changing -------------------------------------------------------------------------------
    async def flag(self, uid: int, folder: str = "INBOX", *, seen: bool | None = True, flagged: bool | None = None
                   ) -> None:
        """Set or clear ``\\Seen`` / ``\\Flagged`` on message ``uid`` (``None`` leaves a flag alone).

        Raises:
            CommandFailed: refused. MssanteError: see :meth:`folders`.
        """
        changes = [(f, v) for f, v in (("\\Seen", seen), ("\\Flagged", flagged)) if v is not None]

        async def run(conn: IMAPConnection) -> None:
            await self._select(conn, folder)
            for name, value in changes:
                await conn.command(UidStore(uids=uid, flags=(name,), mode="+" if value else "-"))

        desc = " ".join(f"{'+' if v else '-'}{f}" for f, v in changes)
        await self.imap_call("flag", f"UID STORE {uid} {desc} in {folder}", run)

    async def move(self, uid: int, to: str, folder: str = "INBOX") -> int | None:
        """Move message ``uid`` to folder ``to`` (UID MOVE, RFC 6851; else COPY + expunge).

        Returns:
            The UID in ``to`` when the server says it (COPYUID, RFC 4315), else None.

        Raises:
            CommandFailed: refused (e.g. no such folder). MssanteError: see :meth:`folders`.
        """

        async def run(conn: IMAPConnection) -> int | None:
            await self._select(conn, folder)
            if conn.engine.has("MOVE"):
                tagged, events = await conn.command(UidMove(uids=uid, mailbox=to))
                codes = [tagged.code] + [getattr(e, "code", None) for e in events]
            else:
                tagged, _ = await conn.command(UidCopy(uids=uid, mailbox=to))
                codes = [tagged.code]
                await self._expunge(conn, uid)
            for code in codes:
                if code is not None and code.name == "COPYUID":
                    dest = getattr(code.data, "destination", None)
                    return next(iter(dest), None) if dest is not None else None
            return None

        return await self.imap_call("move", f"UID MOVE {uid} {to} from {folder}", run)

    async def _expunge(self, conn: IMAPConnection, uid: int) -> None:
        await conn.command(UidStore(uids=uid, flags=("\\Deleted",), mode="+"))
        # UID EXPUNGE (RFC 4315 §2.1) removes only this message; plain EXPUNGE removes every \Deleted one.
        await conn.command(UidExpunge(uids=uid) if conn.engine.has("UIDPLUS") else _Expunge())

    async def delete(self, uid: int, folder: str = "INBOX", *, expunge: bool = False) -> None:
        """Delete message ``uid``: move it to Trash, or expunge it (``expunge``, or already in Trash).

        Raises:
            CommandFailed: refused. MssanteError: see :meth:`folders`.
        """
        trash = await self.special_folder("\\Trash")
        if not expunge and folder != trash:
            await self.move(uid, trash, folder)
            self._trace("delete", f"delete {uid} from {folder} (moved to {trash})", "OK", True)
            return

        async def run(conn: IMAPConnection) -> None:
            await self._select(conn, folder)
            await self._expunge(conn, uid)

        await self.imap_call("delete", f"UID STORE {uid} +FLAGS (\\Deleted) + UID EXPUNGE in {folder}", run)

    async def append(self, folder: str, message: bytes, *, flags: tuple[str, ...] = ("\\Seen",)) -> int | None:
        """APPEND ``message`` to ``folder`` (RFC 3501 §6.3.11).

        Returns:
            The new UID when the server says it (APPENDUID, RFC 4315), else None.

        Raises:
            LimitError: larger than ``options.connection.max_message_size``.
            CommandFailed: refused. MssanteError: see :meth:`folders`.
        """
        if len(message) > self.options.connection.max_message_size:
            raise LimitError(f"message of {len(message)} octets is over the limit")

        async def run(conn: IMAPConnection) -> int | None:
            tagged, _ = await conn.command(Append(mailbox=folder, message=message, flags=flags))
            uids = getattr(tagged.code.data, "uids", None) if tagged.code and tagged.code.name == "APPENDUID" else None
            return next(iter(uids), None) if uids is not None else None

        return await self.imap_call("append", f"APPEND {folder} ({len(message)} octets)", run)

    # -- sending --------------------------------------------------------------------------------
    async def send(self, message: Draft | ComposedMessage) -> SendResult:
        """Submit a message (composed from a :class:`Draft` when needed), then file a copy in Sent.

        The copy is APPENDed to the ``\\Sent`` folder unless ``options.operator_saves_sent``.
        DSN parameters (NOTIFY, RET, ENVID, ORCPT) come from the composed message.

        Raises:
            UsageError: a Draft without ``product_reference`` (X-MSS-NIL, ECO.2.4.3).
            ContentError, UsageError: the draft cannot be composed.
            LimitError: larger than the server's ``SIZE``.
            CommandFailed: the sender, every recipient or the data was refused (``smtp_code``).
            TokenRejected: rejected twice (once with a fresh token), ref2 §2.4.
            NotAuthorized: not allowed on this BAL (no retry).
            AuthUnavailable: still unavailable after the bounded backoff.
            PSCError: the PSC session is over (every session was closed, ECO.1.2.6).
            TransportError, TrustError, StartTLSError: the connection failed or is not trusted.
        """
        if isinstance(message, Draft):
            if self._compose is None:
                raise UsageError("sending a Draft needs product_reference (X-MSS-NIL, ECO.2.4.3)")
            message = compose_message(message, settings=self._compose)
        data = message.to_bytes()
        request = (f"MAIL FROM:<{message.envelope_from}> RCPT TO:<{'>,<'.join(message.recipients)}> "
                   f"DATA ({len(data)} octets) {message.message_id}")
        try:
            async with self._sessions.smtp_lock:
                try:
                    smtp = await self._sessions.smtp_session()
                    result = await smtp.send(message.envelope_from, message.recipients, data, dsn=message.dsn)
                except StaleSession:
                    # The server had dropped the idle session: nothing was submitted; reopen, once.
                    smtp = await self._sessions.smtp_session(reconnect=True)
                    result = await smtp.send(message.envelope_from, message.recipients, data, dsn=message.dsn)
        except MssanteError as exc:
            self._note(exc)
            self._trace("send", request, str(exc), False)
            raise
        self._trace("send", request, result.reply, True)
        sent = SendResult(message_id=message.message_id, accepted=result.accepted, refused=result.refused,
                          reply=result.reply)
        if self.options.operator_saves_sent:
            return sent
        # The message is gone: a failed Sent copy must not look like a failed submission (a caller
        # retrying would send twice). It is traced by append() and reported in the result.
        try:
            folder = await self.special_folder("\\Sent")
            uid = await self.append(folder, data)
        except MssanteError as exc:
            return SendResult(message_id=sent.message_id, accepted=sent.accepted, refused=sent.refused,
                              reply=sent.reply, sent_error=str(exc))
        return SendResult(message_id=sent.message_id, accepted=sent.accepted, refused=sent.refused,
                          reply=sent.reply, sent_folder=folder, sent_uid=uid)

    # -- watching -------------------------------------------------------------------------------
    def watch(self, folder: str = "INBOX", *, state: WatchState | None = None) -> AsyncGenerator[MessageSummary, None]:
        """New messages of ``folder`` as they arrive (IDLE, or polling), on a connection of its own.

        Robust to reconnections: after a drop it reconnects with backoff (ECO.1.2.7) and scans
        the UIDs above the last one delivered, so nothing delivered meanwhile is missed. Pass
        a :class:`WatchState` (and keep it) to resume; by default only messages arriving after
        the first connection are delivered. Iteration ends quietly after :meth:`aclose`.

        Raises:
            TokenRejected, NotAuthorized: authentication refused after the retry rule.
            PSCError: the PSC session is over (ECO.1.2.6).
            TrustError: the server is not trusted.
            CommandFailed: the folder cannot be selected.
        """
        return _watch(self, state or WatchState(folder=folder))
