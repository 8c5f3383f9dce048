"""A persistent sandbox (``mssante sandbox up``) keeps its state across restarts (issue 12).

Messages, flags and keywords (``$MDNSent``, RFC 3503 §2), the session journal and every port
survive a restart of one state directory; ``--reset`` empties the mailboxes and the journal and
keeps the ports, so an LPS configuration stays valid.
"""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from pathlib import Path
from typing import Any

from mssante.sandbox.config import default_config
from mssante.sandbox.runner import JOURNAL_FILE, Sandbox
from tests.sandbox._imap_support import PER, message

CFG = default_config()
MARIE = "899700000001"


def _ports(info: dict[str, Any]) -> dict[str, int]:
    fronts = {f"{p}_{f}": info[p][f]["port"] for p in ("imap", "smtp") for f in ("psc", "authcli")}
    return {**fronts, "dns": info["dns"]["port"], "http": int(info["api_url"].rsplit(":", 1)[1].split("/")[0])}


def _flag_as_an_lps_would(info: dict[str, Any], token: str) -> None:
    """STARTTLS, XOAUTH2, then \\Seen and $MDNSent on the first message (imaplib: software we did not write)."""
    ctx = ssl.create_default_context(cafile=info["ca_bundle"])
    ctx.check_hostname = False  # connected by IP; the name check is the client library's tests
    imap = imaplib.IMAP4("127.0.0.1", info["imap"]["psc"]["port"], timeout=20)
    try:
        imap.starttls(ssl_context=ctx)
        imap.authenticate("XOAUTH2", lambda _: f"user={PER}\x01auth=Bearer {token}\x01\x01".encode())
        imap.select("INBOX")
        typ, _ = imap.uid("STORE", "1", "+FLAGS", r"(\Seen $MDNSent)")
        assert typ == "OK"
        imap.logout()
    finally:
        if imap.state != "LOGOUT":
            imap.shutdown()


async def test_a_restart_keeps_messages_flags_journal_and_ports_and_reset_clears_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Sandbox(CFG, state, persist_mail=True) as sb:
        await sb.store.deliver(PER, message("avant redemarrage"))
        token = sb.psc.issue_tokens_for_tests(MARIE, sb.info["psc"]["client_id"])["access_token"]
        await asyncio.to_thread(_flag_as_an_lps_would, sb.info, token)
        await sb.journal.wait_for(lambda: [r for r in sb.journal.records(bal=PER) if r.ended_at is not None])
        ports = _ports(sb.info)
        sessions = [(r.id, r.front, r.auth_result) for r in sb.journal.records(bal=PER)]

    async with Sandbox(CFG, state, persist_mail=True) as sb:
        [kept] = await sb.store.list_messages(PER)
        assert kept.headers["Subject"] == "avant redemarrage"
        assert {"\\Seen", "$MDNSent"} <= set(kept.flags)
        assert [(r.id, r.front, r.auth_result) for r in sb.journal.records(bal=PER)] == sessions
        assert _ports(sb.info) == ports
        assert (state / JOURNAL_FILE).stat().st_size > 0

    async with Sandbox(CFG, state, persist_mail=True, reset=True) as sb:
        assert sb.was_reset
        assert await sb.store.list_messages(PER) == []
        assert sb.journal.records(bal=PER) == []
        assert _ports(sb.info) == ports
