"""SMTP submission fronts: DSNs (RFC 3461/3464), responders and their loop guard, the journal, the real store."""

from __future__ import annotations

import email
import email.policy
import smtplib
from collections.abc import Sequence
from email.message import EmailMessage, MIMEPart
from pathlib import Path

import pytest

from mssante.sandbox.fronts.delivery import OutgoingMessage
from mssante.sandbox.fronts.smtp import SubmissionOptions
from mssante.sandbox.fronts.store import MailStore
from tests.sandbox._smtp_env import (
    APP,
    CFG,
    LAB_APP,
    PER,
    Challenges,
    Env,
    Material,
    in_thread,
    message,
    smtp_connect,
    start_env,
)


def _send(env: Env, token: str, mail_options: Sequence[str], rcpts: dict[str, Sequence[str]], data: bytes) -> None:
    """Blocking: authenticate as PER and send ``data`` with explicit envelope parameters."""
    with smtp_connect(env) as client:
        client.auth("XOAUTH2", Challenges(PER, token), initial_response_ok=False)
        assert client.mail(PER, list(mail_options))[0] == 250
        for rcpt, options in rcpts.items():
            assert client.rcpt(rcpt, list(options))[0] == 250
        code, text = client.data(data)
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as"), text


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _report(raw: bytes) -> tuple[EmailMessage, str, MIMEPart]:
    """Split a DSN into (whole message, delivery-status text, returned part)."""
    dsn = _parse(raw.split(b"\r\n", 2)[2] if raw.startswith(b"Received:") else raw)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = list(dsn.iter_parts())
    assert [p.get_content_type() for p in parts][:2] == ["text/plain", "message/delivery-status"]
    status = parts[1].as_string()
    return dsn, status, parts[2]


async def test_notify_success_gives_a_delivery_report_in_the_senders_inbox(psc: Env, material: Material) -> None:
    data = message(PER, APP, subject="with DSN")
    await in_thread(_send, psc, material.token(), ["RET=FULL", "ENVID=lps+2Benv-1"],
                    {APP: ["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{APP}"]}, data)
    assert await psc.delivery.wait_for(APP)
    (raw,) = await psc.delivery.wait_for(PER)
    dsn, status, returned = _report(raw)
    assert dsn["Auto-Submitted"] == "auto-replied" and str(dsn["To"]) == PER
    assert "Reporting-MTA: dns; smtp.psc.mss.sandbox.test" in status
    assert "Original-Envelope-Id: lps+env-1" in status
    assert f"Original-Recipient: rfc822; {APP}" in status and f"Final-Recipient: rfc822; {APP}" in status
    assert "Action: delivered" in status and "Status: 2.0.0" in status
    # a report without failure returns the headers only, even with RET=FULL (RFC 3461 §4.3)
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "Subject: with DSN" in returned.as_string() and "corps secret" not in returned.as_string()
    (record,) = psc.records()
    (entry,) = record.messages
    assert entry["mail_options"]["ENVID"] == "lps+env-1" and entry["mail_options"]["RET"] == "FULL"
    assert entry["rcpt_options"][APP] == {"NOTIFY": "FAILURE,SUCCESS", "ORCPT": f"rfc822;{APP}"}


async def test_unknown_and_foreign_recipients_bounce_when_configured(material: Material) -> None:
    env = await start_env(material, "psc", options=SubmissionOptions(unknown_recipients="bounce",
                                                                     foreign_recipients="bounce"))
    try:
        data = message(PER, APP, subject="to bounce")
        await in_thread(_send, env, material.token(), ["RET=FULL"], {
            APP: [], "nobody@mss.sandbox.test": ["NOTIFY=FAILURE"], "someone@other-operator.fr": [],
            LAB_APP: ["NOTIFY=NEVER"],
        }, data)
        assert await env.delivery.wait_for(APP) and await env.delivery.wait_for(LAB_APP)
        (raw,) = await env.delivery.wait_for(PER)
        dsn, status, returned = _report(raw)
        assert dsn["Subject"] == "Message non remis, retourné à l'expéditeur"  # French by default
        human = next(dsn.iter_parts()).get_content()
        assert "<nobody@mss.sandbox.test> : adresse inconnue" in human
        assert "<someone@other-operator.fr> : acheminement impossible" in human
        assert "Final-Recipient: rfc822; nobody@mss.sandbox.test" in status and "Status: 5.1.1" in status
        assert "Final-Recipient: rfc822; someone@other-operator.fr" in status and "Status: 5.4.4" in status
        assert "Action: failed" in status and "Diagnostic-Code: smtp; 550 5.1.1" in status
        assert APP not in status and LAB_APP not in status  # delivered without NOTIFY=SUCCESS; NOTIFY=NEVER
        assert returned.get_content_type() == "message/rfc822"  # RET=FULL on a failure report
        assert "corps secret" in returned.as_string()
        (entry,) = env.records()[0].messages
        assert sorted(entry["bounced"]) == ["nobody@mss.sandbox.test", "someone@other-operator.fr"]
    finally:
        await env.front.aclose()


