"""Extract the CDA R2 header into :class:`~mssante.cda.CDAHeader` (safe parsing, no schema validation).

Element paths follow the CI-SIS "Structuration minimale" header (ANS IG document-core, xdm-cda.md §6).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

from mssante.cda._model import (
    INS,
    INS_OIDS,
    Author,
    CDAHeader,
    Code,
    InstanceId,
    LegalAuthenticator,
    Organization,
    Patient,
    Person,
    ServiceEvent,
)
from mssante.cda._xml import XMLLimits, parse_pruned
from mssante.errors import ContentError

__all__ = ["CDA_NS", "header_from_element", "parse_cda_header"]

CDA_NS = "urn:hl7-org:v3"
_N = "{" + CDA_NS + "}"
_MAX_TEXT = 4096
#: The narrative body: checked like the rest of the document but never built (the header is all we read).
BODY = (_N + "ClinicalDocument", _N + "component", _N + "structuredBody")


@functools.cache  # a fixed set of literal paths
def _q(path: str) -> str:
    """Qualify a slash path of CDA local names with the HL7 v3 namespace."""
    return "/".join(p if p in (".", "..", "*") else _N + p for p in path.split("/"))


def _find(el: ET.Element | None, path: str) -> ET.Element | None:
    return None if el is None else el.find(_q(path))


def _findall(el: ET.Element | None, path: str) -> list[ET.Element]:
    return [] if el is None else el.findall(_q(path))


def _attr(el: ET.Element | None, name: str) -> str | None:
    if el is None:
        return None
    v = el.get(name)
    if v is None:
        return None
    v = v.strip()
    return v[:_MAX_TEXT] or None


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    t = " ".join("".join(el.itertext()).split())
    return t[:_MAX_TEXT] or None


def _ii(el: ET.Element | None) -> InstanceId | None:
    root = _attr(el, "root")
    if root is None or _attr(el, "nullFlavor"):
        return None
    return InstanceId(root, _attr(el, "extension"))


def _code(el: ET.Element | None) -> Code | None:
    c = _attr(el, "code")
    if c is None:
        return None
    return Code(c, _attr(el, "codeSystem"), _attr(el, "displayName"))


def _person(el: ET.Element | None) -> Person | None:
    name = _find(el, "name")
    if name is None:
        return None
    return Person(
        family=_text(_find(name, "family")),
        given=_text(_find(name, "given")),
        prefix=_text(_find(name, "prefix")),
        suffix=_text(_find(name, "suffix")),
    )


def _org(el: ET.Element | None) -> Organization | None:
    if el is None:
        return None
    return Organization(
        id=_ii(_find(el, "id")),
        name=_text(_find(el, "name")),
        practice_setting=_code(_find(el, "standardIndustryClassCode")),
    )


def _patient(role: ET.Element | None) -> Patient | None:
    if role is None:
        return None
    ids = tuple(i for i in (_ii(e) for e in _findall(role, "id")) if i is not None)
    ins_ids = [i for i in ids if i.root in INS_OIDS and i.extension]
    ins = INS(ins_ids[0].extension or "", ins_ids[0].root) if ins_ids else None
    pat = _find(role, "patient")
    birth_family = used_family = plain_family = given_names = first_given = used_given = None
    for name in _findall(pat, "name"):
        for fam in _findall(name, "family"):
            q = (fam.get("qualifier") or "").split()
            if "BR" in q and birth_family is None:
                birth_family = _text(fam)
            elif "CL" in q and used_family is None:
                used_family = _text(fam)
            elif not q and plain_family is None:
                plain_family = _text(fam)
        for giv in _findall(name, "given"):
            q = (giv.get("qualifier") or "").split()
            if "BR" in q and first_given is None:
                first_given = _text(giv)
            elif "CL" in q and used_given is None:
                used_given = _text(giv)
            elif not q and given_names is None:
                given_names = _text(giv)
    used_family = used_family or plain_family
    if first_given is None and given_names:
        first_given = given_names.split()[0]
    ordered = tuple(sorted(ids, key=lambda i: i.root not in INS_OIDS))
    return Patient(
        ids=ordered,
        ins=ins,
        birth_family=birth_family,
        given_names=given_names,
        first_given=first_given,
        used_family=used_family,
        used_given=used_given,
        birth_time=_attr(_find(pat, "birthTime"), "value"),
        gender=_attr(_find(pat, "administrativeGenderCode"), "code"),
        birthplace_code=_text(_find(pat, "birthplace/place/addr/county")),
    )


def _author(el: ET.Element) -> Author:
    aa = _find(el, "assignedAuthor")
    device = _find(aa, "assignedAuthoringDevice")
    return Author(
        time=_attr(_find(el, "time"), "value"),
        id=_ii(_find(aa, "id")),
        person=_person(_find(aa, "assignedPerson")),
        specialty=_code(_find(aa, "code")),
        function=_code(_find(el, "functionCode")),
        organization=_org(_find(aa, "representedOrganization")),
        device=_text(_find(device, "softwareName")) or _text(_find(device, "manufacturerModelName")),
    )


def _service_event(el: ET.Element) -> ServiceEvent:
    eff = _find(el, "effectiveTime")
    setting = None
    for perf in _findall(el, "performer"):
        setting = _code(_find(perf, "assignedEntity/representedOrganization/standardIndustryClassCode"))
        if setting is not None:
            break
    return ServiceEvent(
        code=_code(_find(el, "code")),
        start=_attr(_find(eff, "low"), "value") or _attr(eff, "value"),
        stop=_attr(_find(eff, "high"), "value"),
        practice_setting=setting,
    )


def header_from_element(root: ET.Element) -> CDAHeader:
    """Build a :class:`CDAHeader` from a parsed ``ClinicalDocument`` element.

    Raises:
        ContentError: ``root`` is not an HL7 v3 ``ClinicalDocument``.
    """
    if root.tag != _N + "ClinicalDocument":
        raise ContentError(f"not a CDA R2 document: root element is {root.tag[:80]!r}", requirement="CI-SIS CDA")
    la = _find(root, "legalAuthenticator")
    la_entity = _find(la, "assignedEntity")
    legal = None
    if la is not None:
        legal = LegalAuthenticator(
            time=_attr(_find(la, "time"), "value"),
            id=_ii(_find(la_entity, "id")),
            person=_person(_find(la_entity, "assignedPerson")),
            specialty=_code(_find(la_entity, "code")),
            organization=_org(_find(la_entity, "representedOrganization")),
        )
    events = tuple(_service_event(e) for e in _findall(root, "documentationOf/serviceEvent"))
    enc = _find(root, "componentOf/encompassingEncounter")
    responsible = _code(_find(enc, "responsibleParty/assignedEntity/representedOrganization/standardIndustryClassCode"))
    practice = next((e.practice_setting for e in events if e.practice_setting), None) or responsible
    if practice is None and legal is not None and legal.organization is not None:
        practice = legal.organization.practice_setting
    non_xml = _find(root, "component/nonXMLBody/text")
    return CDAHeader(
        id=_ii(_find(root, "id")),
        code=_code(_find(root, "code")),
        title=_text(_find(root, "title")),
        effective_time=_attr(_find(root, "effectiveTime"), "value"),
        confidentiality=_code(_find(root, "confidentialityCode")),
        language=_attr(_find(root, "languageCode"), "code"),
        set_id=_ii(_find(root, "setId")),
        version_number=_attr(_find(root, "versionNumber"), "value"),
        template_ids=tuple(i for i in (_ii(t) for t in _findall(root, "templateId")) if i is not None),
        patient=_patient(_find(root, "recordTarget/patientRole")),
        authors=tuple(_author(a) for a in _findall(root, "author")),
        custodian=_org(_find(root, "custodian/assignedCustodian/representedCustodianOrganization")),
        legal_authenticator=legal,
        service_events=events,
        healthcare_facility_type=_code(_find(enc, "location/healthCareFacility/code")),
        practice_setting=practice,
        encounter_code=_code(_find(enc, "code")),
        non_xml_media_type=_attr(non_xml, "mediaType") if non_xml is not None else None,
    )


def parse_cda_header(data: bytes, *, limits: XMLLimits | None = None, what: str = "CDA document") -> CDAHeader:
    """Parse CDA R2 bytes safely and return the header.

    The whole document is parsed and checked (well-formedness, no DTD/entity, every limit) exactly as
    :func:`~mssante.cda.parse_xml` does, but the content of ``component/structuredBody`` is not kept (nor
    renamed, nor built at all when the exact parse runs): the header is all this reads.

    Args:
        data: the document bytes.
        limits: XML size/depth bounds (:class:`~mssante.cda.XMLLimits`).
        what: a label for error messages.

    Raises:
        LimitError: the document exceeds ``limits``.
        UnsafeContentError: the document has a DOCTYPE or entity declarations (XXE, billion laughs).
        ContentError: the document is not well-formed XML or not a ``ClinicalDocument``.
    """
    return header_from_element(parse_pruned(data, prune=BODY, limits=limits, what=what))
