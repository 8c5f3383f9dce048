"""CDA R2 documents: safe parsing, header extraction, and a small generator of test documents.

Public API:

* :func:`parse_cda_header` — safe parse (no DTD, no entities, bounded) and header extraction;
* :func:`parse_xml` and :class:`XMLLimits` — the hardened XML parser used for every outside XML;
* header dataclasses (:class:`CDAHeader`, :class:`Patient`, :class:`INS`, :class:`Author`...);
* :func:`hl7_to_utc` — HL7 TS (with offset) to an XDS UTC DTM;
* :func:`generate_cr_bio`, :func:`generate_vsm` with :class:`SamplePatient`/:class:`SampleAuthor`.
"""

from mssante.cda._generate import SampleAuthor, SamplePatient, generate_cr_bio, generate_vsm
from mssante.cda._header import CDA_NS, parse_cda_header
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
    nir_key_ok,
)
from mssante.cda._time import format_dtm, hl7_to_utc
from mssante.cda._xml import XMLLimits, parse_xml

__all__ = [
    "CDA_NS",
    "INS",
    "INS_OIDS",
    "Author",
    "CDAHeader",
    "Code",
    "InstanceId",
    "LegalAuthenticator",
    "Organization",
    "Patient",
    "Person",
    "SampleAuthor",
    "SamplePatient",
    "ServiceEvent",
    "XMLLimits",
    "format_dtm",
    "generate_cr_bio",
    "generate_vsm",
    "hl7_to_utc",
    "nir_key_ok",
    "parse_cda_header",
    "parse_xml",
]
