"""Validate an XDM archive: layout, METADATA.XML completeness, document integrity, patient, CDA header.

Each check cites its rule in the finding (``rule``) and in a comment here. Rule sources:

* ``IHE ITI-32 ITI32-00x``: Gazelle assertions of IHE ITI-32 (xdm-cda.md §1.1);
* ``IHE ITI TF-3 §4.2.3.2`` / ``§4.2.3.3``: DocumentEntry / SubmissionSet attributes, optionality per
  ITI TF-3 Table 4.3.1-3 (the XDM column was not retrieved — we require what CI-SIS documents always carry);
* ``ECO.2.1.1`` (one patient per message), ``ECO.2.1.2`` (patient identified by METADATA patientId),
  ``ECO.2.4.2`` (qualified INS, X-MSS-INS): Référentiel socle MSSanté #2;
* ``CI-SIS …``: ANS CI-SIS structuration minimale / NOS tables;
* ``XDM-…``: our own integrity and safety checks.
"""

from __future__ import annotations

import re

from mssante.cda import CDAHeader, hl7_to_utc, nir_key_ok
from mssante.errors import ContentError
from mssante.xdm._model import DocumentEntry, Finding, Severity, SubmissionSet, ValidationReport, XDMArchive
from mssante.xdm._read import read_archive, resolve_uri
from mssante.xdm._vocab import HAS_MEMBER, NS_LCM, UUID, class_code_for, format_code_for
from mssante.xdm._zip import XDMLimits

__all__ = ["check_archive", "validate_archive"]

