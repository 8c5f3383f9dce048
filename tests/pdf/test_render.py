"""render_cda_pdf: the ANS samples and generated documents, N1 bodies, determinism, hostile inputs."""

from __future__ import annotations

import re
from datetime import timedelta, timezone

import pytest

from mssante.cda import parse_cda_header
from mssante.errors import ContentError, LimitError, UnsafeContentError, UsageError
from mssante.pdf import PdfLimits, render_cda_pdf
from mssante.pdf._fonts import load_fonts
from tests.pdf._support import ALL_DOCS, NOW, generated, n1, narrative, pdftotext, rendered, sample

# A narrative sentence of each document, as written in its CDA (accents included).
SENTENCES = {
    "VSM_1.4_2022.01.xml": "Accident ischémique cérébral transitoire",
    "BIO-CR-BIO_2021.01_Microbiologie_V1.xml": "Résultats validés par Jean DE SANTS - 4 janvier 2021, 11h20",
    "cr-bio": "Hémoglobine [Masse/volume] Sang",
    "vsm": "Amlodipine 5 mg, 1 comprimé par jour",
}


def _cda(name: str) -> bytes:
    return generated(name) if name in ("cr-bio", "vsm") else sample(name)


@pytest.mark.parametrize("name", ALL_DOCS)
def test_transcription_carries_header_and_narrative(name: str) -> None:
    header = parse_cda_header(_cda(name))
    assert header.patient is not None and header.patient.ins is not None and header.title
    text = pdftotext(rendered(name))
    assert header.patient.birth_family and header.patient.birth_family in text
    assert header.patient.ins.matricule in text
    assert " ".join(header.title.split()) in text
    assert SENTENCES[name] in text
    assert "Nom de naissance" in text and "Date de naissance 28/03/1979" in text
    assert "Sexe Féminin" in text
    author = header.authors[0].person
    assert author is not None and author.family and author.family in text
    assert header.custodian is not None and header.custodian.name and header.custodian.name in text
    assert header.code is not None and header.code.code in text
    assert re.search(r"Page 1 / \d", text)


def test_every_section_title_and_cell_of_the_bio_sample() -> None:
    text = pdftotext(rendered("BIO-CR-BIO_2021.01_Microbiologie_V1.xml"))
    for expected in (
        "Examen cytobactériologique des urines (ECBU)",
        "Isolat : Escherichia coli",
        "Dénombrement de germes 100 000 /mL",
        "Amoxicilline >=0,512 µg/ml R",
        "Traitement immédiat",
    ):
        assert expected in text


def test_output_is_deterministic_and_depends_on_now() -> None:
    cda = generated("vsm")
    first = render_cda_pdf(cda, now=NOW)
    assert first == render_cda_pdf(cda, now=NOW)
    later = render_cda_pdf(cda, now=NOW + timedelta(days=1))
    assert later != first
    ids = [re.search(rb"/ID\s*\[<([0-9a-f]+)>", pdf) for pdf in (first, later)]
    assert ids[0] and ids[1] and ids[0].group(1) != ids[1].group(1)


def test_now_keeps_its_offset_and_must_be_aware() -> None:
    paris = timezone(timedelta(hours=2))
    pdf = render_cda_pdf(generated("vsm"), now=NOW.astimezone(paris))
    assert b"/CreationDate (D:20240603111500+02'00')" in pdf
    assert re.search(rb"<xmp:CreateDate[^>]*>2024-06-03T11:15:00\+02:00</xmp:CreateDate>", pdf)
    with pytest.raises(UsageError):
        render_cda_pdf(generated("vsm"), now=NOW.replace(tzinfo=None))


# --- level 1 ------------------------------------------------------------------------------------------------


def test_n1_embedded_pdf_is_returned_byte_for_byte() -> None:
    inner = rendered("cr-bio")
    assert render_cda_pdf(n1(inner, "application/pdf"), now=NOW) == inner
    header = parse_cda_header(n1(inner, "application/pdf"))
    assert header.non_xml_media_type == "application/pdf"


