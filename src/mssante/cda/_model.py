"""Frozen dataclasses describing the header of a CDA R2 document (CI-SIS "Structuration minimale")."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
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
    "ServiceEvent",
    "nir_key_ok",
]

#: INS identifier OIDs (xdm-cda.md §4.2): NIR (production), NIA, NIR test, NIR demo.
#: Sources: HL7 France FR Core ``fr-core-patient-ins`` invariant; ANS CI-SIS schematron.
INS_OIDS: dict[str, str] = {
    "1.2.250.1.213.1.4.8": "INS-NIR",
    "1.2.250.1.213.1.4.9": "INS-NIA",
    "1.2.250.1.213.1.4.10": "INS-NIR-TEST",
    "1.2.250.1.213.1.4.11": "INS-NIR-DEMO",
}

_MATRICULE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}$")


def nir_key_ok(matricule: str) -> bool:
    """Tell whether a 15-character INS matricule (13 characters + 2-digit key) has a valid NIR key.

    The key is ``97 - (n mod 97)`` where ``n`` is the 13-character number, with Corsica ``2A``/``2B``
    replaced as per the NIR rules (``2A`` → 19, ``2B`` → 18). A malformed matricule gives False.
    """
    if not _MATRICULE.match(matricule):
        return False
    body, key = matricule[:13], int(matricule[13:])
    n = int(body.replace("2A", "19").replace("2B", "18")) if "A" in body or "B" in body else int(body)
    return 97 - (n % 97) == key


@dataclass(frozen=True, slots=True)
class InstanceId:
    """An HL7 ``II``: ``root`` OID/UUID and optional ``extension``."""

    root: str
    extension: str | None = None

    def as_uid(self) -> str:
        """Return the XDS uniqueId form: ``root`` or ``root^extension`` (xdm-cda.md §2.3)."""
        return f"{self.root}^{self.extension}" if self.extension else self.root


@dataclass(frozen=True, slots=True)
class Code:
    """An HL7 coded value (``CE``/``CD``)."""

    code: str
    code_system: str | None = None
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class INS:
    """An INS (Identifiant national de santé): matricule and the OID saying which kind it is.

    Attributes:
        matricule: the 15-character NIR/NIA.
        oid: one of :data:`INS_OIDS`.
    """

    matricule: str
    oid: str

    @property
    def kind(self) -> str:
        """``INS-NIR``, ``INS-NIA``, ``INS-NIR-TEST`` or ``INS-NIR-DEMO``."""
        return INS_OIDS.get(self.oid, "unknown")

    @property
    def is_test(self) -> bool:
        """True for the test and demo OIDs (``…4.10``/``…4.11``), never to be used in production."""
        return self.oid in ("1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11")

    @property
    def well_formed(self) -> bool:
        """True when the matricule has 15 characters of the NIR shape (digits, Corsica ``2A``/``2B``)."""
        return bool(_MATRICULE.match(self.matricule))

    def as_cx(self) -> str:
        """Return the XDS ``patientId`` CX form ``matricule^^^&OID&ISO^NH`` (xdm-cda.md §2.3)."""
        return f"{self.matricule}^^^&{self.oid}&ISO^NH"


@dataclass(frozen=True, slots=True)
class Patient:
    """``recordTarget/patientRole`` with the INS identity traits.

    Attributes:
        ids: every ``patientRole/id`` (INS first when present, then local ids such as the IPP).
        ins: the INS found among ``ids`` (root in :data:`INS_OIDS`), or None.
        birth_family: ``family@qualifier="BR"`` (birth name).
        given_names: the birth first names (``given`` without qualifier), as written.
        first_given: ``given@qualifier="BR"`` (first birth first name), else the first word of ``given_names``.
        used_family: ``family@qualifier="CL"`` (used name).
        used_given: ``given@qualifier="CL"`` (used first name).
        birth_time: ``birthTime/@value`` (``YYYYMMDD``).
        gender: ``administrativeGenderCode/@code`` (``F``, ``M``, ``U``).
        birthplace_code: ``birthplace/place/addr/county`` (INSEE code), if any.
    """

    ids: tuple[InstanceId, ...] = ()
    ins: INS | None = None
    birth_family: str | None = None
    given_names: str | None = None
    first_given: str | None = None
    used_family: str | None = None
    used_given: str | None = None
    birth_time: str | None = None
    gender: str | None = None
    birthplace_code: str | None = None

    @property
    def has_qualified_ins(self) -> bool:
        """True for a qualified INS: INS matricule + OID plus the 4 traits (Référentiel INS §5.3.3, ECO.2.4.2).

        The traits are the birth name, the first birth first name, the birth date and the sex.
        """
        return (
            self.ins is not None
            and self.ins.well_formed
            and bool(self.birth_family)
            and bool(self.first_given)
            and bool(self.birth_time)
            and bool(self.gender)
        )

    @property
    def local_ids(self) -> tuple[InstanceId, ...]:
        """The ids that are not an INS (IPP and similar)."""
        return tuple(i for i in self.ids if i.root not in INS_OIDS)

    def identity_key(self) -> str:
        """A string identifying the patient for consistency checks: the INS CX, else the first id."""
        if self.ins is not None:
            return self.ins.as_cx()
        if self.ids:
            return self.ids[0].as_uid()
        return f"{self.birth_family}|{self.first_given}|{self.birth_time}|{self.gender}"


@dataclass(frozen=True, slots=True)
class Person:
    """A person name (``assignedPerson/name``)."""

    family: str | None = None
    given: str | None = None
    prefix: str | None = None
    suffix: str | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    """An organisation (``representedOrganization`` / ``representedCustodianOrganization``)."""

    id: InstanceId | None = None
    name: str | None = None
    practice_setting: Code | None = None


@dataclass(frozen=True, slots=True)
class Author:
    """``author/assignedAuthor``: id (IdNat_PS), specialty (``code``), role (``functionCode``)."""

    time: str | None = None
    id: InstanceId | None = None
    person: Person | None = None
    specialty: Code | None = None
    function: Code | None = None
    organization: Organization | None = None
    device: str | None = None


@dataclass(frozen=True, slots=True)
class LegalAuthenticator:
    """``legalAuthenticator/assignedEntity``."""

    time: str | None = None
    id: InstanceId | None = None
    person: Person | None = None
    specialty: Code | None = None
    organization: Organization | None = None


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """``documentationOf/serviceEvent``: code, ``effectiveTime/low`` and ``high``, performer's practice setting."""

    code: Code | None = None
    start: str | None = None
    stop: str | None = None
    practice_setting: Code | None = None


