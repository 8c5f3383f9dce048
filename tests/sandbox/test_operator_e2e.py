"""The reference operator end to end with clients no one here wrote (stdlib smtplib and imaplib).

A PER LPS submits over the PSC front (STARTTLS + XOAUTH2); an APP LPS, connected to the
AUTH_CLI front with its ORG AUTH_CLI certificate (STARTTLS + PLAIN), is in IDLE and is told
of the new message, then reads it.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl
import threading
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mssante.sandbox.runner import Sandbox
from mssante.testing import running_sandbox

pytestmark = pytest.mark.slow

PER = "marie.curie@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path / "state") as sb:
        yield sb


def _ctx(info: dict[str, Any], *, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=info["ca_bundle"])
    ctx.check_hostname = False  # connected by IP: the SRV-name check is the client library's tests
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


def _app_idle_then_read(info: dict[str, Any], sent: Any) -> tuple[bytes, bytes]:
    app = next(b for b in info["bals"] if b["address"] == APP)
    imap = imaplib.IMAP4("127.0.0.1", info["imap"]["authcli"]["port"], timeout=20)
    try:
        imap.starttls(ssl_context=_ctx(info, cert=app["cert"], key=app["key"]))
        imap.authenticate("PLAIN", lambda _: f"\0{APP}\0ignored".encode())
        imap.select("INBOX")
        tag = imap._new_tag()  # imaplib has no IDLE before Python 3.14
        imap.send(tag + b" IDLE\r\n")
        assert imap.readline().startswith(b"+")
        sent.set()  # now the PER side may submit
        notification = imap.readline()
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(tag):
            pass
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        return notification, data[0][1]
    finally:
        imap.logout()


def _per_submit(info: dict[str, Any], token: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = PER, APP, "Message du cabinet"
    msg["X-MSS-NIL"] = "DEV000001"
    msg.set_content("Bonjour, ceci est un message de test.")
    with smtplib.SMTP("127.0.0.1", info["smtp"]["psc"]["port"], timeout=20) as smtp:
        smtp.starttls(context=_ctx(info))
        smtp.ehlo()
        xoauth2 = f"user={PER}\x01auth=Bearer {token}\x01\x01"
        smtp.auth("XOAUTH2", lambda challenge=None: xoauth2, initial_response_ok=False)
        smtp.send_message(msg)


async def test_per_submits_app_is_notified_in_idle_then_reads(sandbox: Sandbox) -> None:
    info = sandbox.info
    token = sandbox.psc.issue_tokens_for_tests("899700000001", "mssante-sandbox")["access_token"]
    ready = threading.Event()
    reader = asyncio.create_task(asyncio.to_thread(_app_idle_then_read, info, ready))
    await asyncio.to_thread(ready.wait, 20)
    await asyncio.to_thread(_per_submit, info, token)
    notification, raw = await asyncio.wait_for(reader, 30)
    assert notification.rstrip() == b"* 1 EXISTS"
    assert b"Subject: Message du cabinet" in raw and b"X-MSS-NIL: DEV000001" in raw
    records = {r.front: r for r in sandbox.journal}
    assert records["smtp-psc"].mechanism == "XOAUTH2" and records["smtp-psc"].starttls_before_auth
    assert records["imap-authcli"].mechanism == "PLAIN" and records["imap-authcli"].bal == APP
    assert records["imap-authcli"].client_cert_subject is not None
