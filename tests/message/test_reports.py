"""MDN (RFC 8098) generation and parsing; DSN (RFC 3464) parsing of MTA-written reports."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from mssante.errors import ContentError, UsageError
from mssante.message import (
    DSNReport,
    MDNReport,
    compose_message,
    generate_mdn,
    parse_message,
)

from .conftest import NOW, PATIENT_ADDRESS, PRO_ADDRESS, SENDER, SETTINGS, FakeXDM, xdm_draft

DATA = Path(__file__).parent / "data"


def _received(fake_xdm: FakeXDM, **changes: object) -> bytes:
    draft = xdm_draft(request_mdn=True, references=(), in_reply_to="<root.0@x.mssante.fr>", **changes)
    return compose_message(draft, settings=SETTINGS, now=NOW).to_bytes()


@pytest.mark.parametrize("include", ["full", "headers", "none"])
def test_mdn_round_trip(fake_xdm: FakeXDM, include: str) -> None:
    original = parse_message(_received(fake_xdm))
    mdn = generate_mdn(original, reporter=PATIENT_ADDRESS, settings=SETTINGS, include_original=include, now=NOW)  # type: ignore[arg-type]
    assert mdn.envelope_from == ""  # RFC 8098 §3: null reverse path
    assert mdn.recipients == (SENDER.address,)
    raw = mdn.to_bytes()
    assert raw.isascii()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "disposition-notification"
    assert msg["In-Reply-To"] == original.message_id
    assert str(msg["References"]).split() == ["<root.0@x.mssante.fr>", original.message_id]
    assert msg["X-MSS-NIL"] == "DEV935997" and msg["X-MSS-CODECDA"] is None and msg["X-MSS-INS"] is None
    assert msg["Disposition-Notification-To"] is None

    back = parse_message(raw)
    report = back.report
    assert isinstance(report, MDNReport)
    assert report.original_message_id == original.message_id
    assert report.final_recipient == PATIENT_ADDRESS
    assert report.disposition is not None
    assert (report.disposition.action_mode, report.disposition.sending_mode) == ("manual-action", "MDN-sent-manually")
    assert report.disposition.type == "displayed" and report.disposition.modifiers == ()
    assert report.reporting_ua is not None and "mssante" in report.reporting_ua
    assert report.human_text is not None and "affiché" in report.human_text
    assert back.attachments == ()  # the returned original's attachments are not ours
    parts = list(msg.iter_parts())
    assert len(parts) == {"full": 3, "headers": 3, "none": 2}[include]
    if include == "full":
        assert parts[2].get_content_type() == "message/rfc822"
        assert b"IHE_XDM.ZIP" in raw


def test_automatic_processed_mdn_with_error(fake_xdm: FakeXDM) -> None:
    raw = _received(fake_xdm)
    original = parse_message(b"Original-Recipient: rfc822;" + PATIENT_ADDRESS.encode() + b"\r\n" + raw)
    mdn = generate_mdn(
        original,
        reporter=PATIENT_ADDRESS,
        settings=SETTINGS,
        disposition="processed",
        action_mode="automatic-action",
        sending_mode="MDN-sent-automatically",
        error="INT-DOC^Document non integre",
        reporting_ua="pfi.hopital-test.mssante.fr; PFI 2.1",
        now=NOW,
    )
    report = parse_message(mdn.to_bytes()).report
    assert isinstance(report, MDNReport)
    assert report.disposition is not None
    assert str(report.disposition) == "automatic-action/MDN-sent-automatically; processed/error"
    assert report.error == "INT-DOC^Document non integre"
    assert report.original_recipient == PATIENT_ADDRESS
    assert report.reporting_ua == "pfi.hopital-test.mssante.fr; PFI 2.1"


def test_mdn_refusals(fake_xdm: FakeXDM) -> None:
    not_asked = parse_message(compose_message(xdm_draft(), settings=SETTINGS, now=NOW).to_bytes())
    with pytest.raises(UsageError) as caught:
        generate_mdn(not_asked, reporter=PATIENT_ADDRESS, settings=SETTINGS)
    assert caught.value.requirement == "RFC 8098 §2.1"
    report = parse_message((DATA / "dovecot-rejected-mdn.eml").read_bytes())
    with pytest.raises(UsageError):
        generate_mdn(report, reporter=PATIENT_ADDRESS, settings=SETTINGS)  # never answer a report
    asked = parse_message(_received(fake_xdm))
    with pytest.raises(ContentError):
        generate_mdn(asked, reporter=PATIENT_ADDRESS, settings=SETTINGS, error="x\r\nBcc: a@b.fr")
    with pytest.raises(UsageError):
        generate_mdn(asked, reporter="nobody", settings=SETTINGS)
    with pytest.raises(UsageError):
        generate_mdn(asked, reporter=PATIENT_ADDRESS, settings=SETTINGS, disposition="read")  # type: ignore[arg-type]


def test_postfix_bounce_is_a_typed_dsn() -> None:
    parsed = parse_message((DATA / "postfix-bounce.eml").read_bytes())
    report = parsed.report
    assert isinstance(report, DSNReport)
    assert report.reporting_mta == "mx.hopital-test.mssante.fr"
    assert report.original_envelope_id == "20240502093000.abc+def@hopital-test.mssante.fr"  # xtext decoded
    assert report.arrival_date == "Thu,  2 May 2024 09:30:59 +0200 (CEST)"
    assert report.original_message_id == "<20240502093000.abc+def@hopital-test.mssante.fr>"
    assert report.human_text is not None and "User unknown" in report.human_text
    failed, delayed = report.recipients
    assert failed.final_recipient == "inconnu@cabinet-test.mssante.fr"
    assert (failed.action, failed.status, failed.failed) == ("failed", "5.1.1", True)
    assert failed.remote_mta == "mx.cabinet-test.mssante.fr"
    assert failed.diagnostic_code is not None
    assert failed.diagnostic_code.endswith("Recipient address rejected: User unknown")
    assert (delayed.action, delayed.status, delayed.failed) == ("delayed", "4.4.1", False)
    assert delayed.will_retry_until == "Thu,  9 May 2024 09:30:59 +0200 (CEST)"
    assert delayed.original_recipient == "marie.curie@cabinet-test.mssante.fr"
    assert parsed.sender_kind == "professional" and parsed.attachments == ()


def test_delivery_receipt_dsn() -> None:
    report = parse_message((DATA / "delivered-dsn.eml").read_bytes()).report
    assert isinstance(report, DSNReport)
    (recipient,) = report.recipients
    assert (recipient.final_recipient, recipient.action, recipient.status) == (PATIENT_ADDRESS, "relayed", "2.0.0")
    assert not recipient.failed
    assert report.original_message_id == "<20240502093000.abc+def@hopital-test.mssante.fr>"


def test_dovecot_rejection_mdn() -> None:
    parsed = parse_message((DATA / "dovecot-rejected-mdn.eml").read_bytes())
    report = parsed.report
    assert isinstance(report, MDNReport)
    assert report.disposition is not None and report.disposition.type == "deleted"
    assert report.disposition.action_mode == "automatic-action"
    assert report.final_recipient == PRO_ADDRESS
    assert report.original_message_id == "<20240502093000.abc+def@hopital-test.mssante.fr>"
    assert report.human_text is not None and "Mailbox is full" in report.human_text


def test_global_delivery_status_is_read() -> None:
    raw = (DATA / "delivered-dsn.eml").read_bytes()
    raw = raw.replace(b"message/delivery-status", b"message/global-delivery-status")
    report = parse_message(raw).report
    assert isinstance(report, DSNReport)
    assert report.reporting_mta == "mx.hopital-test.mssante.fr"
    assert [r.status for r in report.recipients] == ["2.0.0"]
