"""ECO.2.1.3 / 2.1.6 / 2.2.7 names, and parsing details (sender kind, X-MSS syntax, limits)."""

from __future__ import annotations

from datetime import date

import pytest

from mssante.errors import ContentError, LimitError, UsageError
from mssante.message import (
    ReadSettings,
    organisation_label,
    parse_message,
    parse_xdm_subject,
    pdf_filename,
    professional_label,
    xdm_subject,
)
from mssante.message._naming import pdf_filename_problems


def test_pdf_filename_normalisation() -> None:
    name = pdf_filename(
        act_date=date(2022, 5, 31),
        document_type="CR d'imagerie médicale",
        family_name="Corse",
        given_name="Figatellix",
    )
    assert name == "20220531_CR_d_imagerie_medicale_CORSE_Figatellix.pdf"  # shape of the ANS IG example
    long = pdf_filename(
        act_date=date(2024, 1, 2),
        document_type="Compte rendu d'examen de biologie médicale très détaillé et long",
        family_name="De La Fontaine-Œuvray",
        given_name="Jean Noël",
        record_number="PRESC/2024-0042",
    )
    # the type is cut at 40 characters ("...biologie médica") before normalisation
    assert long == (
        "20240102_Compte_rendu_d_examen_de_biologie_medica_DE_LA_FONTAINE_OEUVRAY_Jean_Noel_PRESC_2024_0042.pdf"
    )
    with pytest.raises(UsageError):
        pdf_filename(act_date=date(2024, 1, 2), document_type="---", family_name="X", given_name="Y")
    with pytest.raises(ContentError):
        pdf_filename(act_date=date(2024, 1, 2), document_type="CR", family_name="X\r\n", given_name="Y")


def test_pdf_filename_problems() -> None:
    good = "20240430_CR_bio_PAT_TROIS_Helene.pdf"
    assert pdf_filename_problems(good, family_name="Pat-Trois", given_name="Hélène") == ()
    assert pdf_filename_problems(good[:-4] + "_12345.pdf", family_name="Pat-Trois", given_name="Hélène") == ()
    assert pdf_filename_problems(good, act_dates=(date(2024, 4, 30),)) == ()
    assert pdf_filename_problems(good, act_dates=(date(2024, 5, 1),))
    assert pdf_filename_problems("20241340_CR_X_Y.pdf")  # month 13
    assert pdf_filename_problems("CR_PAT_TROIS_Helene.pdf")
    assert pdf_filename_problems("20240430 CR PAT TROIS.pdf")
    assert pdf_filename_problems("20240430_PAT_TROIS_Helene.pdf", family_name="Pat-Trois", given_name="Hélène")


def test_subjects() -> None:
    assert xdm_subject(label="X" * 50, family_name="é", given_name="è") == "XDM/1.0/DDM+" + "X" * 40 + " E e"
    assert xdm_subject(label=None, document_count=3, family_name="Dupont", given_name="Zoé") == (
        "XDM/1.0/DDM+3 documents DUPONT Zoe"
    )
    with pytest.raises(UsageError):
        xdm_subject(label=None, family_name="Dupont", given_name="Zoé")
    with pytest.raises(UsageError):
        xdm_subject(label="CR", family_name=" ", given_name="Zoé")
    parts = parse_xdm_subject("XDM/1.0/DDM+ECHOGRAPHIE CORSE FIGATELLIX 12/10/1988")
    assert parts is not None and parts.rest == "ECHOGRAPHIE CORSE FIGATELLIX" and parts.birth_date == date(1988, 10, 12)
    parts = parse_xdm_subject("XDM/1.0/DDM+CR CORSE FIGATELLIX 31/02/1988")
    assert parts is not None and parts.birth_date is None
    assert parse_xdm_subject("Re: XDM/1.0/DDM+CR") is None


def test_sender_labels() -> None:
    assert professional_label(given_name="Jean", family_name="Dupont") == "Jean_DUPONT"
    assert professional_label(title="Pr", given_name="Anne", family_name="Martin", unit="Cardiologie") == (
        "Pr_Anne_MARTIN_Cardiologie"
    )
    assert organisation_label(" Hopital C – Biologie ") == "Hopital C – Biologie"
    with pytest.raises(ContentError):
        organisation_label("Hopital\nBcc: x@y.fr")
    with pytest.raises(UsageError):
        professional_label(given_name="", family_name="Dupont")


def _msg(headers: str, body: str = "x") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body + "\r\n").encode()


@pytest.mark.parametrize(
    ("sender", "kind"),
    [
        ("279035121518989@patient.mssante.fr", "patient"),
        ("dr@chu-test.mssante.fr", "professional"),
        ("dr@mssante.fr", "professional"),
        ("someone@example.org", "external"),
        ("someone@notmssante.fr", "external"),
        ("undisclosed-recipients:;", "unknown"),
    ],
)
def test_sender_kind(sender: str, kind: str) -> None:
    assert parse_message(_msg(f"From: {sender}\nSubject: s")).sender_kind == kind


def test_patient_domain_is_configurable() -> None:
    raw = _msg("From: 279035121518989@patient.test-mssante.fr")
    assert parse_message(raw).sender_kind == "external"
    settings = ReadSettings(patient_domain="patient.test-mssante.fr")
    assert parse_message(raw, settings=settings).sender_kind == "patient"


def test_codecda_syntax_tolerance() -> None:
    raw = _msg("From: a@b.mssante.fr\nX-MSS-CODECDA: 11502-2 ; 60591-5\nX-MSS-CODECDA: 34112-3")
    assert parse_message(raw).mss.codecda == ("11502-2", "60591-5", "34112-3")
    assert parse_message(_msg("From: a@b.mssante.fr")).mss.codecda is None


def test_limits() -> None:
    with pytest.raises(LimitError):
        parse_message(b"x" * 100, settings=ReadSettings(max_size=99))
    parts = "".join(f"--b\r\nContent-Type: application/octet-stream\r\n\r\n{i}\r\n" for i in range(20)) + "--b--"
    raw = _msg("From: a@b.mssante.fr\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b", parts)
    assert len(parse_message(raw).attachments) == 20
    with pytest.raises(LimitError):
        parse_message(raw, settings=ReadSettings(max_parts=10))
    with pytest.raises(UsageError):
        parse_message("text")  # type: ignore[arg-type]
