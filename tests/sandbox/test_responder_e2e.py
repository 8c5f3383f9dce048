"""The XDM auto-responder answers an LPS's message end to end, over the sandbox's real fronts."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mssante.message import parse_message
from mssante.sandbox.runner import Sandbox
from mssante.testing import running_sandbox
from mssante.xdm import read_archive

pytestmark = pytest.mark.slow

PER = "marie.curie@mss.sandbox.test"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path / "state") as sb:
        yield sb


def _context(info: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=info["ca_bundle"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _xoauth2(address: str, token: str) -> bytes:
    return f"user={address}\x01auth=Bearer {token}\x01\x01".encode()


def _wait_for_messages(imap: imaplib.IMAP4, count: int) -> None:
    """IDLE (RFC 2177) until INBOX holds ``count`` messages: the server's ``* n EXISTS`` is the event."""
    _, data = imap.select("INBOX")
    if int(data[0] or 0) >= count:
        return
    tag = imap._new_tag()  # imaplib has no IDLE: the command by hand, its answers read line by line
    imap.send(tag + b" IDLE\r\n")
    assert imap.readline().startswith(b"+"), "IDLE refused"
    while True:  # the socket's 20 s timeout bounds each wait
        words = imap.readline().split()
        if words[:1] == [b"*"] and words[2:3] == [b"EXISTS"] and int(words[1]) >= count:
            break
    imap.send(b"DONE\r\n")
    while not imap.readline().startswith(tag):
        pass


def _fetch_inbox(info: dict[str, Any], token: str, *, wait_for: int = 0) -> list[bytes]:
    front = info["imap"]["psc"]
    imap = imaplib.IMAP4("127.0.0.1", front["port"], timeout=20)
    try:
        ctx = _context(info)
        ctx.check_hostname = False  # connected by IP; the name check is covered by the client tests
        imap.starttls(ssl_context=ctx)
        imap.authenticate("XOAUTH2", lambda _: _xoauth2(PER, token))
        _wait_for_messages(imap, wait_for)
        imap.select("INBOX")
        _, data = imap.uid("SEARCH", "ALL")
        messages = []
        for uid in data[0].split():
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            messages.append(parts[0][1])
        return messages
    finally:
        imap.logout()


async def test_vsm_responder_answers_with_xdm_and_mdn(sandbox: Sandbox) -> None:
    info = sandbox.info
    token = sandbox.psc.issue_tokens_for_tests("899700000001", "mssante-sandbox")["access_token"]
    ctx_patch = _context(info)
    ctx_patch.check_hostname = False

    def send() -> None:
        msg = EmailMessage()
        msg["From"] = PER
        msg["To"] = f"vsm@{info['domain']}"
        msg["Subject"] = "Demande de document de test"
        msg["Message-ID"] = "<demande-1@mss.sandbox.test>"
        msg["Disposition-Notification-To"] = PER
        msg["X-MSS-NIL"] = "DEV000001"
        msg.set_content("Bonjour, merci de m'envoyer un document de test.")
        with smtplib.SMTP("127.0.0.1", info["smtp"]["psc"]["port"], timeout=20) as smtp:
            smtp.starttls(context=ctx_patch)
            smtp.ehlo()
            smtp.auth("XOAUTH2", lambda challenge=None: _xoauth2(PER, token).decode(), initial_response_ok=False)
            smtp.send_message(msg)

    await asyncio.to_thread(send)
    messages = await asyncio.to_thread(_fetch_inbox, info, token, wait_for=2)  # the reply and the MDN
    parsed = [parse_message(m) for m in messages]
    replies = [p for p in parsed if p.report is None]
    mdns = [p for p in parsed if p.report is not None]
    assert len(replies) == 1 and len(mdns) == 1, [p.subject for p in parsed]
    reply = replies[0]
    assert reply.subject is not None and reply.subject.startswith("XDM/1.0/DDM+")
    assert reply.mss.codecda == ("60591-5",)
    assert reply.mss.ins == "O"
    assert reply.mss.nil
    assert reply.in_reply_to == "<demande-1@mss.sandbox.test>"
    zipped = next(a for a in reply.attachments if a.kind == "xdm")
    archive = read_archive(zipped.content)
    assert archive.documents[0].cda is not None
    assert archive.documents[0].cda.code is not None and archive.documents[0].cda.code.code == "60591-5"
    assert any(a.kind == "pdf" for a in reply.attachments) or not _pdf_renderer_present()
    mdn = mdns[0].report
    assert mdn is not None


def _pdf_renderer_present() -> bool:
    try:
        import mssante.pdf  # noqa: F401
    except ImportError:
        return False
    return True
