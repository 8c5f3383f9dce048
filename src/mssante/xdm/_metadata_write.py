"""Serialise :class:`~mssante.xdm.XDMMetadata` as an ebRIM 3.0 ``lcm:SubmitObjectsRequest`` (METADATA.XML).

Structure per IHE ITI TF-3 §4.2 (ebRIM representation of DocumentEntry, SubmissionSet, Association) and the
skeleton in xdm-cda.md §2.4. Output is deterministic: same model, same bytes. The document is written
straight to text (one-space indentation, attributes in a fixed order, the escaping ElementTree uses): the
tree and serialiser of ``xml.etree`` cost more than the rest of building an archive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from mssante.cda import Code
from mssante.errors import UsageError
from mssante.xdm._model import DocumentEntry, SubmissionSet, XDMMetadata, XDSAuthor
from mssante.xdm._vocab import CLASSIFICATION_NODE_TYPE, HAS_MEMBER, NS_LCM, NS_RIM, UUID

__all__ = ["write_metadata"]

_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}
)
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _attr(v: str) -> str:
    # str.translate with a mapping is slow (about 3 µs); most values (ids, codes, OIDs) need nothing.
    if "&" in v or "<" in v or ">" in v or '"' in v or "\r" in v or "\n" in v or "\t" in v:
        return v.translate(_ATTR_ESCAPES)
    return v


def _text(v: str) -> str:
    return v.translate(_TEXT_ESCAPES) if "&" in v or "<" in v or ">" in v else v


@dataclass(slots=True)
class _El:
    """One element to write: a tag with its attributes, and either children or text."""

    tag: str
    attrs: dict[str, str]
    text: str | None = None
    kids: list[_El] = field(default_factory=list)

    def write(self, out: list[str], pad: str) -> None:
        out.append("<" + self.tag)
        for k, v in self.attrs.items():
            out.append(f' {k}="{_attr(v)}"')
        if self.kids:
            inner = pad + " "
            out.append(">")
            for kid in self.kids:
                out.append(inner)
                kid.write(out, inner)
            out.append(f"{pad}</{self.tag}>")
        elif self.text:
            out.append(f">{_text(self.text)}</{self.tag}>")
        else:
            out.append(" />")


def _sub(parent: _El, tag: str, attrs: dict[str, str] | None = None, text: str | None = None) -> _El:
    el = _El(tag, attrs or {}, text)
    parent.kids.append(el)
    return el


class _Writer:
    def __init__(self, seed: str) -> None:
        self.n = 0
        self.seed = seed

    def next_id(self, kind: str) -> str:
        """A deterministic ``urn:uuid:`` id for a Classification/ExternalIdentifier/Association."""
        self.n += 1
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{self.seed}#{kind}{self.n}')}"

    @staticmethod
    def slot(parent: _El, name: str, values: list[str] | tuple[str, ...] | str | None) -> None:
        if values is None:
            return
        vals = [values] if isinstance(values, str) else list(values)
        if not vals:
            return
        s = _sub(parent, "rim:Slot", {"name": name})
        vl = _sub(s, "rim:ValueList")
        for v in vals:
            _sub(vl, "rim:Value", text=v)

    @staticmethod
    def name(parent: _El, text: str | None) -> None:
        if text:
            n = _sub(parent, "rim:Name")
            _sub(n, "rim:LocalizedString", {"value": text})

    def classification(self, parent: _El, scheme_key: str, obj: str, code: Code | None) -> None:
        if code is None:
            return
        c = _sub(
            parent,
            "rim:Classification",
            {
                "id": self.next_id("cl"),
                "objectType": CLASSIFICATION_NODE_TYPE,
                "classificationScheme": UUID[scheme_key],
                "classifiedObject": obj,
                "nodeRepresentation": code.code,
            },
        )
        self.slot(c, "codingScheme", code.code_system or "")
        self.name(c, code.display_name or code.code)

    def author(self, parent: _El, scheme_key: str, obj: str, author: XDSAuthor) -> None:
        c = _sub(
            parent,
            "rim:Classification",
            {
                "id": self.next_id("cl"),
                "objectType": CLASSIFICATION_NODE_TYPE,
                "classificationScheme": UUID[scheme_key],
                "classifiedObject": obj,
                "nodeRepresentation": "",
            },
        )
        self.slot(c, "authorPerson", author.person)
        self.slot(c, "authorInstitution", author.institutions)
        self.slot(c, "authorRole", author.roles)
        self.slot(c, "authorSpecialty", author.specialties)
        self.slot(c, "authorTelecommunication", author.telecoms)

    def external_id(self, parent: _El, scheme_key: str, obj: str, value: str | None, label: str) -> None:
        if value is None:
            return
        e = _sub(
            parent,
            "rim:ExternalIdentifier",
            {
                "id": self.next_id("ei"),
                "objectType": "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier",
                "identificationScheme": UUID[scheme_key],
                "registryObject": obj,
                "value": value,
            },
        )
        self.name(e, label)

    def document_entry(self, parent: _El, de: DocumentEntry) -> None:
        attrs = {"id": de.entry_uuid, "mimeType": de.mime_type or "text/xml", "objectType": UUID["DocumentEntry"]}
        eo = _sub(parent, "rim:ExtrinsicObject", attrs)
        self.slot(eo, "creationTime", de.creation_time)
        self.slot(eo, "hash", de.hash)
        self.slot(eo, "languageCode", de.language_code)
        self.slot(eo, "legalAuthenticator", de.legal_authenticator)
        self.slot(eo, "serviceStartTime", de.service_start_time)
        self.slot(eo, "serviceStopTime", de.service_stop_time)
        self.slot(eo, "size", de.size)
        self.slot(eo, "sourcePatientId", de.source_patient_id)
        self.slot(eo, "sourcePatientInfo", de.source_patient_info)
        self.slot(eo, "URI", de.uri)
        self.name(eo, de.title)
        obj = de.entry_uuid
        for a in de.authors:
            self.author(eo, "DocumentEntry.author", obj, a)
        self.classification(eo, "DocumentEntry.classCode", obj, de.class_code)
        for conf in de.confidentiality_codes:
            self.classification(eo, "DocumentEntry.confidentialityCode", obj, conf)
        for ev in de.event_codes:
            self.classification(eo, "DocumentEntry.eventCodeList", obj, ev)
        self.classification(eo, "DocumentEntry.formatCode", obj, de.format_code)
        self.classification(eo, "DocumentEntry.healthcareFacilityTypeCode", obj, de.healthcare_facility_type_code)
        self.classification(eo, "DocumentEntry.practiceSettingCode", obj, de.practice_setting_code)
        self.classification(eo, "DocumentEntry.typeCode", obj, de.type_code)
        self.external_id(eo, "DocumentEntry.patientId", obj, de.patient_id, "XDSDocumentEntry.patientId")
        self.external_id(eo, "DocumentEntry.uniqueId", obj, de.unique_id, "XDSDocumentEntry.uniqueId")

    def submission_set(self, parent: _El, ss: SubmissionSet) -> None:
        rp = _sub(parent, "rim:RegistryPackage", {"id": ss.entry_uuid})
        self.slot(rp, "submissionTime", ss.submission_time)
        self.slot(rp, "intendedRecipient", ss.intended_recipients)
        self.name(rp, ss.title)
        obj = ss.entry_uuid
        for a in ss.authors:
            self.author(rp, "SubmissionSet.author", obj, a)
        self.classification(rp, "SubmissionSet.contentTypeCode", obj, ss.content_type_code)
        self.external_id(rp, "SubmissionSet.uniqueId", obj, ss.unique_id, "XDSSubmissionSet.uniqueId")
        self.external_id(rp, "SubmissionSet.sourceId", obj, ss.source_id, "XDSSubmissionSet.sourceId")
        self.external_id(rp, "SubmissionSet.patientId", obj, ss.patient_id, "XDSSubmissionSet.patientId")
        # The RegistryPackage is a SubmissionSet because of this classification (ITI TF-3 §4.2.1.2 [I]).
        _sub(
            parent,
            "rim:Classification",
            {
                "id": self.next_id("cl"),
                "objectType": CLASSIFICATION_NODE_TYPE,
                "classifiedObject": obj,
                "classificationNode": UUID["SubmissionSet"],
            },
        )


def write_metadata(meta: XDMMetadata) -> bytes:
    """Serialise ``meta`` as METADATA.XML bytes (UTF-8 with an XML declaration).

    The model is written as given (check it with :func:`mssante.xdm.validate_archive`); the ids of the
    classifications, external identifiers and associations are derived from the entry UUIDs, so the output
    is deterministic.

    Raises:
        UsageError: ``meta`` has neither a submission set nor a document entry.
    """
    seeds = [s.entry_uuid for s in meta.submission_sets] + [d.entry_uuid for d in meta.document_entries]
    if not seeds:
        raise UsageError("metadata without submission set nor document entry")
    w = _Writer("|".join(seeds))
    root = _El("lcm:SubmitObjectsRequest", {"xmlns:lcm": NS_LCM, "xmlns:rim": NS_RIM})
    rol = _sub(root, "rim:RegistryObjectList")
    for ss in meta.submission_sets:
        w.submission_set(rol, ss)
    for de in meta.document_entries:
        w.document_entry(rol, de)
    for assoc in meta.associations:
        a = _sub(
            rol,
            "rim:Association",
            {
                "id": assoc.id or w.next_id("as"),
                "objectType": "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association",
                "associationType": assoc.association_type or HAS_MEMBER,
                "sourceObject": assoc.source or "",
                "targetObject": assoc.target or "",
            },
        )
        w.slot(a, "SubmissionSetStatus", assoc.submission_set_status)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    root.write(out, "\n")
    out.append("\n")
    return "".join(out).encode("utf-8", "xmlcharrefreplace")