@dataclass(frozen=True, slots=True)
class CDAHeader:
    """The header of a CDA R2 ``ClinicalDocument`` (values as written, times as HL7 TS).

    Attributes:
        id: ``ClinicalDocument/id``.
        code: ``ClinicalDocument/code`` (the XDS typeCode; ``code.code`` is the ``X-MSS-CODECDA`` value).
        title: ``title``.
        effective_time: ``effectiveTime/@value`` (HL7 TS, usually with an offset).
        confidentiality: ``confidentialityCode``.
        language: ``languageCode/@code``.
        set_id: ``setId``.
        version_number: ``versionNumber/@value``.
        template_ids: every ``ClinicalDocument/templateId``.
        patient: ``recordTarget/patientRole``.
        authors: every ``author``.
        custodian: ``custodian/assignedCustodian/representedCustodianOrganization``.
        legal_authenticator: ``legalAuthenticator``.
        service_events: every ``documentationOf/serviceEvent``.
        healthcare_facility_type: ``componentOf/encompassingEncounter/location/healthCareFacility/code``.
        practice_setting: the XDS practiceSettingCode source: the first serviceEvent performer's organisation
            ``standardIndustryClassCode`` (xdm-cda.md §3), else the encounter's responsible party's, else the
            legal authenticator's organisation's.
        encounter_code: ``componentOf/encompassingEncounter/code``.
        non_xml_media_type: ``component/nonXMLBody/text/@mediaType`` for a level-1 (N1) document, else None.
    """

    id: InstanceId | None
    code: Code | None
    title: str | None = None
    effective_time: str | None = None
    confidentiality: Code | None = None
    language: str | None = None
    set_id: InstanceId | None = None
    version_number: str | None = None
    template_ids: tuple[InstanceId, ...] = ()
    patient: Patient | None = None
    authors: tuple[Author, ...] = ()
    custodian: Organization | None = None
    legal_authenticator: LegalAuthenticator | None = None
    service_events: tuple[ServiceEvent, ...] = ()
    healthcare_facility_type: Code | None = None
    practice_setting: Code | None = None
    encounter_code: Code | None = None
    non_xml_media_type: str | None = None

    @property
    def has_qualified_ins(self) -> bool:
        """True when the patient carries a qualified INS (see :attr:`Patient.has_qualified_ins`)."""
        return self.patient is not None and self.patient.has_qualified_ins

    @property
    def service_start(self) -> str | None:
        """The earliest ``serviceEvent/effectiveTime/low`` as written (first event carrying one)."""
        return next((e.start for e in self.service_events if e.start), None)

    @property
    def service_stop(self) -> str | None:
        """The ``serviceEvent/effectiveTime/high`` of the first event carrying one."""
        return next((e.stop for e in self.service_events if e.stop), None)
