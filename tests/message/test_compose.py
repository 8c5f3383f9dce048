"""Composing messages: Ref #2 headers, subject, attachments, threading, requests, injection."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import date

import pytest

from mssante.errors import ConfigError, ContentError, UsageError
from mssante.message import (
    Attachment,
    ComposeSettings,
    Draft,
    DSNRequest,
    PdfCompanion,
    Sender,
    compose_message,
    parse_message,
)

from .conftest import (
    ARCHIVE_NO_CDA,
    ARCHIVE_TWO,
    NOW,
    PATIENT_ADDRESS,
    PDF,
    PDF_NAME,
    PRO_ADDRESS,
    SENDER,
    SETTINGS,
    FakeXDM,
    xdm_draft,
)


def test_round_trip_keeps_every_header(fake_xdm: FakeXDM) -> None:
    draft = xdm_draft(
        cc=(PRO_ADDRESS,),
        html="<p>Bonjour, voici le compte rendu.</p>",
        end_of_exchange=True,
        request_mdn=True,
        in_reply_to="<parent.1@cabinet-test.mssante.fr>",
        references=("<root.0@cabinet-test.mssante.fr>",),
        reply_to="secretariat@hopital-test.mssante.fr",
        dsn=DSNRequest(),
    )
    composed = compose_message(draft, settings=SETTINGS, now=NOW)
    raw = composed.to_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # SMTP policy: CRLF only

    parsed = parse_message(raw)
    assert parsed.message_id == composed.message_id
    assert parsed.date == NOW
    assert parsed.sender == SENDER.address
    assert parsed.sender_label == "Dr_Jean_DUPONT_Biologie"  # ECO.2.2.7
    assert parsed.sender_kind == "professional"
    assert parsed.to == (PATIENT_ADDRESS,)
    assert parsed.cc == (PRO_ADDRESS,)
    assert parsed.reply_to == ("secretariat@hopital-test.mssante.fr",)
    assert parsed.in_reply_to == "<parent.1@cabinet-test.mssante.fr>"
    assert parsed.references == ("<root.0@cabinet-test.mssante.fr>", "<parent.1@cabinet-test.mssante.fr>")
    assert parsed.mss.nil == "DEV935997"
    assert parsed.mss.codecda == ("11502-2",)
    assert parsed.mss.ins == "O"
    assert parsed.end_of_exchange
    assert parsed.mdn_requested and parsed.mdn_to == (SENDER.address,)
    assert parsed.subject == "XDM/1.0/DDM+CR d'examens biologiques médicaux PAT-TROIS Helene 28/03/1979"
    assert parsed.text is not None and "compte rendu de vos analyses" in parsed.text
    assert parsed.html is not None and "<p>" in parsed.html
    assert [a.kind for a in parsed.attachments] == ["xdm", "pdf"]
    assert parsed.attachments[0].filename == "IHE_XDM.ZIP"
    assert parsed.attachments[1].filename == PDF_NAME and parsed.attachments[1].content == PDF
    assert parsed.archive is not None and parsed.archive.cda_codes == ("11502-2",)
    assert parsed.report is None
    assert composed.recipients == (PATIENT_ADDRESS, PRO_ADDRESS)


def test_stdlib_parser_and_smtp_policy_read_it_back(fake_xdm: FakeXDM) -> None:
    composed = compose_message(xdm_draft(html="<b>é</b>"), settings=SETTINGS, now=NOW)
    raw = composed.to_bytes()
    assert raw.isascii()  # 7-bit clean: RFC 2047 subject, QP/base64 bodies
    again = email.message_from_bytes(raw, policy=email.policy.default)
    assert again["X-MSS-NIL"] == "DEV935997"
    assert again.get_content_type() == "multipart/mixed"
    body = again.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content_charset() == "utf-8"  # ECO.2.2.3
    assert again.get_payload()[0].get_content_type() == "multipart/alternative"  # ECO.2.2.4
    # Serialising the re-read message with the SMTP policy gives the same bytes.
    assert again.as_bytes(policy=email.policy.SMTP) == raw
    # compat32 (the legacy API) reads it too.
    legacy = email.message_from_bytes(raw)
    assert legacy["Message-ID"] == composed.message_id


def test_subject_is_rfc2047_encoded_with_accents(fake_xdm: FakeXDM) -> None:
    draft = Draft(sender=SENDER, to=(PRO_ADDRESS,), subject="Résultats d'Hélène Œuvray", text="Voir ci-joint.")
    raw = compose_message(draft, settings=SETTINGS, now=NOW).to_bytes()
    header = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in header and "é".encode() not in header
    assert parse_message(raw).subject == "Résultats d'Hélène Œuvray"


def test_filenames_use_rfc2231(fake_xdm: FakeXDM) -> None:
    name = "Ordonnance de Mme Hélène Pat-Trois — renouvellement trimestriel (avril 2024).txt"
    draft = xdm_draft(attachments=(Attachment(content=b"x", filename=name, content_type="text/plain"),))
    raw = compose_message(draft, settings=SETTINGS, now=NOW).to_bytes()
    assert b"filename*0*=utf-8''Ordonnance" in raw  # RFC 2231 §3-4: charset and continuations
    assert "é".encode() not in raw
    parsed = parse_message(raw)
    assert parsed.attachments[-1].filename == name
    assert email.message_from_bytes(raw, policy=email.policy.default).get_payload()[-1].get_filename() == name


def test_plain_text_only_message(fake_xdm: FakeXDM) -> None:
    draft = Draft(sender=Sender(address=SENDER.address), to=(PRO_ADDRESS,), subject="Hello", text="ascii body")
    composed = compose_message(draft, settings=SETTINGS, now=NOW)
    msg = composed.message
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert msg["X-MSS-NIL"] == "DEV935997"
    for name in ("X-MSS-CODECDA", "X-MSS-INS", "X-MSS-MES", "Disposition-Notification-To", "In-Reply-To"):
        assert msg[name] is None
    assert composed.dsn is None and fake_xdm.calls == []


def test_codecda_is_multivalued_with_configured_separator(fake_xdm: FakeXDM) -> None:
    draft = xdm_draft(xdm_archive=ARCHIVE_TWO, pdfs=())
    msg = compose_message(draft, settings=SETTINGS, now=NOW).message
    assert msg["X-MSS-CODECDA"] == "11502-2,60591-5"
    assert msg["X-MSS-INS"] == "N"  # the fake archive has no qualified INS
    assert str(msg["Subject"]).startswith("XDM/1.0/DDM+2 documents PAT-TROIS Helene")
    semi = ComposeSettings(product_reference="DEV935997", codecda_separator=";")
    msg = compose_message(draft, settings=semi, now=NOW).message
    assert msg["X-MSS-CODECDA"] == "11502-2;60591-5"
    raw = msg.as_bytes(policy=email.policy.SMTP)
    assert parse_message(raw).mss.codecda == ("11502-2", "60591-5")


def test_archive_without_cda_gets_no_codecda_nor_ins(fake_xdm: FakeXDM) -> None:
    draft = xdm_draft(xdm_archive=ARCHIVE_NO_CDA, subject="XDM/1.0/DDM+Document PAT-TROIS Helene", pdfs=())
    msg = compose_message(draft, settings=SETTINGS, now=NOW).message
    assert msg["X-MSS-CODECDA"] is None and msg["X-MSS-INS"] is None  # ECO.2.4.1/2.4.2
    with pytest.raises(UsageError) as caught:
        compose_message(replace(draft, expected_ins="N"), settings=SETTINGS, now=NOW)
    assert caught.value.requirement == "ECO.2.4.1"


def test_caller_assertions_must_agree_with_archive(fake_xdm: FakeXDM) -> None:
    ok = compose_message(xdm_draft(expected_codecda=("11502-2",), expected_ins="O"), settings=SETTINGS, now=NOW)
    assert ok.message["X-MSS-CODECDA"] == "11502-2"
    with pytest.raises(UsageError) as caught:
        compose_message(xdm_draft(expected_codecda=("34112-3",)), settings=SETTINGS, now=NOW)
    assert caught.value.requirement == "ECO.2.4.1"
    with pytest.raises(UsageError) as caught:
        compose_message(xdm_draft(expected_ins="N"), settings=SETTINGS, now=NOW)
    assert caught.value.requirement == "ECO.2.4.2"
    plain = Draft(sender=SENDER, to=(PRO_ADDRESS,), subject="s", text="t", expected_codecda=("11502-2",))
    with pytest.raises(UsageError):
        compose_message(plain, settings=SETTINGS, now=NOW)


def test_xdm_subject_and_pdf_name_are_enforced(fake_xdm: FakeXDM) -> None:
    with pytest.raises(UsageError) as caught:
        compose_message(xdm_draft(subject="Résultats"), settings=SETTINGS, now=NOW)
    assert caught.value.requirement == "ECO.2.1.3"
    bad_pdf = (PdfCompanion(content=PDF, filename="resultats.pdf"),)
    with pytest.raises(UsageError) as caught:
        compose_message(xdm_draft(pdfs=bad_pdf), settings=SETTINGS, now=NOW)
    assert caught.value.requirement == "ECO.2.1.6"
    wrong_patient = (PdfCompanion(content=PDF, filename="20240430_CR_bio_MARTIN_Paul.pdf"),)
    with pytest.raises(UsageError):
        compose_message(xdm_draft(pdfs=wrong_patient), settings=SETTINGS, now=NOW)
    with pytest.raises(ContentError):
        compose_message(xdm_draft(pdfs=(PdfCompanion(content=b"GIF89a", filename=PDF_NAME),)), settings=SETTINGS)
    with pytest.raises(ContentError):
        compose_message(xdm_draft(xdm_archive=b"not a zip"), settings=SETTINGS, now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Bonjour\r\nBcc: victim@example.org"},
        {"subject": "Bonjour\nX-MSS-INS: O"},
        {"subject": "tab\there"},
        {"subject": "nul\x00"},
        {"subject": "line\u2028separator"},
        {"sender": Sender(address=SENDER.address, label="Dr\r\nBcc: x@example.org")},
        {"to": ("a@b.mssante.fr\r\nBcc: x@example.org",)},
        {"in_reply_to": "<a@b>\r\nBcc: x@example.org"},
        {"attachments": (Attachment(content=b"x", filename="a\r\n.txt"),)},
    ],
)
def test_header_injection_is_refused(fake_xdm: FakeXDM, changes: dict[str, object]) -> None:
    values: dict[str, object] = {"sender": SENDER, "to": (PRO_ADDRESS,), "subject": "Bonjour", "text": "x"}
    values.update(changes)
    with pytest.raises(ContentError) as caught:
        compose_message(Draft(**values), settings=SETTINGS, now=NOW)  # type: ignore[arg-type]
    assert "control character" in caught.value.message
    assert caught.value.requirement == "RFC 5322 §2.2"


def test_xdm_subject_injection_through_archive_values_is_refused(fake_xdm: FakeXDM) -> None:
    with pytest.raises(ContentError):
        compose_message(xdm_draft(subject="XDM/1.0/DDM+x\r\nBcc: a@b.fr"), settings=SETTINGS, now=NOW)


@pytest.mark.parametrize("reference", ["", "DEV 935997", "DEV935997\r\n", "é", "x" * 65])
def test_product_reference_is_validated(reference: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ComposeSettings(product_reference=reference)
    assert caught.value.requirement == "ECO.2.4.3"


def test_separator_is_validated() -> None:
    with pytest.raises(ConfigError):
        ComposeSettings(product_reference="DEV1", codecda_separator="\n")


@pytest.mark.parametrize(
    "changes",
    [
        {"to": ()},
        {"to": ("not-an-address",)},
        {"subject": None},
        {"references": ("<a@b>",)},
        {"message_id": "no-brackets@x"},
        {"mdn_to": "a@b.fr"},
        {"pdfs": (PdfCompanion(content=PDF, filename=PDF_NAME),)},
    ],
)
def test_malformed_drafts_are_usage_errors(fake_xdm: FakeXDM, changes: dict[str, object]) -> None:
    values: dict[str, object] = {"sender": SENDER, "to": (PRO_ADDRESS,), "subject": "s", "text": "x"}
    values.update(changes)
    with pytest.raises(UsageError):
        compose_message(Draft(**values), settings=SETTINGS, now=NOW)  # type: ignore[arg-type]


def test_dsn_request_is_returned_as_envelope_parameters(fake_xdm: FakeXDM) -> None:
    draft = Draft(
        sender=SENDER,
        to=(PRO_ADDRESS,),
        bcc=("archive+copy@hopital-test.mssante.fr",),
        subject="s",
        text="x",
        message_id="<id=1@hopital-test.mssante.fr>",
        dsn=DSNRequest(notify=("failure", "delay"), ret="HDRS"),
    )
    composed = compose_message(draft, settings=SETTINGS, now=NOW)
    assert composed.dsn is not None
    assert composed.dsn.mail_options == ("RET=HDRS", "ENVID=id+3D1@hopital-test.mssante.fr")  # RFC 3461 §4 xtext
    assert composed.dsn.for_recipient(PRO_ADDRESS) == ("NOTIFY=FAILURE,DELAY", f"ORCPT=rfc822;{PRO_ADDRESS}")
    assert composed.dsn.for_recipient("archive+copy@hopital-test.mssante.fr")[1] == (
        "ORCPT=rfc822;archive+2Bcopy@hopital-test.mssante.fr"
    )
    assert "archive+copy" not in composed.to_bytes().decode()  # Bcc stays in the envelope
    assert composed.recipients[-1] == "archive+copy@hopital-test.mssante.fr"
    never = DSNRequest(notify=("NEVER",), ret=None, orcpt=False, envid="E1")
    composed = compose_message(replace(draft, dsn=never), settings=SETTINGS, now=NOW)
    assert composed.dsn is not None
    assert composed.dsn.mail_options == ("ENVID=E1",)
    assert composed.dsn.for_recipient(PRO_ADDRESS) == ("NOTIFY=NEVER",)


@pytest.mark.parametrize("notify", [(), ("NEVER", "SUCCESS"), ("SOMETIMES",), ("SUCCESS", "SUCCESS")])
def test_bad_dsn_requests(notify: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        DSNRequest(notify=notify)


def test_message_id_and_date(fake_xdm: FakeXDM) -> None:
    first = compose_message(xdm_draft(), settings=SETTINGS, now=NOW)
    second = compose_message(xdm_draft(), settings=SETTINGS, now=NOW)
    assert first.message_id != second.message_id
    assert first.message_id.endswith("@hopital-test.mssante.fr>")
    assert first.message["Date"] == "Thu, 02 May 2024 09:30:00 +0000"
    fixed = compose_message(xdm_draft(message_id="<fixed.1@hopital-test.mssante.fr>"), settings=SETTINGS, now=NOW)
    assert fixed.message["Message-ID"] == "<fixed.1@hopital-test.mssante.fr>"


def test_birth_date_is_optional_in_subject(fake_xdm: FakeXDM) -> None:
    from mssante.message import xdm_subject

    assert xdm_subject(label="VSM", family_name="Corse", given_name="Figatellix") == "XDM/1.0/DDM+VSM CORSE Figatellix"
    subject = xdm_subject(
        label="ECHOGRAPHIE ABDOMINOPELVIENNE",
        family_name="CORSE",
        given_name="FIGATELLIX",
        birth_date=date(1988, 10, 12),
    )
    assert subject == "XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988"  # the ANS IG example