async def test_a_front_configured_in_english_writes_english_reports(material: Material) -> None:
    env = await start_env(material, "psc", options=SubmissionOptions(unknown_recipients="bounce", report_lang="en"))
    try:
        await in_thread(_send, env, material.token(), [], {"nobody@mss.sandbox.test": []},
                        message(PER, "nobody@mss.sandbox.test", subject="to bounce"))
        (raw,) = await env.delivery.wait_for(PER)
        dsn, status, _returned = _report(raw)
        assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
        assert "<nobody@mss.sandbox.test>: unknown address" in next(dsn.iter_parts()).get_content()
        assert "Action: failed" in status and "Status: 5.1.1" in status
    finally:
        await env.front.aclose()


async def test_a_responder_answers_and_one_answering_itself_does_not_loop(material: Material) -> None:
    calls: list[tuple[str, str]] = []

    async def echo(sender: str, address: str, received: bytes) -> Sequence[OutgoingMessage]:
        calls.append((sender, address))
        reply = f"From: <{address}>\r\nTo: <{sender}>\r\nSubject: Re: ok\r\n\r\nBien recu.\r\n".encode()
        selfie = f"From: <{address}>\r\nTo: <{address}>\r\nSubject: note to self\r\n\r\nloop?\r\n".encode()
        return [OutgoingMessage(sender=address, recipients=[sender], data=reply),
                OutgoingMessage(sender=address, recipients=[address, "x@elsewhere.fr"], data=selfie)]

    env = await start_env(material, "psc", responders={APP: echo})
    try:
        token = material.token()
        await in_thread(_send, env, token, [], {APP: []}, message(PER, APP, subject="ping"))
        await env.front.wait_idle()
        assert calls == [(PER, APP)]
        (answer,) = env.delivery.box(PER)
        assert b"Subject: Re: ok" in answer and b"Auto-Submitted: auto-replied" in answer  # RFC 3834 §5
        assert answer.startswith(b"Received: from localhost by smtp.psc.mss.sandbox.test")
        assert len(env.delivery.box(APP)) == 2  # the message, and the note to self, not answered again
        # an auto-generated message is never answered (RFC 3834 §2)
        auto = message(PER, APP, subject="auto", extra="Auto-Submitted: auto-generated\r\n")
        await in_thread(_send, env, token, [], {APP: []}, auto)
        await env.front.wait_idle()
        assert len(calls) == 1
    finally:
        await env.front.aclose()


async def test_responder_rate_limit_stops_a_responder_that_insists(material: Material) -> None:
    calls = 0

    async def insistent(sender: str, address: str, received: bytes) -> Sequence[OutgoingMessage]:
        nonlocal calls
        calls += 1
        data = f"From: <{address}>\r\nTo: <{address}>\r\nAuto-Submitted: no\r\nSubject: again\r\n\r\n.\r\n".encode()
        return [OutgoingMessage(sender=address, recipients=[address], data=data)]

    env = await start_env(material, "psc", responders={APP: insistent},
                          options=SubmissionOptions(responder_limit=3, responder_window=60))
    try:
        await in_thread(_send, env, material.token(), [], {APP: []}, message(PER, APP))
        await env.front.wait_idle()
        assert calls == 3 and len(env.delivery.box(APP)) == 4
    finally:
        await env.front.aclose()


async def test_journal_keeps_headers_never_bodies_or_tokens(psc: Env, material: Material, tmp_path: Path) -> None:
    token = material.token()

    def run() -> None:
        with smtp_connect(psc) as client, pytest.raises(smtplib.SMTPAuthenticationError):
            client.auth("XOAUTH2", Challenges(PER, token))  # token on the AUTH line: too long, refused
        _send(psc, token, [], {APP: []}, message(PER, APP, subject="Compte rendu", extra="X-MSS-MES: FIN\r\n"))

    await in_thread(run)
    records = psc.records()
    (entry,) = records[1].messages
    assert entry["headers"]["X-MSS-NIL"] == ["DEV935997"] and entry["headers"]["X-MSS-MES"] == ["FIN"]
    assert entry["headers"]["Subject"] == ["Compte rendu"] and entry["size"] > 0
    assert entry["mail_from"] == PER and entry["rcpt_to"] == [APP] and entry["delivered"] == [APP]
    path = tmp_path / "journal.jsonl"
    psc.journal.export_jsonl(path)
    exported = path.read_text()
    assert "X-MSS-NIL" in exported and "DEV935997" in exported
    assert "corps secret" not in exported and token not in exported and token[:40] not in exported
    assert "<initial-response>" in exported


async def test_with_the_real_mailbox_store(material: Material) -> None:
    store = MailStore(CFG)
    await store.start()
    env = await start_env(material, "psc", delivery=store, options=SubmissionOptions(copy_to_sent=True))
    try:
        await in_thread(_send, env, material.token(), [], {APP: ["NOTIFY=SUCCESS"]}, message(PER, APP, subject="store"))
        (stored,) = await store.list_messages(APP)
        raw = await store.get_message(APP, "INBOX", stored.uid)
        assert raw.startswith(b"Received: ") and b"Subject: store" in raw
        (sent,) = await store.list_messages(PER, "Sent")
        assert sent.headers.get("Subject") == "store"
        (report,) = await store.list_messages(PER)
        assert b"Action: delivered" in await store.get_message(PER, "INBOX", report.uid)
    finally:
        await env.front.aclose()
