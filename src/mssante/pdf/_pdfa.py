"""PDF/A-1b (ISO 19005-1 level B): pikepdf turns ReportLab's layout into a clean PDF/A file.

ReportLab only lays the pages out. pikepdf (qpdf) then writes, from :class:`PdfMeta`:

* the Info dictionary, with the dates taken from the caller's ``now`` (kept with its UTC offset);
* the XMP metadata through :meth:`pikepdf.Pdf.open_metadata`: copied from the Info dictionary with pikepdf's
  standard mapping (so both agree, §6.7.3), plus the PDF/A identification ``pdfaid:part=1``,
  ``pdfaid:conformance=B`` (§6.7.11) and a ``DocumentID`` derived from the input digest;
* the ``GTS_PDFA1`` OutputIntent with the ICC v2 sRGB profile of :mod:`mssante.pdf._icc` (§6.2.2);
* a clean PDF 1.4 file: no object streams (PDF 1.5), an EOL before every ``endstream`` (§6.1.7), a trailer
  ``/ID`` computed from the content (``deterministic_id``), only the reachable objects, and none of the
  empty page transitions (``/Trans``) ReportLab writes.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime

from mssante.errors import ConfigError
from mssante.pdf._icc import SRGB_DESCRIPTION, srgb_icc_profile

__all__ = ["PdfMeta", "doc_template_info", "finish_pdfa"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class PdfMeta:
    """The document information written in the Info dictionary and in the XMP packet.

    Attributes:
        title, author, subject, keywords, creator, producer: Info dictionary strings.
        moment: creation (and modification) time; must be timezone-aware.
        digest: bytes mixed into the XMP ``DocumentID`` (a hash of the inputs).
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
    def uuid(self) -> str:
        """A UUID-shaped identifier derived from :attr:`digest` (XMP ``xmpMM:DocumentID``)."""
        h = self.digest.ljust(16, b"\0")[:16].hex()
        return f"uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def doc_template_info(meta: PdfMeta) -> dict[str, str]:
    """The Info strings as ReportLab ``DocTemplate`` keyword arguments (cleaned like the final values).

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


def finish_pdfa(layout: bytes, meta: PdfMeta) -> bytes:
    """Rewrite ReportLab's ``layout`` as a PDF/A-1b file: Info, XMP, OutputIntent, clean PDF 1.4 layout.

    Raises:
        ConfigError: pikepdf is missing or cannot read what ReportLab wrote.
    """
    try:
        import pikepdf
    except ImportError as exc:
        raise ConfigError(f"PDF/A needs pikepdf (pip install 'pikepdf>=10.18,<11'): {exc}") from None
    icc_profile = srgb_icc_profile()
    try:
        with pikepdf.open(io.BytesIO(layout)) as pdf:
            info = {f"/{key.title()}": value for key, value in doc_template_info(meta).items()}
            info["/CreationDate"] = info["/ModDate"] = meta.pdf_date
            del pdf.trailer.ID  # ReportLab's invariant ID; qpdf derives a new one from the final content
            pdf.trailer.Info = pdf.make_indirect(pikepdf.Dictionary({k: pikepdf.String(v) for k, v in info.items()}))
            with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as xmp:
                xmp.load_from_docinfo(pdf.docinfo, delete_missing=True, raise_failure=True)
                xmp["xmp:MetadataDate"] = xmp["xmp:ModifyDate"]
                xmp["dc:format"] = "application/pdf"
                xmp["xmpMM:DocumentID"] = meta.uuid
                xmp["pdfaid:part"] = "1"
                xmp["pdfaid:conformance"] = "B"
            profile = pdf.make_stream(icc_profile)
            profile.N = 3
            intent = pikepdf.Dictionary(
                Type=pikepdf.Name.OutputIntent,
                S=pikepdf.Name.GTS_PDFA1,
                OutputConditionIdentifier=pikepdf.String(SRGB_DESCRIPTION),
                RegistryName=pikepdf.String("http://www.color.org"),
                Info=pikepdf.String(SRGB_DESCRIPTION),
                DestOutputProfile=profile,
            )
            pdf.Root.OutputIntents = pikepdf.Array([pdf.make_indirect(intent)])
            for page in pdf.pages:  # ReportLab's empty presentation transition: no meaning in a document
                if "/Trans" in page.obj and not page.obj.Trans.keys():
                    del page.obj.Trans
            out = io.BytesIO()
            pdf.save(
                out,
                force_version="1.4",
                object_stream_mode=pikepdf.ObjectStreamMode.disable,
                compress_streams=True,
                deterministic_id=True,
                fix_metadata_version=False,
            )
    except (pikepdf.PdfError, ValueError) as exc:
        raise ConfigError(
            f"pikepdf cannot turn ReportLab's output into PDF/A-1b ({exc}); use reportlab>=4.4,<6"
        ) from None
    return out.getvalue()
