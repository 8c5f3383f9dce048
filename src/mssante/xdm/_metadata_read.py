"""Read an ebRIM 3.0 ``SubmitObjectsRequest`` (METADATA.XML) into :class:`~mssante.xdm.XDMMetadata`.

Tolerant by design: missing attributes become None and are reported by the validator, not here. The XML is
parsed with :func:`mssante.cda.parse_xml` (no DTD, no entities, bounded).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mssante.cda import Code, XMLLimits, parse_xml
from mssante.xdm._model import Association, DocumentEntry, SubmissionSet, XDMMetadata, XDSAuthor
from mssante.xdm._vocab import NS_RIM, UUID

__all__ = ["read_metadata"]

_R = "{" + NS_RIM + "}"
_MAX_VALUE = 8192


def _clip(v: str | None) -> str | None:
    if v is None:
        return None
    v = v.strip()
    return v[:_MAX_VALUE] or None


def _slots(el: ET.Element) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for s in el.findall(_R + "Slot"):
        name = s.get("name")
        if not name:
            continue
        vals = tuple(v for v in (_clip(x.text) for x in s.iter(_R + "Value")) if v is not None)
        out.setdefault(name, vals)
    return out


def _first(slots: dict[str, tuple[str, ...]], name: str) -> str | None:
    vals = slots.get(name)
    return vals[0] if vals else None


def _name(el: ET.Element) -> str | None:
    ls = el.find(f"{_R}Name/{_R}LocalizedString")
    return None if ls is None else _clip(ls.get("value"))


def _code(cl: ET.Element) -> Code:
    slots = _slots(cl)
    return Code(_clip(cl.get("nodeRepresentation")) or "", _first(slots, "codingScheme"), _name(cl))


def _author(cl: ET.Element) -> XDSAuthor:
    s = _slots(cl)
    return XDSAuthor(
        person=_first(s, "authorPerson"),
        institutions=s.get("authorInstitution", ()),
        roles=s.get("authorRole", ()),
        specialties=s.get("authorSpecialty", ()),
        telecoms=s.get("authorTelecommunication", ()),
    )


def _classified(el: ET.Element) -> dict[str, list[ET.Element]]:
    out: dict[str, list[ET.Element]] = {}
    for cl in el.findall(_R + "Classification"):
        out.setdefault(cl.get("classificationScheme") or "", []).append(cl)
    return out


def _ext_ids(el: ET.Element) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for ei in el.findall(_R + "ExternalIdentifier"):
        out.setdefault(ei.get("identificationScheme") or "", _clip(ei.get("value")))
    return out


def _one(cls: dict[str, list[ET.Element]], key: str) -> Code | None:
    found = cls.get(UUID[key])
    return _code(found[0]) if found else None


def _document_entry(eo: ET.Element, index: int) -> DocumentEntry:
    s = _slots(eo)
    cls = _classified(eo)
    ext = _ext_ids(eo)
    return DocumentEntry(
        entry_uuid=_clip(eo.get("id")) or f"#ExtrinsicObject[{index}]",
        unique_id=ext.get(UUID["DocumentEntry.uniqueId"]),
        patient_id=ext.get(UUID["DocumentEntry.patientId"]),
        source_patient_id=_first(s, "sourcePatientId"),
        source_patient_info=s.get("sourcePatientInfo", ()),
        uri=_first(s, "URI"),
        hash=_first(s, "hash"),
        size=_first(s, "size"),
        mime_type=_clip(eo.get("mimeType")),
        object_type=_clip(eo.get("objectType")),
        creation_time=_first(s, "creationTime"),
        service_start_time=_first(s, "serviceStartTime"),
        service_stop_time=_first(s, "serviceStopTime"),
        language_code=_first(s, "languageCode"),
        title=_name(eo),
        legal_authenticator=_first(s, "legalAuthenticator"),
        class_code=_one(cls, "DocumentEntry.classCode"),
        type_code=_one(cls, "DocumentEntry.typeCode"),
        format_code=_one(cls, "DocumentEntry.formatCode"),
        confidentiality_codes=tuple(_code(c) for c in cls.get(UUID["DocumentEntry.confidentialityCode"], [])),
        healthcare_facility_type_code=_one(cls, "DocumentEntry.healthcareFacilityTypeCode"),
        practice_setting_code=_one(cls, "DocumentEntry.practiceSettingCode"),
        event_codes=tuple(_code(c) for c in cls.get(UUID["DocumentEntry.eventCodeList"], [])),
        authors=tuple(_author(c) for c in cls.get(UUID["DocumentEntry.author"], [])),
    )


def _submission_set(rp: ET.Element, index: int) -> SubmissionSet:
    s = _slots(rp)
    cls = _classified(rp)
    ext = _ext_ids(rp)
    return SubmissionSet(
        entry_uuid=_clip(rp.get("id")) or f"#RegistryPackage[{index}]",
        unique_id=ext.get(UUID["SubmissionSet.uniqueId"]),
        source_id=ext.get(UUID["SubmissionSet.sourceId"]),
        patient_id=ext.get(UUID["SubmissionSet.patientId"]),
        submission_time=_first(s, "submissionTime"),
        title=_name(rp),
        content_type_code=_one(cls, "SubmissionSet.contentTypeCode"),
        authors=tuple(_author(c) for c in cls.get(UUID["SubmissionSet.author"], [])),
        intended_recipients=s.get("intendedRecipient", ()),
    )


def metadata_from_element(root: ET.Element) -> XDMMetadata:
    """Build the model from a parsed SubmitObjectsRequest (or any element holding ebRIM objects)."""
    ss_ids: set[str] = set()
    for cl in root.iter(_R + "Classification"):
        if cl.get("classificationNode") == UUID["SubmissionSet"] and cl.get("classifiedObject"):
            ss_ids.add(cl.get("classifiedObject") or "")
    packages = list(root.iter(_R + "RegistryPackage"))
    sets = tuple(
        _submission_set(rp, i)
        for i, rp in enumerate(packages)
        if rp.get("id") in ss_ids
        or any(c.get("classificationNode") == UUID["SubmissionSet"] for c in rp.findall(_R + "Classification"))
        or (len(packages) == 1 and not ss_ids)
    )
    entries = tuple(_document_entry(eo, i) for i, eo in enumerate(root.iter(_R + "ExtrinsicObject")))
    assocs = tuple(
        Association(
            id=_clip(a.get("id")),
            association_type=_clip(a.get("associationType")),
            source=_clip(a.get("sourceObject")),
            target=_clip(a.get("targetObject")),
            submission_set_status=_first(_slots(a), "SubmissionSetStatus"),
        )
        for a in root.iter(_R + "Association")
    )
    return XDMMetadata(submission_sets=sets, document_entries=entries, associations=assocs, root_tag=root.tag)


def read_metadata(data: bytes, *, limits: XMLLimits | None = None, what: str = "METADATA.XML") -> XDMMetadata:
    """Parse METADATA.XML bytes safely into :class:`~mssante.xdm.XDMMetadata`.

    Raises:
        LimitError: the XML exceeds ``limits``.
        UnsafeContentError: the XML has a DOCTYPE or entity declarations (XXE, billion laughs).
        ContentError: the XML is not well-formed.
    """
    return metadata_from_element(parse_xml(data, limits=limits, what=what))