_DTM = re.compile(r"^\d{4}(?:\d{2}){0,5}$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
_SUBSET = re.compile(r"^SUBSET\d{2,}$", re.IGNORECASE)
_NAME_83 = re.compile(r"^[A-Z0-9_]{1,8}(?:\.[A-Z0-9_]{1,3})?$")
_INS_CX = re.compile(r"^[0-9AB]{15}\^\^\^&1\.2\.250\.1\.213\.1\.4\.(?:8|9|10|11)&ISO\^NH$")
_ORDER: dict[Severity, int] = {"error": 0, "warning": 1, "info": 2}


class _Out:
    def __init__(self) -> None:
        self.items: list[Finding] = []

    def add(self, severity: Severity, rule: str, message: str, where: str = "archive") -> None:
        self.items.append(Finding(severity, rule, message, where))


def _layout(a: XDMArchive, out: _Out) -> None:
    # ITI32-005: README.TXT and INDEX.HTM at the root.
    if not a.has_readme:
        out.add("error", "IHE ITI-32 ITI32-005", "README.TXT is missing at the root of the archive")
    if not a.has_index:
        out.add("error", "IHE ITI-32 ITI32-005", "INDEX.HTM is missing at the root of the archive")
    # ITI32-006: no autorun at the root.
    if any(n.upper() in ("AUTORUN.INF", "AUTORUN.EXE") for n in a.names):
        out.add("error", "IHE ITI-32 ITI32-006", "an autorun file is present at the root")
    # ITI32-004 / ITI32-007: an IHE_XDM directory with one sub-directory per submission set.
    if not a.subsets:
        out.add("error", "IHE ITI-32 ITI32-004", "no IHE_XDM/<subset>/ directory in the archive")
    for s in a.subsets:
        top, sub = s.path.split("/", 1)
        if top != "IHE_XDM" or not _SUBSET.match(sub) or sub != sub.upper():
            out.add("warning", "XDM-SUBSET-NAME", f"subset directory {s.path!r} is not named IHE_XDM/SUBSETnn", s.path)
        # ISO-9660 level-1 file names (8.3, upper case), as DICOM PS3.12 media and French producers use.
        for n in a.names:
            if n.upper().startswith(s.path.upper() + "/") and not _NAME_83.match(n.rsplit("/", 1)[-1]):
                out.add("info", "XDM-FILENAME", "file name is not an upper-case 8.3 name", n)
        # ITI32-008: each submission-set directory holds METADATA.XML.
        if s.metadata_path is None:
            out.add("error", "IHE ITI-32 ITI32-008", "METADATA.XML is missing in the subset", s.path)
        elif s.metadata_error is not None:
            out.add("error", "XDM-METADATA-XML", f"METADATA.XML is unreadable: {s.metadata_error}", s.metadata_path)
        elif s.metadata is not None and s.metadata.root_tag != "{" + NS_LCM + "}SubmitObjectsRequest":
            out.add("error", "XDM-METADATA-ROOT", "METADATA.XML root is not lcm:SubmitObjectsRequest", s.metadata_path)


def _dtm(out: _Out, value: str | None, name: str, where: str, rule: str) -> None:
    if value is not None and not _DTM.match(value):
        out.add("error", rule, f"{name} {value[:40]!r} is not an HL7 DTM in UTC (YYYY[MM[DD[hh[mm[ss]]]]])", where)


def _submission_set(ss: SubmissionSet, where: str, out: _Out) -> None:
    rule = "IHE ITI TF-3 §4.2.3.3"
    for name, value in (
        ("uniqueId", ss.unique_id),
        ("sourceId", ss.source_id),
        ("patientId", ss.patient_id),
        ("submissionTime", ss.submission_time),
    ):
        if not value:
            out.add("error", rule, f"SubmissionSet.{name} is missing", where)
    _dtm(out, ss.submission_time, "SubmissionSet.submissionTime", where, rule)
    if not ss.authors:
        out.add("warning", rule, "SubmissionSet.author is missing", where)
    if ss.content_type_code is None:
        out.add("info", rule, "SubmissionSet.contentTypeCode is absent (JDV_J03)", where)


def _document_entry(de: DocumentEntry, where: str, out: _Out) -> None:
    rule = "IHE ITI TF-3 §4.2.3.2"
    required = (
        ("uniqueId", de.unique_id),
        ("patientId", de.patient_id),
        ("sourcePatientId", de.source_patient_id),
        ("classCode", de.class_code),
        ("typeCode", de.type_code),
        ("formatCode", de.format_code),
        ("confidentialityCode", de.confidentiality_codes),
        ("creationTime", de.creation_time),
        ("hash", de.hash),
        ("size", de.size),
        ("languageCode", de.language_code),
        ("mimeType", de.mime_type),
        ("URI", de.uri),
        ("healthcareFacilityTypeCode", de.healthcare_facility_type_code),
        ("practiceSettingCode", de.practice_setting_code),
    )
    for name, value in required:
        if not value:
            out.add("error", rule, f"DocumentEntry.{name} is missing", where)
    if not de.authors:
        out.add("warning", rule, "DocumentEntry.author is missing", where)
    if de.object_type != UUID["DocumentEntry"]:
        out.add("error", rule, "ExtrinsicObject objectType is not the stable DocumentEntry type", where)
    for name, value in (
        ("creationTime", de.creation_time),
        ("serviceStartTime", de.service_start_time),
        ("serviceStopTime", de.service_stop_time),
    ):
        _dtm(out, value, f"DocumentEntry.{name}", where, rule)
    if de.hash is not None and not _SHA1.match(de.hash):
        out.add("error", rule, "DocumentEntry.hash is not a hex SHA-1", where)
    if de.size is not None and not de.size.isdigit():
        out.add("error", rule, "DocumentEntry.size is not a decimal byte count", where)
    for code in (
        de.class_code,
        de.type_code,
        de.format_code,
        de.healthcare_facility_type_code,
        de.practice_setting_code,
        *de.confidentiality_codes,
    ):
        if code is not None and (not code.code or not code.code_system):
            out.add("error", rule, "a coded DocumentEntry attribute lacks its code or codingScheme", where)
            break


def _metadata(a: XDMArchive, out: _Out) -> None:
    seen_uuid: set[str] = set()
    seen_uid: set[str] = set()
    for s in a.subsets:
        if s.metadata is None or s.metadata_path is None:
            continue
        m, where = s.metadata, s.metadata_path
        if len(m.submission_sets) != 1:
            out.add("error", "IHE ITI TF-3 §4.2.3.3", f"{len(m.submission_sets)} SubmissionSets (expected 1)", where)
        for ss in m.submission_sets:
            _submission_set(ss, f"{where}#{ss.entry_uuid}", out)
        if not m.document_entries:
            out.add("error", "IHE ITI-32 ITI32-008", "METADATA.XML describes no document", where)
        ss_ids = {ss.entry_uuid for ss in m.submission_sets}
        members = {x.target for x in m.associations if x.association_type == HAS_MEMBER and x.source in ss_ids}
        for de in m.document_entries:
            w = f"{where}#{de.entry_uuid}"
            _document_entry(de, w, out)
            if de.entry_uuid not in members:
                out.add("error", "XDM-ASSOC", "no HasMember association from the SubmissionSet", w)
            if de.entry_uuid in seen_uuid:
                out.add("error", "XDM-DUPLICATE-ID", "entryUUID used twice", w)
            seen_uuid.add(de.entry_uuid)
            if de.unique_id:
                if de.unique_id in seen_uid:
                    out.add("error", "XDM-DUPLICATE-ID", f"uniqueId {de.unique_id!r} used twice", w)
                seen_uid.add(de.unique_id)
            if de.uri and resolve_uri(s.path, de.uri) is None:
                out.add("error", "XDM-URI", f"unsafe URI {de.uri[:80]!r}", w)


def _documents(a: XDMArchive, out: _Out) -> None:
    referenced = {d.path.upper() for d in a.documents if d.data is not None}
    for d in a.documents:
        de = d.entry
        if de is None:
            continue
        if d.data is None:
            if de.uri:
                out.add("error", "XDM-URI", f"URI {de.uri[:80]!r} does not resolve to a file of the archive", d.path)
            continue
        if de.hash and d.sha1 and de.hash.lower() != d.sha1:
            out.add("error", "XDM-HASH", f"SHA-1 mismatch: metadata {de.hash[:40]}, file {d.sha1}", d.path)
        if de.size and de.size.isdigit() and int(de.size) != d.size:
            out.add("error", "XDM-SIZE", f"size mismatch: metadata {de.size[:20]}, file {d.size}", d.path)
    for s in a.subsets:
        if s.metadata is None:
            continue
        for n in a.names:
            u = n.upper()
            if u.startswith(s.path.upper() + "/") and u not in referenced and n != s.metadata_path:
                out.add("warning", "XDM-UNREFERENCED", "file not described by any DocumentEntry", n)


def _cda_header(h: CDAHeader, where: str, out: _Out) -> None:
    rule = "CI-SIS Structuration minimale"
    required: tuple[tuple[str, object], ...] = (
        ("id", h.id),
        ("code", h.code),
        ("effectiveTime", h.effective_time),
        ("recordTarget/patientRole", h.patient),
    )
    for name, value in required:
        if value is None:
            out.add("error", rule, f"CDA header lacks {name}", where)
    expected: tuple[tuple[str, object], ...] = (
        ("title", h.title),
        ("confidentialityCode", h.confidentiality),
        ("languageCode", h.language),
        ("setId", h.set_id),
        ("versionNumber", h.version_number),
        ("author", h.authors),
        ("custodian", h.custodian),
        ("legalAuthenticator", h.legal_authenticator),
        ("documentationOf/serviceEvent", h.service_events),
        ("healthCareFacility/code", h.healthcare_facility_type),
        ("practice setting (standardIndustryClassCode)", h.practice_setting),
    )
    for name, value in expected:
        if not value:
            out.add("warning", rule, f"CDA header lacks {name}", where)
    pat = h.patient
    if pat is None:
        return
    ins = pat.ins
    if ins is None:
        out.add("warning", "ECO.2.4.2", "no INS in recordTarget: X-MSS-INS will be N", where)
        return
    if not ins.well_formed:
        out.add("error", "CI-SIS INS", f"INS matricule {ins.matricule[:20]!r} is not 15 NIR characters", where)
    elif ins.kind != "INS-NIA" and not nir_key_ok(ins.matricule):
        out.add("warning", "CI-SIS INS", "INS matricule has an invalid NIR key", where)
    if ins.is_test:
        out.add("info", "CI-SIS INS", f"INS uses the {ins.kind} OID {ins.oid}: test data only", where)
    missing = [
        n
        for n, v in (
            ("birth name (family BR)", pat.birth_family),
            ("first given name", pat.first_given),
            ("birth date", pat.birth_time),
            ("sex", pat.gender),
        )
        if not v
    ]
    if missing:
        out.add("warning", "ECO.2.4.2", f"INS not qualified, missing trait(s): {', '.join(missing)}", where)


def _cda(a: XDMArchive, out: _Out) -> None:
    for d in a.documents:
        if d.data is None:
            continue
        if d.cda is None:
            out.add("error", "CI-SIS CDA", f"not a readable CDA R2 document: {d.cda_error or 'not XML'}", d.path)
            continue
        h = d.cda
        _cda_header(h, d.path, out)
        de = d.entry
        if de is None:
            continue
        # CDA header -> XDS metadata consistency (CI-SIS annexe "Lien entre l'en-tête CDA et les métadonnées XDS").
        rule = "CI-SIS CDA-XDS"
        if h.id is not None and de.unique_id and de.unique_id != h.id.as_uid() and de.unique_id != h.id.root:
            out.add("error", rule, f"uniqueId {de.unique_id[:80]!r} differs from ClinicalDocument/id", d.path)
        if h.code is not None and de.type_code is not None and de.type_code.code != h.code.code:
            out.add("error", rule, f"typeCode {de.type_code.code!r} differs from ClinicalDocument/code", d.path)
        if h.effective_time and de.creation_time:
            try:
                expected = hl7_to_utc(h.effective_time)
            except ContentError:
                expected = None
                out.add("warning", rule, "ClinicalDocument/effectiveTime is not an HL7 TS", d.path)
            if expected is not None and de.creation_time != expected:
                out.add(
                    "warning",
                    rule,
                    f"creationTime {de.creation_time[:20]} is not effectiveTime in UTC ({expected})",
                    d.path,
                )
        cls = class_code_for(h.code)
        if cls is None:
            out.add("warning", "CI-SIS ASS_X04", "typeCode not found in ASS_X04 (classCode not checked)", d.path)
        elif de.class_code is not None and de.class_code.code != cls.code:
            out.add(
                "warning", "CI-SIS ASS_X04", f"classCode {de.class_code.code!r}, ASS_X04 gives {cls.code!r}", d.path
            )
        fmt, mapped = format_code_for(h)
        if not mapped:
            out.add("warning", "CI-SIS ASS_A11", "no templateId of the CDA is in ASS_A11 (generic formatCode)", d.path)
        elif de.format_code is not None and de.format_code.code != fmt.code:
            out.add(
                "warning", "CI-SIS ASS_A11", f"formatCode {de.format_code.code!r}, ASS_A11 gives {fmt.code!r}", d.path
            )
        if de.mime_type and de.mime_type != "text/xml":
            out.add("warning", rule, f"mimeType {de.mime_type[:40]!r} for a CDA (expected text/xml)", d.path)
        # ECO.2.1.2: the receiver identifies the patient by patientId: it must be the CDA's INS.
        if h.patient is not None and h.patient.ins is not None and de.patient_id != h.patient.ins.as_cx():
            out.add("error", "ECO.2.1.2", "DocumentEntry.patientId is not the INS of the CDA recordTarget", d.path)


def _patient(a: XDMArchive, out: _Out) -> None:
    # ECO.2.1.1: a message carrying health documents concerns one single patient.
    if len(a.patients) > 1:
        out.add("error", "ECO.2.1.1", f"the CDA documents concern {len(a.patients)} different patients")
    if len(a.patient_ids) > 1:
        out.add("error", "ECO.2.1.1", f"METADATA.XML carries {len(a.patient_ids)} different patientId values")
    for pid in a.patient_ids:
        if not _INS_CX.match(pid):
            out.add("warning", "ECO.2.1.2", f"patientId {pid[:60]!r} is not an INS in CX form (…^^^&OID&ISO^NH)")


def check_archive(archive: XDMArchive) -> tuple[Finding, ...]:
    """Run every check on an already read archive and return the findings, errors first.

    Raises:
        MssanteError: none on purpose; every problem becomes a :class:`Finding`.
    """
    out = _Out()
    _layout(archive, out)
    _metadata(archive, out)
    _documents(archive, out)
    _cda(archive, out)
    _patient(archive, out)
    return tuple(sorted(out.items, key=lambda f: _ORDER[f.severity]))


def validate_archive(data: bytes, *, limits: XDMLimits | None = None) -> ValidationReport:
    """Read and validate an XDM archive.

    Returns:
        A :class:`ValidationReport`; ``report.ok`` is True when no finding is an error.

    Raises:
        LimitError: the archive exceeds ``limits`` (it is not read further).
        UnsafeContentError: the archive is dangerous (traversal, symlink, encryption, bomb, XXE/DTD).
        ContentError: the bytes are not a readable ZIP archive.
    """
    archive = read_archive(data, limits=limits)
    return ValidationReport(archive=archive, findings=check_archive(archive))
