"""The PDF companions of a document message: PDF/A-1 structure (ECO.2.1.1) and content from the CDA (ECO.2.1.5).

* ``pdf-companion``: besides the naming and presence rules (:func:`mssante.message.check_message`,
  ECO.2.1.1, ECO.2.1.6), every PDF attachment passes :func:`mssante.pdf.check_pdfa1`: PDF/A
  identification in the XMP metadata, output intent, embedded fonts, no encryption;
* ``pdf-from-cda``: the text of each PDF (extracted by poppler's ``pdftotext``) names the patient
  (birth name and first given name) and the title of a CDA document of the archive: a PDF made
  from another document or for another patient is refused (ECO.2.1.5).
"""

from __future__ import annotations

import asyncio
import shutil
import unicodedata
from typing import Final

from mssante.conformance._cases_messages import check_document_rules
from mssante.conformance._context import CaseContext
from mssante.conformance._model import Check, Evidence, Status, Verdict
from mssante.message import ParsedAttachment, parse_message
from mssante.pdf import check_pdfa1

__all__ = ["check_pdf_companion", "check_pdf_from_cda", "pdf_text"]

_PDFTOTEXT_TIMEOUT: Final = 30.0
_MAX_TEXT: Final = 2 * 1024 * 1024


def _pdfs(attachments: tuple[ParsedAttachment, ...]) -> list[ParsedAttachment]:
    return [a for a in attachments if a.content_type == "application/pdf"
            or (a.filename or "").lower().endswith(".pdf")]


def check_pdf_companion() -> Check:
    """PDF companions present, named per ECO.2.1.6, and structurally PDF/A-1 (ECO.2.1.1)."""
    rules = check_document_rules(("ECO.2.1.1", "ECO.2.1.6"), "PDF compagnon")

    async def check(ctx: CaseContext) -> Verdict:
        verdict = await rules(ctx)
        if verdict.status is not Status.PASS:
            return verdict
        got = await ctx.document_message()
        assert got is not None  # the rules above passed on it
        pdfs = _pdfs(parse_message(got[1]).attachments)
        problems = [(p.filename or "?", f) for p in pdfs for f in check_pdfa1(p.content)]
        lines = tuple(f"{name} : {f.message_fr} ({f.clause})" for name, f in problems) or tuple(
            f"{p.filename} : PDF/A-1 (identification XMP, profil de sortie, polices incorporées, non chiffré)"
            for p in pdfs)
        evidence = [*verdict.evidence, Evidence(title="Structure PDF/A-1 (ISO 19005-1)", lines=lines)]
        if problems:
            return Verdict.failed(
                f"PDF joint non conforme PDF/A-1 : {problems[0][1].message_fr} ({problems[0][1].clause}) ; les "
                "documents joints à l'archive XDM le sont aussi au format PDF/A-1 (ECO.2.1.1, MSS/va1.01).", evidence)
        return Verdict.passed(f"{len(pdfs)} PDF/A-1 joint(s), nommé(s) selon ECO.2.1.6, structure PDF/A-1 vérifiée "
                              "(ECO.2.1.1).", evidence)

    return check


async def pdf_text(data: bytes) -> str | None:
    """The text of a PDF as poppler's ``pdftotext`` extracts it; None when pdftotext is not installed.

    Raises:
        TimeoutError: pdftotext took longer than 30 s.
    """
    exe = shutil.which("pdftotext")
    if exe is None:
        return None
    proc = await asyncio.create_subprocess_exec(exe, "-enc", "UTF-8", "-", "-", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(data), _PDFTOTEXT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return out[:_MAX_TEXT].decode("utf-8", "replace")


def _fold(text: str) -> str:
    bare = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def check_pdf_from_cda() -> Check:
    """Each PDF names the archive's patient and the title of one of its CDA documents (ECO.2.1.5)."""

    async def check(ctx: CaseContext) -> Verdict:
        got = await ctx.document_message()
        if got is None:
            return Verdict.failed(f"Aucun message avec document envoyé par le LPS à {ctx.peer} dans le délai imparti.",
                                  ctx.notes())
        sub, raw = got
        parsed = parse_message(raw)
        archive = parsed.archive
        pdfs = _pdfs(parsed.attachments)
        evidence = [sub.evidence()]
        if archive is None or archive.patient is None or not archive.documents:
            return Verdict.failed("L'archive IHE_XDM.ZIP ne se lit pas ou ne désigne pas un patient : le PDF ne peut "
                                  "pas être comparé au CDA (ECO.2.1.1, ECO.2.1.5).", evidence)
        if not pdfs:
            return Verdict.failed("Aucun PDF joint : chaque document CDA de l'archive est joint au format PDF/A-1 "
                                  "généré depuis ce CDA (ECO.2.1.1, ECO.2.1.5).", evidence)
        patient = archive.patient
        names = [n for n in (patient.family_name, patient.given_name) if n]
        titles = [t for d in archive.documents for t in (d.title, d.display_name) if t]
        lines = [f"Patient du CDA : {' '.join(names)} ; titres : {' | '.join(titles)}"]
        for pdf in pdfs:
            text = await pdf_text(pdf.content)
            if text is None:
                return Verdict.errored("pdftotext (paquet poppler-utils) n'est pas installé : le texte du PDF ne peut "
                                       "pas être lu.", evidence)
            folded = _fold(text)
            lines.append(f"{pdf.filename} : « {' '.join(text.split())[:160]} »")
            missing = [n for n in names if _fold(n) not in folded]
            if missing:
                return Verdict.failed(
                    f"Le PDF {pdf.filename} ne nomme pas le patient du document CDA ({', '.join(missing)} absent du "
                    "texte) : le PDF/A-1 est généré depuis le CDA de l'archive (en-tête : patient, titre ; ECO.2.1.5).",
                    [*evidence, Evidence(title="Texte des PDF (pdftotext)", lines=tuple(lines))])
            if not any(_fold(t) in folded for t in titles):
                return Verdict.failed(
                    f"Le PDF {pdf.filename} ne porte pas le titre du document CDA ({' | '.join(titles)}) : le PDF/A-1 "
                    "est généré depuis le CDA de l'archive (ECO.2.1.5).",
                    [*evidence, Evidence(title="Texte des PDF (pdftotext)", lines=tuple(lines))])
        return Verdict.passed(f"{len(pdfs)} PDF nommant le patient et le titre du document CDA (ECO.2.1.5).",
                              [*evidence, Evidence(title="Texte des PDF (pdftotext)", lines=tuple(lines))])

    return check
