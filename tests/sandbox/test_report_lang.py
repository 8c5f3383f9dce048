"""The ``[submission] report_lang`` setting reaches the running operator's delivery reports.

A PER LPS in IDLE (stdlib imaplib, XOAUTH2) submits a message to a patient's Mon espace santé
address (stdlib smtplib); the sandbox accepts it, cannot route it, and returns a failure DSN
(RFC 3464) whose human-readable part is in the configured language.
"""

from __future__ import annotations

import asyncio
import email
import email.header
import imaplib
import smtplib
import ssl
import threading
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mssante._i18n import Lang
from mssante.sandbox.config import SubmissionSettings, default_config
from mssante.testing import running_sandbox

pytestmark = pytest.mark.slow

PER = "marie.curie@mss.sandbox.test"
PATIENT = "279035121518989@patient.mssante.fr"


def _ctx(info: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=info["ca_bundle"])
    ctx.check_hostname = False  # connected by IP: the SRV-name check is the client library's tests
    return ctx


def _xoauth2(token: str) -> str:
    return f"user={PER}\x01auth=Bearer {token}\x01\x01"


def _wait_for_report(info: dict[str, Any], token: str, ready: threading.Event) -> bytes:
    imap = imaplib.IMAP4("127.0.0.1", info["imap"]["psc"]["port"], timeout=20)
    try:
        imap.starttls(ssl_context=_ctx(info))
        imap.authenticate("XOAUTH2", lambda _: _xoauth2(token).encode())
        imap.select("INBOX")
        tag = imap._new_tag()  # imaplib has no IDLE before Python 3.14
        imap.send(tag + b" IDLE\r\n")
        assert imap.readline().startswith(b"+")
        ready.set()
        assert imap.readline().rstrip().endswith(b"EXISTS")
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(tag):
            pass
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        return bytes(data[0][1])
    finally:
        imap.logout()


def _submit(info: dict[str, Any], token: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = PER, PATIENT, "Vos résultats"
    msg["X-MSS-NIL"] = "DEV000001"
    msg.set_content("Bonjour, vos résultats sont disponibles.")
    with smtplib.SMTP("127.0.0.1", info["smtp"]["psc"]["port"], timeout=20) as smtp:
        smtp.starttls(context=_ctx(info))
        smtp.ehlo()
        smtp.auth("XOAUTH2", lambda challenge=None: _xoauth2(token), initial_response_ok=False)
        smtp.send_message(msg)


@pytest.mark.parametrize(("lang", "subject"), [
    ("fr", "Message non remis, retourné à l'expéditeur"),
    ("en", "Undelivered Mail Returned to Sender"),
])
async def test_the_configured_language_writes_the_reports(tmp_path: Path, lang: Lang, subject: str) -> None:
    config = replace(default_config(), submission=SubmissionSettings(report_lang=lang))
    async with running_sandbox(tmp_path / "state", config) as sandbox:
        info = sandbox.info
        token = sandbox.psc.issue_tokens_for_tests("899700000001", "mssante-sandbox")["access_token"]
        ready = threading.Event()
        reader = asyncio.create_task(asyncio.to_thread(_wait_for_report, info, token, ready))
        assert await asyncio.to_thread(ready.wait, 20)
        await asyncio.to_thread(_submit, info, token)
        raw = await asyncio.wait_for(reader, 30)
    report = email.message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report"
    assert str(email.header.make_header(email.header.decode_header(report["Subject"]))) == subject
    status = report.get_payload()[1].as_string()
    assert f"Final-Recipient: rfc822; {PATIENT}" in status and "Action: failed" in status


def test_the_setting_is_read_from_the_config_file(tmp_path: Path) -> None:
    from mssante.errors import ConfigError
    from mssante.sandbox.config import load_config

    path = tmp_path / "sandbox.toml"
    assert load_config(None).submission.report_lang == "fr"
    path.write_text('[submission]\nreport_lang = "en"\n')
    assert load_config(path).submission.report_lang == "en"
    path.write_text('[submission]\nreport_lang = "de"\n')
    with pytest.raises(ConfigError, match="report_lang"):
        load_config(path)
