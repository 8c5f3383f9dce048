"""Entry point: a CDA R2 document (N1 or N3) to its PDF/A-1b companion (ECO.2.1.1, ECO.2.1.5)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from mssante._version import __version__
from mssante.cda import CDAHeader, parse_xml
from mssante.cda._header import header_from_element
from mssante.errors import ConfigError, ContentError, LimitError, UsageError
from mssante.pdf._check import check_pdfa1
from mssante.pdf._fonts import load_fonts
from mssante.pdf._front import document_title, format_ts, front_rows, patient_line
from mssante.pdf._layout import build_pdf
from mssante.pdf._narrative import Block, Heading, Inline, Para, PdfLimits, body_blocks
from mssante.pdf._pdfa import PdfMeta, finish_pdfa

__all__ = ["render_cda_pdf"]

_N = "{urn:hl7-org:v3}"
_TEXT_TYPES = ("text/plain",)


def _meta(header: CDAHeader, cda: bytes, moment: datetime) -> PdfMeta:
    authors = []
    for a in header.authors:
        person = a.person
        name = " ".join(p for p in (person.given, person.family) if p) if person else ""
        authors.append(name or a.device or (a.organization.name if a.organization else "") or "")
    code = header.code
    kind = (code.display_name or code.code) if code is not None else "Document CDA"
    digest = hashlib.sha256(cda + b"\0" + moment.isoformat().encode()).digest()[:16]
    return PdfMeta(
        title=document_title(header),
        author="; ".join(a for a in authors if a) or "Auteur non renseigné",
        subject=f"{kind} - transcription PDF/A du document CDA R2",
        keywords=f"CDA R2; {code.code if code is not None else 'sans code'}; MSSanté",
        creator=f"mssante {__version__}",
        producer=f"mssante {__version__} with ReportLab",
        moment=moment.replace(microsecond=0),
        digest=digest,
    )


def _non_xml(text_el: ET.Element) -> tuple[str, bytes]:
    """Return the media type and the decoded bytes of ``nonXMLBody/text``."""
    media = (text_el.get("mediaType") or "text/plain").strip().lower()
    if (text_el.get("compression") or "").strip():
        raise ContentError(f"N1 CDA body: compressed content ({text_el.get('compression')!r}) is not supported")
    raw = text_el.text or ""
    if text_el.find(_N + "reference") is not None and not raw.strip():
        raise ContentError("N1 CDA body references an external file; it is never fetched (no external resource)")
    if (text_el.get("representation") or "TXT").strip().upper() == "B64":
        try:
            return media, base64.b64decode("".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ContentError("N1 CDA body: invalid base64 content") from None
    return media, raw.encode("utf-8")


def _text_blocks(data: bytes, limits: PdfLimits) -> list[Block]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    if len(text) > limits.max_narrative_chars:
        raise LimitError(f"N1 text longer than {limits.max_narrative_chars} characters; not rendered to PDF")
    blocks: list[Block] = [Heading("Contenu du document", 1)]
    for chunk in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        lines = [line.rstrip() for line in chunk.split("\n")]
        inlines: list[Inline] = []
        for n, line in enumerate(lines):
            if n:
                inlines.append(Inline("", "br"))
            inlines.append(Inline(line))
        if any(i.text.strip() for i in inlines):
            blocks.append(Para(tuple(inlines)))
    if len(blocks) > limits.max_blocks:
        raise LimitError(f"N1 text has more than {limits.max_blocks} paragraphs; not rendered to PDF")
    return blocks


def render_cda_pdf(
    cda: bytes,
    *,
    now: datetime | None = None,
    limits: PdfLimits | None = None,
    font_dir: str | None = None,
) -> bytes:
    """Render a CDA R2 document into the PDF/A-1b companion that ECO.2.1.1 requires next to the XDM archive.

    * Level 3 (``structuredBody``): an A4 document in French with the header data (title, type, dates,
      patient with INS, authors and organisations, custodian) and every section's title and narrative
      (paragraphs, lists, tables, line breaks), with ``Page n / N`` footers. The output is PDF/A-1b:
      embedded TrueType fonts, XMP metadata, sRGB OutputIntent, PDF 1.4, no encryption.
    * Level 1 (``nonXMLBody``): an embedded ``application/pdf`` is returned **unchanged** (ECO.2.1.5 wants
      the very same PDF; it is not converted, so it is PDF/A only if the producer made it so); ``text/plain``
      is rendered like a level-3 document; other media types are refused.

    The output is a pure function of ``cda``, ``now`` and the font found (fixed IDs and dates).

    Args:
        cda: the CDA document bytes (untrusted: parsed without DTD or entities, bounded).
        now: the creation date written in the PDF (timezone-aware); defaults to the current UTC time.
        limits: narrative, block, page and XML bounds (:class:`PdfLimits`).
        font_dir: a folder holding ``DejaVuSans.ttf`` and ``DejaVuSans-Bold.ttf`` (see :mod:`mssante.pdf`).

    Returns:
        The PDF bytes.

    Raises:
        UsageError: ``now`` is naive.
        LimitError: the document exceeds ``limits`` (XML size or depth, narrative length, blocks, pages).
        UnsafeContentError: the XML has a DOCTYPE or entity declarations (XXE, entity expansion).
        ContentError: not a well-formed CDA R2 ``ClinicalDocument``; no body; an N1 body that is not a PDF
            (``%PDF-``), has an unsupported media type, bad base64, compressed or external content.
        ConfigError: no usable font, or a ReportLab version that cannot produce PDF/A-1b.
    """
    lim = limits or PdfLimits()
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError("render_cda_pdf: 'now' must be a timezone-aware datetime")
    root = parse_xml(cda, limits=lim.xml, what="CDA document")
    header = header_from_element(root)
    body = root.find(f"{_N}component/{_N}structuredBody")
    if body is not None:
        blocks = body_blocks(body, lim)
        level = "niveau 3"
    else:
        text_el = root.find(f"{_N}component/{_N}nonXMLBody/{_N}text")
        if text_el is None:
            raise ContentError("CDA document has neither structuredBody nor nonXMLBody/text")
        media, data = _non_xml(text_el)
        if media == "application/pdf":
            if not data.startswith(b"%PDF-"):
                raise ContentError("N1 CDA body says application/pdf but does not start with %PDF-")
            return data
        if media not in _TEXT_TYPES:
            raise ContentError(
                f"N1 CDA body of media type {media[:60]!r} cannot be rendered to PDF/A: only application/pdf "
                "(copied unchanged, ECO.2.1.5) and text/plain are supported"
            )
        blocks = _text_blocks(data, lim)
        level = "niveau 1, texte"
    fonts = load_fonts(font_dir)
    meta = _meta(header, bytes(cda), moment)
    title = document_title(header)
    pdf = build_pdf(
        fonts=fonts,
        meta=meta,
        limits=lim,
        title=title,
        front=front_rows(header),
        blocks=blocks,
        footer=patient_line(header),
        closing=(
            f"Transcription du document CDA R2 ({level}) produite le {format_ts(f'{moment:%Y%m%d%H%M%z}')} "
            "par mssante ; le document CDA joint dans l'archive IHE_XDM.ZIP fait foi."
        ),
    )
    pdf = finish_pdfa(pdf, meta)
    findings = check_pdfa1(pdf)
    if findings:  # a ReportLab or pikepdf release that behaves differently must fail loudly
        raise ConfigError("the generated PDF is not PDF/A-1b: " + "; ".join(f.message for f in findings))
    return pdf
