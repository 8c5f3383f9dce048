"""The one place where :mod:`mssante.message` talks to :mod:`mssante.xdm`.

The rest of the package only sees the small frozen values below (:class:`ArchiveInfo`,
:class:`DocumentInfo`, :class:`PatientInfo`), so it can be tested with a stand-in for
:func:`inspect_archive` and does not depend on the shape of the XDM object model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from mssante import xdm
from mssante.cda import Patient
from mssante.xdm import XDMDocument

__all__ = ["ArchiveFinding", "ArchiveInfo", "DocumentInfo", "PatientInfo", "inspect_archive"]


@dataclass(frozen=True, kw_only=True)
class PatientInfo:
    """The patient of an XDM archive (from METADATA.XML / the CDA header, ECO.2.1.2).

    Attributes:
        family_name: birth name (nom de naissance), as written in the archive.
        given_name: first given name.
        birth_date: date of birth, when known.
        ins: the INS matricule (``patientId``), when known.
    """

    family_name: str | None = None
    given_name: str | None = None
    birth_date: date | None = None
    ins: str | None = None


@dataclass(frozen=True, kw_only=True)
class DocumentInfo:
    """One document of an XDM archive.

    Attributes:
        path: the file name inside the archive.
        cda_code: ``ClinicalDocument/code/@code``, the X-MSS-CODECDA value (ECO.2.4.1); ``None``
            for a document that is not a CDA.
        display_name: ``ClinicalDocument/code/@displayName`` (ECO.2.1.3 subject label, ECO.2.1.6 type).
        act_date: date of the act (``serviceEvent/effectiveTime/low``), the ECO.2.1.6 file-name date.
        title: the document title.
    """

    path: str | None = None
    cda_code: str | None = None
    display_name: str | None = None
    act_date: date | None = None
    title: str | None = None


@dataclass(frozen=True, kw_only=True)
class ArchiveFinding:
    """One finding of the XDM validator, carried over into ``mssante check``."""

    severity: Literal["error", "warning", "info"]
    rule: str
    message: str


@dataclass(frozen=True, kw_only=True)
class ArchiveInfo:
    """What a message needs to know about its IHE_XDM.ZIP attachment.

    Attributes:
        documents: the documents, archive order.
        has_qualified_ins: a qualified INS is present (X-MSS-INS ``O``, ECO.2.4.2).
        patient: the single patient of the archive, or ``None`` (none, or several: ECO.2.1.1).
        findings: what the XDM validator found (IHE ITI-32, CI-SIS, ECO.2.1.x rules).
    """

    documents: tuple[DocumentInfo, ...] = ()
    has_qualified_ins: bool = False
    patient: PatientInfo | None = None
    findings: tuple[ArchiveFinding, ...] = ()

    @property
    def cda_documents(self) -> tuple[DocumentInfo, ...]:
        """The documents that are CDA (they have a ``code``)."""
        return tuple(d for d in self.documents if d.cda_code)

    @property
    def cda_codes(self) -> tuple[str, ...]:
        """Distinct CDA codes, order of first appearance: the X-MSS-CODECDA values (ECO.2.4.1)."""
        return tuple(dict.fromkeys(d.cda_code for d in self.documents if d.cda_code))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _date(value: str | None) -> date | None:
    """The calendar date of an HL7 TS (``YYYYMMDD...``) as written (local date of the producer)."""
    if value is None or len(value) < 8 or not value[:8].isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def _patient(raw: Patient | None) -> PatientInfo | None:
    """:class:`mssante.cda.Patient` -> :class:`PatientInfo` (birth name, first birth first name, INS)."""
    if raw is None:
        return None
    return PatientInfo(
        family_name=_str(raw.birth_family) or _str(raw.used_family),
        given_name=_str(raw.first_given) or _str(raw.used_given),
        birth_date=_date(raw.birth_time),
        ins=raw.ins.matricule if raw.ins is not None else None,
    )


def _document(raw: XDMDocument) -> DocumentInfo:
    """:class:`mssante.xdm.XDMDocument` -> :class:`DocumentInfo`."""
    cda = raw.cda
    if cda is None:
        return DocumentInfo(path=raw.path, title=raw.entry.title if raw.entry else None)
    code = cda.code
    return DocumentInfo(
        path=raw.path,
        cda_code=_str(code.code) if code else None,
        display_name=_str(code.display_name) if code else None,
        # ECO.2.1.6: the act date is serviceEvent/effectiveTime/low, else the document date.
        act_date=_date(cda.service_start) or _date(cda.effective_time),
        title=_str(cda.title),
    )


def inspect_archive(data: bytes) -> ArchiveInfo:
    """Read an IHE_XDM.ZIP archive with :func:`mssante.xdm.read_archive`, validate it and summarise it.

    Raises:
        ContentError: the bytes are not a readable ZIP archive.
        UnsafeContentError: the archive was refused as dangerous (traversal, bomb, DTD...).
        LimitError: a size or count limit of the XDM reader was reached.
    """
    archive = xdm.read_archive(data)
    return ArchiveInfo(
        documents=tuple(_document(d) for d in archive.documents),
        has_qualified_ins=archive.has_qualified_ins,
        patient=_patient(archive.patient),
        findings=tuple(
            ArchiveFinding(severity=f.severity, rule=f.rule, message=f"{f.where}: {f.message}")
            for f in xdm.check_archive(archive)
        ),
    )
