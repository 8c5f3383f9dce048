"""A structural PDF/A-1 check with pikepdf (qpdf): what a receiver can verify without a full validator.

Checked, each finding citing its ISO 19005-1 clause:

* §6.1.2: the ``%PDF-1.n`` header followed by a binary comment;
* §6.1.3: a trailer ``/ID`` and no ``/Encrypt`` (encryption is forbidden);
* §6.1.4 (PDF 1.4 base): no cross-reference or object streams;
* §6.7.2, §6.7.11: an unfiltered XMP metadata stream that identifies the file as PDF/A-1 (``pdfaid:part=1``,
  ``pdfaid:conformance`` A or B);
* §6.2.2: a ``GTS_PDFA1`` OutputIntent whose ``DestOutputProfile`` is an embedded ICC profile of version 2 or
  lower (PDF 1.4 knows no later ICC version);
* §6.3.4: every font used by a page (form XObjects and Type 0 descendants included) is embedded, Type 3 fonts
  aside (they are drawn by PDF operators).

This is not a full validator (colour spaces, transparency, actions and annotations are left to veraPDF or
``pikepdf.pdfa``); it is the part that tells an empty, encrypted or plain PDF from a PDF/A-1 file.
The input is untrusted: its size, the objects walked and the XMP size are bounded, and an XMP packet with a
DTD or entity declaration is refused before any XML parser sees it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mssante.errors import ConfigError
from mssante.pdf._icc import icc_major_version

__all__ = ["PdfaFinding", "check_pdfa1"]

_HEADER = re.compile(rb"%PDF-1\.([0-7])\r?\n?%[\x80-\xff]{4}")
_MAX_PDF_BYTES = 64 * 1024 * 1024
_MAX_XMP_BYTES = 1024 * 1024
_MAX_OBJECTS = 200_000
_MAX_ICC_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PdfaFinding:
    """One way a file falls short of PDF/A-1.

    Attributes:
        code: a stable identifier (``header``, ``encrypted``, ``no-id``, ``object-streams``, ``not-pdf``,
            ``too-large``, ``xmp-missing``, ``xmp-filtered``, ``xmp-unsafe``, ``xmp-invalid``, ``pdfa-id``,
            ``output-intent``, ``icc-profile``, ``font-not-embedded``).
        clause: the ISO 19005-1 clause, e.g. ``ISO 19005-1 §6.3.4``.
        message: what is wrong, in English.
        message_fr: the same, in French (for reports read by users).
    """

    code: str
    clause: str
    message: str
    message_fr: str


def _finding(code: str, clause: str, message: str, message_fr: str) -> PdfaFinding:
    return PdfaFinding(code, f"ISO 19005-1 §{clause}", message, message_fr)


def _font_findings(pdf: Any, pikepdf: Any) -> Iterator[PdfaFinding]:
    """Walk page resources (and nested form XObjects) for fonts without an embedded font program."""
    seen: set[tuple[int, int]] = set()
    reported: set[str] = set()
    budget = _MAX_OBJECTS

    def once(obj: Any) -> bool:
        nonlocal budget
        budget -= 1
        if budget < 0:
            raise OverflowError
        if obj.is_indirect:
            if obj.objgen in seen:
                return False
            seen.add(obj.objgen)
        return True

    def font_embedded(font: Any) -> bool:
        subtype = font.get("/Subtype")
        if subtype == "/Type3":
            return True
        if subtype == "/Type0":
            descendants = font.get("/DescendantFonts")
            return isinstance(descendants, pikepdf.Array) and all(
                isinstance(d, pikepdf.Dictionary) and font_embedded(d) for d in descendants
            )
        desc = font.get("/FontDescriptor")
        return isinstance(desc, pikepdf.Dictionary) and bool(
            {"/FontFile", "/FontFile2", "/FontFile3"} & set(desc.keys())
        )

    def resources(res: Any) -> Iterator[PdfaFinding]:
        if not isinstance(res, pikepdf.Dictionary) or not once(res):
            return
        fonts = res.get("/Font")
        if isinstance(fonts, pikepdf.Dictionary):
            for font in fonts.values():
                if isinstance(font, pikepdf.Dictionary) and once(font) and not font_embedded(font):
                    name = str(font.get("/BaseFont", "?"))[:80]
                    if name not in reported:
                        reported.add(name)
                        yield _finding(
                            "font-not-embedded",
                            "6.3.4",
                            f"font {name} is not embedded",
                            f"la police {name} n'est pas incorporée",
                        )
        xobjects = res.get("/XObject")
        if isinstance(xobjects, pikepdf.Dictionary):
            for xobj in xobjects.values():
                if isinstance(xobj, pikepdf.Stream) and xobj.get("/Subtype") == "/Form" and once(xobj):
                    yield from resources(xobj.get("/Resources"))

    for page in pdf.pages:
        yield from resources(page.obj.get("/Resources"))


def _xmp_findings(pdf: Any) -> Iterator[PdfaFinding]:
    stream = pdf.Root.get("/Metadata")
    if stream is None or not hasattr(stream, "read_raw_bytes"):
        yield _finding("xmp-missing", "6.7.2", "no XMP metadata stream", "pas de flux de métadonnées XMP")
        return
    if "/Filter" in stream:
        yield _finding(
            "xmp-filtered", "6.7.2", "the XMP metadata stream is filtered", "le flux XMP est compressé (filtré)"
        )
        return
    raw = stream.read_raw_bytes()
    if len(raw) > _MAX_XMP_BYTES:
        yield _finding("xmp-invalid", "6.7.2", "the XMP packet is too large", "le paquet XMP est trop volumineux")
        return
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        yield _finding(
            "xmp-unsafe", "6.7.2", "the XMP packet declares a DTD or entities", "le paquet XMP déclare une DTD"
        )
        return
    try:
        meta = pdf.open_metadata(strict=True)
        part, conformance = meta.get("pdfaid:part"), meta.get("pdfaid:conformance")
    except Exception as exc:
        yield _finding(
            "xmp-invalid",
            "6.7.2",
            f"the XMP packet cannot be read ({type(exc).__name__})",
            "le paquet XMP est illisible",
        )
        return
    if part != "1" or conformance not in ("A", "B"):
        yield _finding(
            "pdfa-id",
            "6.7.11",
            f"the XMP does not identify PDF/A-1 (pdfaid:part={part!r}, conformance={conformance!r})",
            f"le XMP n'identifie pas un PDF/A-1 (pdfaid:part={part!r}, conformance={conformance!r})",
        )


def _intent_findings(pdf: Any, pikepdf: Any) -> Iterator[PdfaFinding]:
    intents = pdf.Root.get("/OutputIntents")
    chosen = [
        i
        for i in (intents if isinstance(intents, pikepdf.Array) else [])
        if isinstance(i, pikepdf.Dictionary) and i.get("/S") == "/GTS_PDFA1"
    ]
    if not chosen:
        yield _finding(
            "output-intent", "6.2.2", "no GTS_PDFA1 OutputIntent", "pas d'OutputIntent GTS_PDFA1 (profil de sortie)"
        )
        return
    for intent in chosen:
        profile = intent.get("/DestOutputProfile")
        data = b""
        if isinstance(profile, pikepdf.Stream) and int(profile.get("/Length", 0)) <= _MAX_ICC_BYTES:
            data = profile.read_bytes()[:_MAX_ICC_BYTES]
        version = icc_major_version(data)
        if version is None or version > 2:
            yield _finding(
                "icc-profile",
                "6.2.2",
                "the GTS_PDFA1 OutputIntent has no embedded ICC profile of version 2 or lower",
                "l'OutputIntent GTS_PDFA1 n'incorpore pas de profil ICC de version 2 ou antérieure",
            )


def check_pdfa1(data: bytes) -> tuple[PdfaFinding, ...]:
    """Check the structure of a PDF/A-1 file (header, trailer, XMP identification, OutputIntent, fonts).

    An empty tuple means that no structural defect was found; it is not a full validation. The findings
    name their ISO 19005-1 clause and carry an English and a French message.

    Raises:
        ConfigError: pikepdf is not installed.
    """
    try:
        import pikepdf
    except ImportError as exc:
        raise ConfigError(f"the PDF/A check needs pikepdf (pip install 'pikepdf>=10.18,<11'): {exc}") from None
    if len(data) > _MAX_PDF_BYTES:
        return (
            _finding(
                "too-large",
                "6.1",
                f"larger than {_MAX_PDF_BYTES} bytes; not checked",
                f"fichier de plus de {_MAX_PDF_BYTES} octets ; non vérifié",
            ),
        )
    findings: list[PdfaFinding] = []
    if not _HEADER.match(data):
        findings.append(
            _finding(
                "header",
                "6.1.2",
                "the file does not start with %PDF-1.n and a binary comment",
                "le fichier ne commence pas par %PDF-1.n suivi d'un commentaire binaire",
            )
        )
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError:
        return (*findings, _finding("encrypted", "6.1.3", "the file is encrypted", "le fichier est chiffré"))
    except (pikepdf.PdfError, ValueError, OSError):
        return (*findings, _finding("not-pdf", "6.1", "not a readable PDF file", "pas un fichier PDF lisible"))
    with pdf:
        if pdf.is_encrypted or "/Encrypt" in pdf.trailer:
            findings.append(_finding("encrypted", "6.1.3", "the file is encrypted", "le fichier est chiffré"))
        ids = pdf.trailer.get("/ID")
        if not isinstance(ids, pikepdf.Array) or len(ids) != 2:
            findings.append(
                _finding("no-id", "6.1.3", "the trailer has no /ID", "le trailer n'a pas d'identifiant /ID")
            )
        if b"/ObjStm" in data or pdf.trailer.get("/Type") == "/XRef":
            findings.append(
                _finding(
                    "object-streams",
                    "6.1.4",
                    "object or cross-reference streams (PDF 1.5) are used",
                    "flux d'objets ou de références croisées (PDF 1.5) utilisés",
                )
            )
        try:
            findings.extend(_xmp_findings(pdf))
            findings.extend(_intent_findings(pdf, pikepdf))
            findings.extend(_font_findings(pdf, pikepdf))
        except OverflowError:
            findings.append(
                _finding("too-large", "6.1", "too many objects; not checked", "trop d'objets ; non vérifié")
            )
        except pikepdf.PdfError:
            findings.append(
                _finding("not-pdf", "6.1", "damaged PDF objects", "objets PDF endommagés")
            )
    return tuple(findings)
