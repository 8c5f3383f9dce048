"""End to end with the real XDM package: generated and ANS sample CDA -> IHE_XDM.ZIP -> message -> parse -> check."""

from __future__ import annotations

import email.policy
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.cda import SamplePatient, generate_cr_bio, generate_vsm
from mssante.errors import ContentError, LimitError, MssanteError, UsageError
from mssante.message import (
    Draft,
    MDNReport,
    PdfCompanion,
    check_message,
    compose_message,
    generate_mdn,
    parse_message,
    pdf_filename,
)
from mssante.message._xdm_bridge import inspect_archive
from mssante.xdm import build_archive, read_archive, xmss_headers
from tests._hypothesis import examples
from tests.xdm._util import SAMPLES, SAMPLES_ABSENT

from .conftest import NOW, PATIENT_ADDRESS, PDF, PRO_ADDRESS, SENDER, SETTINGS

CDA_TIME = datetime(2024, 4, 30, 8, 15, tzinfo=UTC)
CR_BIO = generate_cr_bio(effective_time=CDA_TIME)
VSM = generate_vsm(effective_time=CDA_TIME)
ONE = build_archive([CR_BIO], now=NOW)
TWO = build_archive([CR_BIO, VSM], now=NOW)


def _draft(archive: bytes, **changes: object) -> Draft:
    info = inspect_archive(archive)
    assert info.patient is not None and info.patient.family_name and info.patient.given_name
    pdfs = tuple(
        PdfCompanion(
            content=PDF,
            filename=pdf_filename(
                act_date=doc.act_date or date(2000, 1, 1),
                document_type=doc.display_name or "document",
                family_name=info.patient.family_name,
                given_name=info.patient.given_name,
            ),
        )
        for doc in info.cda_documents
    )
    values: dict[str, object] = {
        "sender": SENDER,
        "to": (PATIENT_ADDRESS,),
        "text": "Bonjour, voici vos résultats.",
        "xdm_archive": archive,
        "pdfs": pdfs,
        "request_mdn": True,
    }
    values.update(changes)
    return Draft(**values)  # type: ignore[arg-type]


def test_real_archive_round_trip_and_check() -> None:
    composed = compose_message(_draft(ONE), settings=SETTINGS, now=NOW)
    msg = composed.message
    expected = xmss_headers(read_archive(ONE))  # the XDM package's own view of ECO.2.4.1/2.4.2
    assert {"X-MSS-CODECDA": msg["X-MSS-CODECDA"], "X-MSS-INS": msg["X-MSS-INS"]} == expected
    assert expected == {"X-MSS-CODECDA": "11502-2", "X-MSS-INS": "O"}
    assert msg["Subject"] == "XDM/1.0/DDM+CR d'examens biologiques PAT-TROIS DOMINIQUE 28/03/1979"
    raw = composed.to_bytes()

    parsed = parse_message(raw)
    assert parsed.archive is not None and parsed.archive_error is None
    assert parsed.archive.patient is not None and parsed.archive.patient.ins == "279035121518989"
    assert parsed.mss.codecda == ("11502-2",) and parsed.mss.ins == "O"
    assert [a.filename for a in parsed.attachments] == [
        "IHE_XDM.ZIP",
        "20240430_CR_d_examens_biologiques_PAT_TROIS_DOMINIQUE.pdf",
    ]
    assert read_archive(parsed.xdm_attachments[0].content).cda_codes == ("11502-2",)

    report = check_message(raw)
    assert report.ok, report.errors
    assert all(f.severity == "info" for f in report.findings)  # only the validator's test-OID notes


def test_two_documents() -> None:
    composed = compose_message(_draft(TWO), settings=SETTINGS, now=NOW)
    assert composed.message["X-MSS-CODECDA"] == "11502-2,60591-5"
    assert str(composed.message["Subject"]).startswith("XDM/1.0/DDM+2 documents PAT-TROIS DOMINIQUE")
    assert check_message(composed.to_bytes()).ok