def test_n1_text_plain_is_rendered() -> None:
    body = "Compte rendu opératoire.\nSuites simples, cicatrice propre.\n\nRevoir dans 8 jours."
    for cda in (n1(body, "text/plain"), n1(body, "text/plain", b64=False)):
        text = pdftotext(render_cda_pdf(cda, now=NOW))
        assert "Suites simples, cicatrice propre." in text and "Revoir dans 8 jours." in text
        assert "PAT-TROIS" in text and "niveau 1" in text


@pytest.mark.parametrize(
    ("cda", "message"),
    [
        (n1(b"GIF89a not a pdf", "application/pdf"), "%PDF-"),
        (n1(b"\xff\xd8\xff\xe0 jpeg", "image/jpeg"), "image/jpeg"),
        (n1(b"{\\rtf1 hello}", "text/rtf"), "text/rtf"),
        (n1("!!not base64!!", "application/pdf", b64=False, extra=' representation="B64"'), "base64"),
        (n1(b"%PDF-1.4", "application/pdf", extra=' compression="DF"'), "compressed"),
        (n1('<reference value="file:///etc/passwd"/>', "application/pdf", b64=False), "external"),
    ],
    ids=["not-pdf", "jpeg", "rtf", "bad-base64", "compressed", "reference"],
)
def test_n1_refusals_are_content_errors(cda: bytes, message: str) -> None:
    with pytest.raises(ContentError, match=re.escape(message)):
        render_cda_pdf(cda, now=NOW)


# --- hostile and broken inputs ------------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>"""

LAUGHS = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><l>&b;</l>'


@pytest.mark.parametrize("doc", [XXE, LAUGHS], ids=["xxe", "entity-expansion"])
def test_dtd_and_entities_are_refused(doc: bytes) -> None:
    with pytest.raises(UnsafeContentError):
        render_cda_pdf(doc, now=NOW)


def test_huge_narrative_is_a_limit_error() -> None:
    cda = narrative("<paragraph>" + "Lorem ipsum dolor sit amet. " * 20_000 + "</paragraph>")
    with pytest.raises(LimitError, match="narrative longer than"):
        render_cda_pdf(cda, now=NOW)


def test_page_block_and_size_limits() -> None:
    with pytest.raises(LimitError, match="more than 1 pages"):
        render_cda_pdf(sample("VSM_1.4_2022.01.xml"), now=NOW, limits=PdfLimits(max_pages=1))
    with pytest.raises(LimitError, match="blocks"):
        render_cda_pdf(generated("vsm"), now=NOW, limits=PdfLimits(max_blocks=3))
    from mssante.cda import XMLLimits

    with pytest.raises(LimitError):
        render_cda_pdf(generated("vsm"), now=NOW, limits=PdfLimits(xml=XMLLimits(max_bytes=1000)))


@pytest.mark.parametrize(
    "doc",
    [
        b"<html/>",
        b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>x</title>",
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>sans corps</title></ClinicalDocument>',
        b"\xff\xfe garbage",
    ],
    ids=["not-cda", "not-well-formed", "no-body", "garbage"],
)
def test_broken_documents_are_content_errors(doc: bytes) -> None:
    with pytest.raises(ContentError):
        render_cda_pdf(doc, now=NOW)


def test_narrative_markup_is_text_never_markup() -> None:
    cda = narrative(
        '<paragraph>&lt;img src="/etc/passwd"/&gt; &lt;a href="http://x"&gt;lien&lt;/a&gt; &amp;amp; '
        "<linkHtml href='http://127.0.0.1:1/x'>site du labo</linkHtml></paragraph>"
    )
    text = pdftotext(render_cda_pdf(cda, now=NOW))
    assert '<img src="/etc/passwd"/> <a href="http://x">lien</a> &amp; site du labo' in text


def test_characters_outside_the_font_and_controls_do_not_break_rendering() -> None:
    cda = narrative("<paragraph>β-lactamase ≥ 2 → résistant 😀 fin\x7f\u200b.</paragraph>")
    text = pdftotext(render_cda_pdf(cda, now=NOW))
    assert "lactamase ≥ 2" in text and "résistant ? fin" in text  # astral emoji → ?, DEL dropped
    if "DejaVu" in load_fonts().source:  # Vera (the last-resort font) has no Greek letters nor arrows
        assert "β-lactamase ≥ 2 → résistant" in text
