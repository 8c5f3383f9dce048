"""PDF/A-1b companions of CDA documents (ECO.2.1.1, ECO.2.1.5).

Every MSSanté message carrying CDA documents in an ``IHE_XDM.ZIP`` must also carry the same documents as
PDF/A-1. :func:`render_cda_pdf` produces that PDF from the CDA bytes:

* CDA level 3: header data (title, type, date, patient and INS, authors, organisation, custodian) and a
  faithful transcription of every section's narrative, in French, on A4 pages;
* CDA level 1 with an embedded PDF: the embedded PDF, byte for byte (ECO.2.1.5).

Name the file with :func:`mssante.message.pdf_filename` and attach it as a
:class:`mssante.message.PdfCompanion`.

The layout is ReportLab's; pikepdf writes the PDF/A parts (XMP identification, sRGB OutputIntent) and a clean
PDF 1.4 file. :func:`check_pdfa1` checks the structure of any PDF/A-1 candidate (a received companion, say)
and returns :class:`PdfaFinding` items.

Fonts: DejaVu Sans (Debian ``fonts-dejavu-core``) is looked for in ``font_dir``, then in the folder named by
the ``MSSANTE_PDF_FONT_DIR`` environment variable, then in the usual system folders; ReportLab's bundled
Bitstream Vera is the last resort. The fonts are subset and embedded in every PDF.
"""

from mssante.pdf._check import PdfaFinding, check_pdfa1
from mssante.pdf._fonts import FONT_DIR_ENV
from mssante.pdf._narrative import PdfLimits
from mssante.pdf._render import render_cda_pdf

__all__ = ["FONT_DIR_ENV", "PdfLimits", "PdfaFinding", "check_pdfa1", "render_cda_pdf"]
