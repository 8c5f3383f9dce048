"""Serialise :class:`~mssante.xdm.XDMMetadata` as an ebRIM 3.0 ``lcm:SubmitObjectsRequest`` (METADATA.XML).

Structure per IHE ITI TF-3 §4.2 (ebRIM representation of DocumentEntry, SubmissionSet, Association) and the
skeleton in xdm-cda.md §2.4. Output is deterministic: same model, same bytes. The document is written
straight to text, element by element (one-space indentation, attributes in a fixed order, the escaping
ElementTree uses): no tree is built, the tree and serialiser of ``xml.etree`` cost more than the rest of
building an archive.
"""

from __future__ import annotations

import hashlib
import uuid

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


_URL_NS = uuid.NAMESPACE_URL.bytes


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {k}="{_attr(v)}"' for k, v in attrs.items())


class _Writer:
    """Appends the document to ``out``; ``pad`` is a newline and one space per enclosing element."""

    def __init__(self, seed: str) -> None:
        self.n = 0
        self.seed = seed
        self.out: list[str] = []

    def next_id(self, kind: str) -> str:
        """A deterministic ``urn:uuid:`` id for a Classification/ExternalIdentifier/Association: the
        name-based UUID (RFC 4122 §4.3, SHA-1, ``uuid.uuid5`` in the URL namespace) of ``seed#kindN``,
        formatted here: ``uuid.UUID`` objects cost more than the hash."""
        self.n += 1
        h = bytearray(hashlib.sha1(_URL_NS + f"{self.seed}#{kind}{self.n}".encode(), usedforsecurity=False).digest())
        h[6] = (h[6] & 0x0F) | 0x50  # version 5
        h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
        x = h[:16].hex()
        return f"urn:uuid:{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"

    def open(self, pad: str, tag: str, attrs: dict[str, str]) -> None:
        self.out.append(f"{pad}<{tag}{_attrs(attrs)}>")

    def close(self, mark: int, pad: str, tag: str, attrs: dict[str, str]) -> None:
        """Close the element opened at ``out[mark]``: an empty element when nothing was written inside."""
        out = self.out
        if len(out) == mark + 1:
            out[-1] = f"{pad}<{tag}{_attrs(attrs)} />"
        else:
            out.append(f"{pad}</{tag}>")

    def slot(self, pad: str, name: str, values: list[str] | tuple[str, ...] | str | None) -> None:
        if values is None:
            return
        vals = [values] if isinstance(values, str) else values
        if not vals:
            return
        out = self.out
        out.append(f'{pad}<rim:Slot name="{_attr(name)}">{pad} <rim:ValueList>')
        inner = pad + "  "
        for v in vals:
            out.append(f"{inner}<rim:Value>{_text(v)}</rim:Value>" if v else f"{inner}<rim:Value />")
        out.append(f"{pad} </rim:ValueList>{pad}</rim:Slot>")

    def name(self, pad: str, text: str | None) -> None:
        if text:
            self.out.append(f'{pad}<rim:Name>{pad} <rim:LocalizedString value="{_attr(text)}" />{pad}</rim:Name>')

    def classification(self, pad: str, scheme_key: str, obj: str, code: Code | None) -> None:
        if code is None:
            return
        attrs = {
            "id": self.next_id("cl"),
            "objectType": CLASSIFICATION_NODE_TYPE,
            "classificationScheme": UUID[scheme_key],
            "classifiedObject": obj,
            "nodeRepresentation": code.code,
        }
        self.open(pad, "rim:Classification", attrs)
        inner = pad + " "
        self.slot(inner, "codingScheme", code.code_system or "")
        self.name(inner, code.display_name or code.code)
        self.out.append(f"{pad}</rim:Classification>")

    def author(self, pad: str, scheme_key: str, obj: str, author: XDSAuthor) -> None:
        attrs = {
            "id": self.next_id("cl"),
            "objectType": CLASSIFICATION_NODE_TYPE,
            "classificationScheme": UUID[scheme_key],
            "classifiedObject": obj,
            "nodeRepresentation": "",
        }
        out = self.out
        mark = len(out)
        self.open(pad, "rim:Classification", attrs)
        inner = pad + " "
        self.slot(inner, "authorPerson", author.person)
        self.slot(inner, "authorInstitution", author.institutions)
        self.slot(inner, "authorRole", author.roles)
        self.slot(inner, "authorSpecialty", author.specialties)
        self.slot(inner, "authorTelecommunication", author.telecoms)
        self.close(mark, pad, "rim:Classification", attrs)

    def external_id(self, pad: str, scheme_key: str, obj: str, value: str | None, label: str) -> None:
        if value is None:
            return
        attrs = {
            "id": self.next_id("ei"),
            "objectType": "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier",
            "identificationScheme": UUID[scheme_key],
            "registryObject": obj,
            "value": value,
        }
        self.open(pad, "rim:ExternalIdentifier", attrs)
        self.name(pad + " ", label)
        self.out.append(f"{pad}</rim:ExternalIdentifier>")

    def document_entry(self, pad: str, de: DocumentEntry) -> None:
        attrs = {"id": de.entry_uuid, "mimeType": de.mime_type or "text/xml", "objectType": UUID["DocumentEntry"]}
        self.open(pad, "rim:ExtrinsicObject", attrs)
        inner = pad + " "
        self.slot(inner, "creationTime", de.creation_time)
        self.slot(inner, "hash", de.hash)
        self.slot(inner, "languageCode", de.language_code)
        self.slot(inner, "legalAuthenticator", de.legal_authenticator)
        self.slot(inner, "serviceStartTime", de.service_start_time)
        self.slot(inner, "serviceStopTime", de.service_stop_time)
        self.slot(inner, "size", de.size)
        self.slot(inner, "sourcePatientId", de.source_patient_id)
        self.slot(inner, "sourcePatientInfo", de.source_patient_info)
        self.slot(inner, "URI", de.uri)
        self.name(inner, de.title)
        obj = de.entry_uuid
        for a in de.authors:
            self.author(inner, "DocumentEntry.author", obj, a)
        self.classification(inner, "DocumentEntry.classCode", obj, de.class_code)
        for conf in de.confidentiality_codes:
            self.classification(inner, "DocumentEntry.confidentialityCode", obj, conf)
        for ev in de.event_codes:
            self.classification(inner, "DocumentEntry.eventCodeList", obj, ev)
        self.classification(inner, "DocumentEntry.formatCode", obj, de.format_code)
        self.classification(inner, "DocumentEntry.healthcareFacilityTypeCode", obj, de.healthcare_facility_type_code)
        self.classification(inner, "DocumentEntry.practiceSettingCode", obj, de.practice_setting_code)
        self.classification(inner, "DocumentEntry.typeCode", obj, de.type_code)
        self.external_id(inner, "DocumentEntry.patientId", obj, de.patient_id, "XDSDocumentEntry.patientId")
        self.external_id(inner, "DocumentEntry.uniqueId", obj, de.unique_id, "XDSDocumentEntry.uniqueId")
        self.out.append(f"{pad}</rim:ExtrinsicObject>")

    def submission_set(self, pad: str, ss: SubmissionSet) -> None:
        self.open(pad, "rim:RegistryPackage", {"id": ss.entry_uuid})
        inner = pad + " "
        self.slot(inner, "submissionTime", ss.submission_time)
        self.slot(inner, "intendedRecipient", ss.intended_recipients)
        self.name(inner, ss.title)
        obj = ss.entry_uuid
        for a in ss.authors:
            self.author(inner, "SubmissionSet.author", obj, a)
        self.classification(inner, "SubmissionSet.contentTypeCode", obj, ss.content_type_code)
        self.external_id(inner, "SubmissionSet.uniqueId", obj, ss.unique_id, "XDSSubmissionSet.uniqueId")
        self.external_id(inner, "SubmissionSet.sourceId", obj, ss.source_id, "XDSSubmissionSet.sourceId")
        self.external_id(inner, "SubmissionSet.patientId", obj, ss.patient_id, "XDSSubmissionSet.patientId")
        self.out.append(f"{pad}</rim:RegistryPackage>")
        # The RegistryPackage is a SubmissionSet because of this classification (ITI TF-3 §4.2.1.2 [I]).
        attrs = {
            "id": self.next_id("cl"),
            "objectType": CLASSIFICATION_NODE_TYPE,
            "classifiedObject": obj,
            "classificationNode": UUID["SubmissionSet"],
        }
        self.out.append(f"{pad}<rim:Classification{_attrs(attrs)} />")


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
    out = w.out
    out.append('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.append(f'<lcm:SubmitObjectsRequest xmlns:lcm="{_attr(NS_LCM)}" xmlns:rim="{_attr(NS_RIM)}">')
    pad = "\n  "
    out.append("\n <rim:RegistryObjectList>")
    for ss in meta.submission_sets:
        w.submission_set(pad, ss)
    for de in meta.document_entries:
        w.document_entry(pad, de)
    for assoc in meta.associations:
        attrs = {
            "id": assoc.id or w.next_id("as"),
            "objectType": "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association",
            "associationType": assoc.association_type or HAS_MEMBER,
            "sourceObject": assoc.source or "",
            "targetObject": assoc.target or "",
        }
        mark = len(out)
        w.open(pad, "rim:Association", attrs)
        w.slot(pad + " ", "SubmissionSetStatus", assoc.submission_set_status)
        w.close(mark, pad, "rim:Association", attrs)
    out.append("\n </rim:RegistryObjectList>\n</lcm:SubmitObjectsRequest>\n")
    return "".join(out).encode("utf-8", "xmlcharrefreplace")
