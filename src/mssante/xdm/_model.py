"""Typed model of an IHE XDM archive (ITI-32) and its ebRIM metadata, plus validation findings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mssante.cda import CDAHeader, Code, Patient

__all__ = [
    "Association",
    "DocumentEntry",
    "Finding",
    "Severity",
    "SubmissionSet",
    "ValidationReport",
    "XDMArchive",
    "XDMDocument",
    "XDMMetadata",
    "XDMSubset",
    "XDSAuthor",
]

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One validation result.

    Attributes:
        severity: ``error`` (the archive breaks a rule), ``warning`` (questionable) or ``info``.
        rule: the rule reference: ``IHE ITI-32 ITI32-005``, ``IHE ITI TF-3 §4.3.1``, ``ECO.2.1.1``,
            ``CI-SIS …`` or one of our own ``XDM-…`` ids.
        message: a one-line human explanation.
        where: the archive entry path (or ``archive``), with an optional ``#fragment`` naming the object.
    """

    severity: Severity
    rule: str
    message: str
    where: str = "archive"


@dataclass(frozen=True, slots=True)
class XDSAuthor:
    """An XDS author classification: XCN person, XON institutions, roles, specialties (HL7 v2 strings)."""

    person: str | None = None
    institutions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()
    telecoms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """An XDS DocumentEntry (``rim:ExtrinsicObject``). Every attribute may be missing in a read archive.

    Times are XDS DTM strings in UTC; ``hash`` is hex SHA-1; ``size`` is the decimal string as written.
    """

    entry_uuid: str
    unique_id: str | None = None
    patient_id: str | None = None
    source_patient_id: str | None = None
    source_patient_info: tuple[str, ...] = ()
    uri: str | None = None
    hash: str | None = None
    size: str | None = None
    mime_type: str | None = None
    object_type: str | None = None
    creation_time: str | None = None
    service_start_time: str | None = None
    service_stop_time: str | None = None
    language_code: str | None = None
    title: str | None = None
    legal_authenticator: str | None = None
    class_code: Code | None = None
    type_code: Code | None = None
    format_code: Code | None = None
    confidentiality_codes: tuple[Code, ...] = ()
    healthcare_facility_type_code: Code | None = None
    practice_setting_code: Code | None = None
    event_codes: tuple[Code, ...] = ()
    authors: tuple[XDSAuthor, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmissionSet:
    """An XDS SubmissionSet (``rim:RegistryPackage`` classified as a submission set)."""

    entry_uuid: str
    unique_id: str | None = None
    source_id: str | None = None
    patient_id: str | None = None
    submission_time: str | None = None
    title: str | None = None
    content_type_code: Code | None = None
    authors: tuple[XDSAuthor, ...] = ()
    intended_recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Association:
    """A ``rim:Association`` (``HasMember`` from the submission set to each document)."""

    id: str | None
    association_type: str | None
    source: str | None
    target: str | None
    submission_set_status: str | None = None


@dataclass(frozen=True, slots=True)
class XDMMetadata:
    """The content of one ``METADATA.XML`` (``lcm:SubmitObjectsRequest``)."""

    submission_sets: tuple[SubmissionSet, ...] = ()
    document_entries: tuple[DocumentEntry, ...] = ()
    associations: tuple[Association, ...] = ()
    root_tag: str | None = None


@dataclass(frozen=True, slots=True)
class XDMDocument:
    """A document file of the archive, its DocumentEntry and its parsed CDA header.

    Attributes:
        path: the archive entry path (``IHE_XDM/SUBSET01/DOC0001.XML``), or the unresolved target path.
        subset: the subset directory (``IHE_XDM/SUBSET01``).
        entry: the DocumentEntry describing it, or None when the file is not referenced by any metadata.
        data: the file bytes, or None when the entry's URI does not resolve to a file of the archive.
        sha1: hex SHA-1 of ``data``.
        cda: the parsed CDA header, or None (not XML, not a CDA, or missing).
        cda_error: why ``cda`` is None when parsing was attempted.
    """

    path: str
    subset: str
    entry: DocumentEntry | None
    data: bytes | None
    sha1: str | None = None
    cda: CDAHeader | None = None
    cda_error: str | None = None

    @property
    def size(self) -> int | None:
        """The byte length of the file, or None when missing."""
        return None if self.data is None else len(self.data)


@dataclass(frozen=True, slots=True)
class XDMSubset:
    """One ``IHE_XDM/<SUBSET>`` directory and its metadata."""

    path: str
    metadata_path: str | None
    metadata: XDMMetadata | None
    metadata_error: str | None = None


@dataclass(frozen=True, slots=True)
class XDMArchive:
    """A read IHE XDM archive.

    Attributes:
        names: every file entry name, in archive order.
        subsets: the ``IHE_XDM/*`` submission-set directories.
        documents: every document (described by a DocumentEntry, or an unreferenced XML file of a subset
            whose metadata is unreadable).
        has_readme, has_index: presence of ``README.TXT`` / ``INDEX.HTM`` at the root (case-insensitive).
    """

    names: tuple[str, ...]
    subsets: tuple[XDMSubset, ...]
    documents: tuple[XDMDocument, ...]
    has_readme: bool = False
    has_index: bool = False

    @property
    def cda_documents(self) -> tuple[XDMDocument, ...]:
        """The documents whose CDA header was parsed."""
        return tuple(d for d in self.documents if d.cda is not None)

    @property
    def cda_codes(self) -> tuple[str, ...]:
        """``ClinicalDocument/code/@code`` of each CDA, in archive order, without duplicates (X-MSS-CODECDA)."""
        out: list[str] = []
        for d in self.cda_documents:
            assert d.cda is not None
            if d.cda.code is not None and d.cda.code.code not in out:
                out.append(d.cda.code.code)
        return tuple(out)

    @property
    def patients(self) -> tuple[Patient, ...]:
        """The distinct CDA patients (by INS, else first id), in archive order."""
        seen: dict[str, Patient] = {}
        for d in self.cda_documents:
            assert d.cda is not None
            if d.cda.patient is not None:
                seen.setdefault(d.cda.patient.identity_key(), d.cda.patient)
        return tuple(seen.values())

    @property
    def patient(self) -> Patient | None:
        """The single patient of the archive (ECO.2.1.1), or None when there is none or several."""
        pats = self.patients
        return pats[0] if len(pats) == 1 else None

    @property
    def patient_ids(self) -> tuple[str, ...]:
        """The distinct metadata ``patientId`` values (DocumentEntries and SubmissionSets)."""
        out: list[str] = []
        for s in self.subsets:
            if s.metadata is None:
                continue
            for pid in [e.patient_id for e in s.metadata.document_entries] + [
                ss.patient_id for ss in s.metadata.submission_sets
            ]:
                if pid and pid not in out:
                    out.append(pid)
        return tuple(out)

    @property
    def patient_id(self) -> str | None:
        """The single metadata ``patientId`` (ECO.2.1.2 identifies the patient with it), or None."""
        ids = self.patient_ids
        return ids[0] if len(ids) == 1 else None

    @property
    def has_qualified_ins(self) -> bool:
        """The ``X-MSS-INS`` decision (ECO.2.4.2): True when the archive holds at least one CDA, all CDA
        documents concern one patient, and that patient carries a qualified INS (INS + 4 identity traits)."""
        cdas = self.cda_documents
        if not cdas:
            return False
        pat = self.patient
        return pat is not None and all(d.cda is not None and d.cda.has_qualified_ins for d in cdas)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The result of :func:`mssante.xdm.validate_archive`.

    Attributes:
        archive: the read archive.
        findings: every finding, errors first.
    """

    archive: XDMArchive
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when no finding has severity ``error``."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The error findings."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The warning findings."""
        return tuple(f for f in self.findings if f.severity == "warning")

    def rules(self) -> set[str]:
        """The set of rule ids of all findings (handy in tests and dashboards)."""
        return {f.rule for f in self.findings}
