"""``Mailbox.list()`` sees what was delivered since the connection's last command.

The sandbox's imapd, like Dovecot, runs a command on the session's current view and announces
new messages (``EXISTS``) after the command's results (RFC 3501 §7): a ``UID SEARCH`` on a
selected folder answers from a view that misses them. The same test against Dovecot is in
``tests/interop/test_client_dovecot_view.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.wire.imap import ExistsResponse, SearchKey, SearchResponse, UidSearch
from tests.client.test_mailbox_support import APP, PER, app_mailbox, running_sandbox

pytestmark = pytest.mark.slow


def _mail(subject: str) -> bytes:
    return (f"From: <{PER}>\r\nTo: <{APP}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@lps.test>\r\n"
            "\r\nBonjour.\r\n").encode()


async def test_list_sees_messages_delivered_since_the_last_command(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path) as sb, asyncio.timeout(60), app_mailbox(sb) as app:
        await sb.store.deliver(APP, _mail("premier"))
        assert [s.subject for s in await app.list()] == ["premier"]  # SELECT: a fresh view
        await sb.store.deliver(APP, _mail("second"))
        assert [s.subject for s in await app.list()] == ["premier", "second"]
        await sb.store.deliver(APP, _mail("troisieme"))
        assert [s.subject for s in await app.list(unseen_only=True)] == ["premier", "second", "troisieme"]
        assert [s.subject for s in await app.list(limit=1)] == ["troisieme"]
        await sb.store.deliver(APP, _mail("quatrieme"))
        assert [s.subject for s in await app.list(limit=1)] == ["quatrieme"]


async def test_fetch_finds_a_message_delivered_since_the_last_command(tmp_path: Path) -> None:
    """A UID learnt elsewhere (watch()'s own connection, the sandbox API) is fetched on a stale view."""
    async with running_sandbox(tmp_path) as sb, asyncio.timeout(60), app_mailbox(sb) as app:
        assert await app.list() == []
        await sb.store.deliver(APP, _mail("arrive"))
        (stored,) = await sb.store.list_messages(APP)
        assert (await app.fetch(stored.uid)).parsed.subject == "arrive"


async def test_the_sandbox_announces_exists_after_the_search_results(tmp_path: Path) -> None:
    """What makes the view stale: the order of the server's answer (so the fix is needed)."""
    async with running_sandbox(tmp_path) as sb, asyncio.timeout(60), app_mailbox(sb) as app, \
            app.imap_session() as conn:
        await conn.select("INBOX")
        await sb.store.deliver(APP, _mail("nouveau"))
        _, events = await conn.command(UidSearch(criteria=SearchKey.all()))
        kinds = [type(e) for e in events if isinstance(e, SearchResponse | ExistsResponse)]
        assert kinds == [SearchResponse, ExistsResponse]
        assert next(e for e in events if isinstance(e, SearchResponse)).ids == ()