@pytest.mark.skipif(not (SAMPLES / "BIO-CR-BIO_2021.01_Microbiologie_V1.xml").exists(), reason=SAMPLES_ABSENT)
def test_ans_sample_document() -> None:
    archive = build_archive([(SAMPLES / "BIO-CR-BIO_2021.01_Microbiologie_V1.xml").read_bytes()], now=NOW)
    composed = compose_message(_draft(archive), settings=SETTINGS, now=NOW)
    raw = composed.to_bytes()
    parsed = parse_message(raw)
    assert parsed.mss.codecda == ("11502-2",)
    assert parsed.pdf_attachments[0].filename == "20210104_CR_d_examens_biologiques_PAT_TROIS_DOMINIQUE.pdf"
    assert check_message(raw).ok


def test_check_against_real_archive_catches_inconsistency() -> None:
    msg = compose_message(_draft(TWO), settings=SETTINGS, now=NOW).message
    msg.replace_header("X-MSS-CODECDA", "11502-2")  # one code forgotten
    msg.replace_header("X-MSS-INS", "N")
    report = check_message(msg.as_bytes(policy=email.policy.SMTP))
    assert {"ECO.2.4.1", "ECO.2.4.2"} <= report.rules("error")
    with pytest.raises(UsageError):
        compose_message(_draft(TWO, expected_codecda=("11502-2",)), settings=SETTINGS, now=NOW)


def test_two_patients_archive() -> None:
    other = generate_vsm(effective_time=CDA_TIME, patient=SamplePatient(ins="180126956612345", birth_family="MARTIN"))
    mixed = build_archive([CR_BIO, other], now=NOW, strict=False)
    with pytest.raises(UsageError) as caught:  # no single patient: the subject cannot be built
        compose_message(_draft(ONE, xdm_archive=mixed, pdfs=()), settings=SETTINGS, now=NOW)
    assert caught.value.requirement == "ECO.2.1.3"
    draft = _draft(ONE, xdm_archive=mixed, pdfs=(), subject="XDM/1.0/DDM+2 documents PAT-TROIS DOMINIQUE")
    report = check_message(compose_message(draft, settings=SETTINGS, now=NOW).to_bytes())
    assert any(f.rule == "ECO.2.1.1" and "single patient" in f.message for f in report.errors)


def test_not_an_archive_is_refused_when_composing() -> None:
    with pytest.raises(ContentError):
        compose_message(_draft(ONE, xdm_archive=b"PK\x03\x04 not really"), settings=SETTINGS, now=NOW)


def test_mdn_for_real_message_keeps_original() -> None:
    parsed = parse_message(compose_message(_draft(ONE), settings=SETTINGS, now=NOW).to_bytes())
    mdn = generate_mdn(parsed, reporter=PATIENT_ADDRESS, settings=SETTINGS, include_original="full", now=NOW)
    back = parse_message(mdn.to_bytes())
    assert isinstance(back.report, MDNReport) and back.report.original_message_id == parsed.message_id
    assert check_message(mdn.to_bytes()).ok


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_archive_only_gives_typed_outcomes(data: st.DataObject) -> None:
    archive = bytearray(ONE)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(archive) - 1))
        archive[pos] = data.draw(st.integers(0, 255))
    draft = replace(_draft(ONE), xdm_archive=bytes(archive), to=(PRO_ADDRESS,))
    try:
        raw = compose_message(draft, settings=SETTINGS, now=NOW).to_bytes()
    except MssanteError:
        # Still a received message can carry that archive: parse and check must cope.
        base = compose_message(_draft(ONE), settings=SETTINGS, now=NOW).message
        for part in base.iter_attachments():
            if part.get_filename() == "IHE_XDM.ZIP":
                part.set_content(bytes(archive), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
        raw = base.as_bytes(policy=email.policy.SMTP)
    try:
        check_message(raw)
        parse_message(raw)
    except LimitError:
        pass
