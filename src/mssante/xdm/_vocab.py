"""ebRIM / XDS constants and the CI-SIS code mappings used to derive XDS metadata from a CDA header.

UUIDs: IHE ITI TF-3 §4.2.5 (metadata object types and classification schemes), cross-checked with the
IPF ``Vocabulary`` class (xdm-cda.md §2.1). The ANS NOS mapping tables (ASS_X04, ASS_A11, ASS_A12, TRE_A03)
are kept as JSON data in ``mssante/xdm/data/`` with their source and version; reload a newer copy there.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from mssante.cda import CDAHeader, Code
from mssante.errors import UsageError

__all__ = [
    "CLASS_CODE_SYSTEM",
    "NS_LCM",
    "NS_RIM",
    "UUID",
    "class_code_for",
    "format_code_for",
    "table_source",
]

NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"

HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
CLASSIFICATION_NODE_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"

#: Classification schemes, identification schemes and object types (xdm-cda.md §2.1).
UUID: dict[str, str] = {
    "DocumentEntry": "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1",
    "DocumentEntry.author": "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d",
    "DocumentEntry.classCode": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "DocumentEntry.confidentialityCode": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
    "DocumentEntry.eventCodeList": "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4",
    "DocumentEntry.formatCode": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "DocumentEntry.healthcareFacilityTypeCode": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "DocumentEntry.practiceSettingCode": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
    "DocumentEntry.typeCode": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "DocumentEntry.patientId": "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
    "DocumentEntry.uniqueId": "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
    "SubmissionSet": "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
    "SubmissionSet.author": "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d",
    "SubmissionSet.contentTypeCode": "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
    "SubmissionSet.patientId": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
    "SubmissionSet.uniqueId": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
    "SubmissionSet.sourceId": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
}

#: TRE_A03-ClasseDocument code system (classCode).
CLASS_CODE_SYSTEM = "1.2.250.1.213.1.1.4.1"
#: TRE_A11-IheFormatCode code system.
IHE_FORMAT_SYSTEM = "1.3.6.1.4.1.19376.1.2.3"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
CONFIDENTIALITY_NAMES = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}
#: IdNat_PS / IdNat_Struct assigning authorities (xdm-cda.md §4.2).
IDNAT_PS_OID = "1.2.250.1.71.4.2.1"
IDNAT_STRUCT_OID = "1.2.250.1.71.4.2.2"


@cache
def _table(name: str) -> dict[str, Any]:
    text = resources.files("mssante.xdm").joinpath("data", f"{name}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def table_source(name: str) -> str:
    """Return the provenance line of a bundled NOS table (``ass_x04``, ``ass_a11``, ``ass_a12``, ``tre_a03``).

    Raises:
        UsageError: ``name`` is not a bundled table.
    """
    if name not in ("ass_x04", "ass_a11", "ass_a12", "tre_a03"):
        raise UsageError(f"unknown NOS table {name!r}")
    t = _table(name)
    return f"{t['name']} v{t.get('version', '?')} — {t['source']}"


def class_code_for(type_code: Code | None) -> Code | None:
    """Deduce the XDS classCode (TRE_A03) from a typeCode with ASS_X04 (CI-SIS); None when not mapped.

    Raises:
        MssanteError: none on purpose (an unmapped code gives None).
    """
    if type_code is None:
        return None
    key = f"{type_code.code_system or ''}|{type_code.code}"
    cls = _table("ass_x04")["map"].get(key)
    if cls is None:
        return None
    return Code(cls, CLASS_CODE_SYSTEM, _table("tre_a03")["map"].get(cls))


def format_code_for(header: CDAHeader) -> tuple[Code, bool]:
    """Deduce the XDS formatCode from the CDA: ASS_A12 for an N1 body, else ASS_A11 from the templateIds.

    French (``1.2.250.1.213``) templates are looked up first, then the others in document order.

    Returns:
        ``(code, mapped)``; ``mapped`` is False when the ASIP fallback ``urn:asipSante:modelesHorsProfils:2011``
        was used because no template (or media type) is in the tables.

    Raises:
        MssanteError: none on purpose.
    """
    if header.non_xml_media_type:
        hit = _table("ass_a12")["map"].get(header.non_xml_media_type.lower())
        if hit is not None:
            return Code(hit[0], hit[1], hit[0]), True
    amap: dict[str, list[str]] = _table("ass_a11")["map"]
    roots = [t.root for t in header.template_ids]
    for root in sorted(roots, key=lambda r: not r.startswith("1.2.250.1.213.")):
        hit = amap.get(root)
        if hit is not None:
            return Code(hit[0], hit[1], hit[0]), True
    fb = _table("ass_a11")["fallback"]
    return Code(fb[0], fb[1], fb[0]), False
