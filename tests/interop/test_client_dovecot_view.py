"""``Mailbox.list()`` against Dovecot sees messages delivered since the connection's last command.

Dovecot answers a ``UID SEARCH`` from the session's view and announces new messages with
``EXISTS`` after the results (RFC 3501 §7), as the sandbox does
(``tests/client/test_mailbox_fresh_view.py``). The messages are delivered by imaplib's APPEND
on another connection (no mssante code), so nothing touches the client's connection meanwhile.
"""

from __future__ import annotations

import asyncio
import imaplib

import pytest

from mssante.wire.imap import ExistsResponse, SearchKey, SearchResponse, UidSearch
from tests.interop.test_client_dovecot import APP, HOSPITAL, PER, Env, env

__all__ = ["env"]  # the module's Dovecot and sandbox, shared from test_client_dovecot

pytestmark = [
    pytest.mark.dovecot,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(60),
]


def _append(env: Env, subject: str) -> None:
    """APPEND one message to the APP BAL's INBOX with imaplib, then log out."""
    body = (f"From: <{PER}>\r\nTo: <{APP}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@lps.test>\r\n"
            "\r\nBonjour.\r\n").encode()
    with imaplib.IMAP4(env.dovecot.host, env.dovecot.imap_port, timeout=10) as imap:  # LOGOUT on leaving
        imap.starttls(env.dovecot.client_ssl_context(env.sb.client_certs[HOSPITAL]))
        imap.authenticate("PLAIN", lambda _: f"\x00{APP}\x00x".encode())
        typ, data = imap.append("INBOX", None, None, body)
        assert typ == "OK", data


async def _empty_inbox(env: Env) -> None:
    async with env.app() as app:
        for summary in await app.list():
            await app.delete(summary.uid, "INBOX", expunge=True)


async def test_list_sees_messages_appended_since_the_last_command(env: Env) -> None:
    await _empty_inbox(env)
    async with env.app() as app, asyncio.timeout(30):
        await asyncio.to_thread(_append, env, "premier")
        assert [s.subject for s in await app.list()] == ["premier"]
        await asyncio.to_thread(_append, env, "second")
        assert [s.subject for s in await app.list()] == ["premier", "second"]
        await asyncio.to_thread(_append, env, "troisieme")
        assert [s.subject for s in await app.list(unseen_only=True)] == ["premier", "second", "troisieme"]
        await asyncio.to_thread(_append, env, "quatrieme")
        assert [s.subject for s in await app.list(limit=1)] == ["quatrieme"]
        # a UID learnt elsewhere (watch()'s own connection): fetched on the stale view
        await asyncio.to_thread(_append, env, "cinquieme")
        async with env.app() as other:
            uid = (await other.list(limit=1))[0].uid
        assert (await app.fetch(uid)).parsed.subject == "cinquieme"


async def test_dovecot_announces_exists_after_the_search_results(env: Env) -> None:
    """What makes the view stale on Dovecot too: the order of its answer."""
    async with env.app() as app, app.imap_session() as conn, asyncio.timeout(30):
        await conn.select("INBOX")
        await asyncio.to_thread(_append, env, "nouveau")
        _, events = await conn.command(UidSearch(criteria=SearchKey.all()))
        assert [type(e) for e in events if isinstance(e, SearchResponse | ExistsResponse)] == [
            SearchResponse, ExistsResponse]
