"""PDF/A-1b (ISO 19005-1 level B) parts that ReportLab does not write by itself.

* the XMP metadata stream (uncompressed, ``pdfaid:part=1``, ``pdfaid:conformance=B``) whose Dublin Core,
  XMP basic and Adobe PDF properties repeat the Info dictionary exactly (§6.7.3);
* the ``GTS_PDFA1`` OutputIntent with the embedded ICC v2 sRGB profile of :mod:`mssante.pdf._icc` (§6.2.2);
* the Info dates, written from the caller's ``now`` (kept with its UTC offset) rather than the clock;
* the trailer ``/ID``, derived from the input digest (ReportLab's invariant mode plus our digest).

:func:`check_pdfa_bytes` re-reads the produced file for the markers the rest of the module relies on, so
that a ReportLab version that changed its internals fails loudly instead of producing a non-PDF/A file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from mssante.errors import ConfigError
from mssante.pdf._icc import SRGB_DESCRIPTION, srgb_icc_profile
from mssante.pdf._rl import rl

__all__ = ["PdfMeta", "apply_pdfa", "check_pdfa_bytes", "xmp_packet"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class PdfMeta:
    """The document information repeated in the Info dictionary and in the XMP packet.

    Attributes:
        title, author, subject, keywords, creator, producer: Info dictionary strings.
        moment: creation (and modification) time; must be timezone-aware.
        digest: bytes mixed into the trailer ``/ID`` and the XMP ``DocumentID`` (a hash of the inputs).
    """

    title: str
    author: str
    subject: str
    keywords: str
    creator: str
    producer: str
    moment: datetime
    digest: bytes

    def clean(self, value: str) -> str:
        """Return ``value`` without control characters, on one line, at most 1000 characters.

        Raises:
            MssanteError: none on purpose.
        """
        return " ".join(_CONTROL.sub("", value).split())[:1000]

    @property
    def pdf_date(self) -> str:
        """``D:YYYYMMDDHHmmSS+HH'mm'`` (PDF 1.4 §3.8.3) in the offset of :attr:`moment`."""
        offset = self.moment.utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        sign = "+" if minutes >= 0 else "-"
        return f"D:{self.moment:%Y%m%d%H%M%S}{sign}{abs(minutes) // 60:02d}'{abs(minutes) % 60:02d}'"

    @property
    def xmp_date(self) -> str:
        """ISO 8601 with offset, the same instant as :attr:`pdf_date`."""
        return self.moment.replace(microsecond=0).isoformat()

    @property
    def uuid(self) -> str:
        """A UUID-shaped identifier derived from :attr:`digest` (XMP ``xmpMM:DocumentID``)."""
        h = self.digest.ljust(16, b"\0")[:16].hex()
        return f"uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def xmp_packet(meta: PdfMeta) -> bytes:
    """Build the XMP packet (UTF-8, no ``bytes``/``encoding`` attributes, read-only ``end="w"`` trailer).

    Only properties of the schemas predefined for PDF/A-1 are used (XMP 2004: Dublin Core, XMP basic,
    XMP media management, Adobe PDF, PDF/A identification), so no extension schema is needed.

    Raises:
        MssanteError: none on purpose.
    """

    def esc(value: str) -> str:
        return escape(meta.clean(value))

    xml = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
<pdfaid:part>1</pdfaid:part>
<pdfaid:conformance>B</pdfaid:conformance>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:format>application/pdf</dc:format>
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{esc(meta.title)}</rdf:li></rdf:Alt></dc:title>
<dc:creator><rdf:Seq><rdf:li>{esc(meta.author)}</rdf:li></rdf:Seq></dc:creator>
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{esc(meta.subject)}</rdf:li></rdf:Alt></dc:description>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
<xmp:CreateDate>{meta.xmp_date}</xmp:CreateDate>
<xmp:ModifyDate>{meta.xmp_date}</xmp:ModifyDate>
<xmp:MetadataDate>{meta.xmp_date}</xmp:MetadataDate>
<xmp:CreatorTool>{esc(meta.creator)}</xmp:CreatorTool>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
<pdf:Producer>{esc(meta.producer)}</pdf:Producer>
<pdf:Keywords>{esc(meta.keywords)}</pdf:Keywords>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/">
<xmpMM:DocumentID>{meta.uuid}</xmpMM:DocumentID>
</rdf:Description>
</rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
    return xml.encode("utf-8")


def doc_template_info(meta: PdfMeta) -> dict[str, str]:
    """The Info strings as ReportLab ``DocTemplate`` keyword arguments (cleaned like the XMP values).

    Raises:
        MssanteError: none on purpose.
    """
    return {
        "title": meta.clean(meta.title),
        "author": meta.clean(meta.author),
        "subject": meta.clean(meta.subject),
        "keywords": meta.clean(meta.keywords),
        "creator": meta.clean(meta.creator),
        "producer": meta.clean(meta.producer),
    }


def apply_pdfa(canvas: Any, meta: PdfMeta) -> None:
    """Add the XMP stream, the OutputIntent, the dates and the ID seed to a fresh ReportLab canvas.

    Raises:
        ConfigError: the installed ReportLab lacks the internals relied upon.
    """
    try:
        pdfdoc = rl("reportlab.pdfbase.pdfdoc")
        PDFDictionary, PDFName, PDFString, PDFStream = (
            pdfdoc.PDFDictionary,
            pdfdoc.PDFName,
            pdfdoc.PDFString,
            pdfdoc.PDFStream,
        )
        doc = canvas._doc
        canvas.setDateFormatter(lambda *_parts: meta.pdf_date)
        doc.updateSignature(meta.digest)
        xmp = PDFStream(
            PDFDictionary({"Type": PDFName("Metadata"), "Subtype": PDFName("XML")}), xmp_packet(meta), filters=None
        )
        icc = PDFStream(PDFDictionary({"N": 3}), srgb_icc_profile(), filters=[pdfdoc.PDFZCompress])
        intent = PDFDictionary(
            {
                "Type": PDFName("OutputIntent"),
                "S": PDFName("GTS_PDFA1"),
                "OutputConditionIdentifier": PDFString(SRGB_DESCRIPTION),
                "RegistryName": PDFString("http://www.color.org"),
                "Info": PDFString(SRGB_DESCRIPTION),
                "DestOutputProfile": doc.Reference(icc),
            }
        )
        catalog = doc.Catalog
        catalog.Metadata = doc.Reference(xmp)
        catalog.OutputIntents = pdfdoc.PDFArray([doc.Reference(intent)])
        keys = list(catalog.__NoDefault__)
        if "OutputIntents" not in keys:  # ReportLab only writes the catalog keys it lists
            catalog.__NoDefault__ = [*keys, "OutputIntents"]
    except (AttributeError, TypeError) as exc:
        raise ConfigError(f"the installed reportlab cannot produce PDF/A-1b ({exc}); use reportlab>=4.4,<6") from None


def check_pdfa_bytes(data: bytes) -> None:
    """Check the PDF/A-1b markers of a produced file (header, XMP, OutputIntent, ID, no encryption).

    Raises:
        ConfigError: a marker is missing: the installed ReportLab behaves differently from the tested ones.
    """
    problems = []
    if not re.match(rb"%PDF-1\.[0-4]\r?\n%[\x80-\xff]{4}", data):
        problems.append("header is not %PDF-1.4 (or lower) with a binary comment")
    if b"/GTS_PDFA1" not in data or b"/OutputIntents" not in data:
        problems.append("no GTS_PDFA1 OutputIntent")
    if b"<pdfaid:part>1</pdfaid:part>" not in data or b"/Metadata" not in data:
        problems.append("no PDF/A XMP metadata")
    trailer = data[data.rfind(b"trailer") :]
    if b"/ID" not in trailer or b"/Encrypt" in trailer:
        problems.append("trailer without /ID or with /Encrypt")
    if b"/Helvetica" in data or b"/Times-Roman" in data:
        problems.append("a non-embedded standard font is referenced")
    if problems:
        raise ConfigError("the generated PDF is not PDF/A-1b: " + "; ".join(problems) + " (use reportlab>=4.4,<6)")
