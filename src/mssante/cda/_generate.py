"""A small generator of valid-looking CDA R2 documents for a test patient (no third-party files needed).

Two document kinds, shaped after the CI-SIS volets and the ANS examples (xdm-cda.md §5–§6):

* CR d'examens de biologie (CR-BIO): LOINC ``11502-2``, templates PALM ``1.3.6.1.4.1.19376.1.3.3`` and
  CI-SIS ``1.2.250.1.213.1.1.1.55``; the body is narrative (structured sections, no coded entries);
* Synthèse médicale (VSM): LOINC ``60591-5``, CI-SIS VSM template ``1.2.250.1.213.1.1.1.13``.

Both carry the header elements the CI-SIS "Structuration minimale" requires: a qualified INS (test OID by
default), author, custodian, legalAuthenticator, documentationOf/serviceEvent with a performer and practice
setting, componentOf/encompassingEncounter with a healthCareFacility code. The output is a pure function of
the inputs (no clock, no randomness).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from xml.sax.saxutils import escape, quoteattr

from mssante.errors import UsageError

__all__ = ["SampleAuthor", "SamplePatient", "generate_cr_bio", "generate_vsm"]

_NS_OID = uuid.UUID("6f1f3c52-6d2b-4f55-9a55-6d73736e7465")  # namespace for derived document ids


@dataclass(frozen=True, slots=True)
class SamplePatient:
    """A fictitious patient with a qualified INS (defaults: the ANS test patient, INS-NIR *test* OID).

    Attributes:
        ins: the 15-character INS matricule.
        ins_oid: the INS OID (default ``1.2.250.1.213.1.4.10``, INS-NIR test; never a production OID in tests).
        birth_family: birth name (``family@qualifier="BR"``).
        given_names: all birth first names, space separated.
        gender: ``F``, ``M`` or ``U``.
        birth_date: date of birth.
        birthplace_code: INSEE code of the birth place (``county``).
        ipp: a local patient id (IPP), or None.
        ipp_root: the OID of the IPP assigning authority.
    """

    ins: str = "279035121518989"
    ins_oid: str = "1.2.250.1.213.1.4.10"
    birth_family: str = "PAT-TROIS"
    given_names: str = "DOMINIQUE MARIE-LOUISE"
    gender: str = "F"
    birth_date: date = date(1979, 3, 28)
    birthplace_code: str = "51215"
    ipp: str | None = "1234567890121"
    ipp_root: str = "1.2.3.4.567.8.9.10"


@dataclass(frozen=True, slots=True)
class SampleAuthor:
    """A fictitious health professional and organisation authoring the document.

    Attributes:
        idnat_ps: IdNat_PS (``8`` + RPPS), OID ``1.2.250.1.71.4.2.1``.
        family, given: the professional's name.
        specialty_code, specialty_name: JDV_J01 profession/specialty (``1.2.250.1.213.1.1.4.5``).
        org_idnat: IdNat_Struct (``1`` + FINESS...), OID ``1.2.250.1.71.4.2.2``.
        org_name: organisation name (author's organisation and custodian).
        practice_setting: JDV_J04 code (``1.2.250.1.213.1.1.4.9``), e.g. ``AMBULATOIRE``.
        practice_setting_name: its display name.
        facility_type: JDV_J02 / TRE_R02 code (``1.2.250.1.71.4.2.4``), e.g. ``SA25``.
        facility_type_name: its display name.
    """

    idnat_ps: str = "801234567897"
    family: str = "MEDECIN"
    given: str = "Test"
    specialty_code: str = "G15_10/SM26"
    specialty_name: str = "Médecin - Qualifié en Médecine Générale (SM)"
    org_idnat: str = "1120456789"
    org_name: str = "Cabinet de test mssante"
    practice_setting: str = "AMBULATOIRE"
    practice_setting_name: str = "Ambulatoire"
    facility_type: str = "SA25"
    facility_type_name: str = "Laboratoire de biologie médicale"


def _ts(moment: datetime) -> str:
    """HL7 TS with offset (``YYYYMMDDHHMMSS+ZZZZ``), as French producers write it."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError("effective_time must be timezone-aware")
    return moment.strftime("%Y%m%d%H%M%S%z")


def _a(v: str) -> str:
    return quoteattr(v)


def _t(v: str) -> str:
    return escape(v)


def _derived_oid(*parts: str) -> str:
    """A deterministic ``2.25.<uuid>`` OID (ITU-T X.667) derived from the inputs."""
    return "2.25." + str(uuid.uuid5(_NS_OID, "|".join(parts)).int)


def _org(author: SampleAuthor, *, tag: str, practice: bool) -> str:
    psc = (
        f"<standardIndustryClassCode code={_a(author.practice_setting)} displayName={_a(author.practice_setting_name)}"
        ' codeSystem="1.2.250.1.213.1.1.4.9"/>'
        if practice
        else ""
    )
    return (
        f'<{tag}><id root="1.2.250.1.71.4.2.2" extension={_a(author.org_idnat)}/>'
        f"<name>{_t(author.org_name)}</name>{psc}</{tag}>"
    )


def _ps(author: SampleAuthor) -> str:
    return (
        f'<id root="1.2.250.1.71.4.2.1" extension={_a(author.idnat_ps)}/>'
        f"<code code={_a(author.specialty_code)} displayName={_a(author.specialty_name)}"
        ' codeSystem="1.2.250.1.213.1.1.4.5"/>'
        f"<assignedPerson><name><given>{_t(author.given)}</given><family>{_t(author.family)}</family>"
        "</name></assignedPerson>"
    )


def _header(
    *,
    templates: Sequence[tuple[str, str | None]],
    doc_id: str,
    set_id: str,
    code: tuple[str, str, str],
    title: str,
    patient: SamplePatient,
    author: SampleAuthor,
    when: datetime,
    event_code: tuple[str, str, str],
    event_start: datetime,
) -> str:
    ts = _ts(when)
    tids = "".join(f"<templateId root={_a(r)}" + (f" extension={_a(e)}" if e else "") + "/>" for r, e in templates)
    first = patient.given_names.split()[0] if patient.given_names.split() else patient.given_names
    ipp = f"<id root={_a(patient.ipp_root)} extension={_a(patient.ipp)}/>" if patient.ipp else ""
    gender_name = {"F": "Féminin", "M": "Masculin"}.get(patient.gender, "Inconnu")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<realmCode code="FR"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        f"{tids}<id root={_a(doc_id)}/>"
        f"<code code={_a(code[0])} displayName={_a(code[2])} codeSystem={_a(code[1])}/>"
        f"<title>{_t(title)}</title><effectiveTime value={_a(ts)}/>"
        '<confidentialityCode code="N" displayName="Normal" codeSystem="2.16.840.1.113883.5.25"/>'
        '<languageCode code="fr-FR"/>'
        f'<setId root={_a(set_id)}/><versionNumber value="1"/>'
        "<recordTarget><patientRole>"
        f"<id root={_a(patient.ins_oid)} extension={_a(patient.ins)}/>{ipp}"
        '<patient classCode="PSN"><name>'
        f'<family qualifier="BR">{_t(patient.birth_family)}</family>'
        f"<given>{_t(patient.given_names)}</given>"
        f'<given qualifier="BR">{_t(first)}</given>'
        "</name>"
        f"<administrativeGenderCode code={_a(patient.gender)} displayName={_a(gender_name)}"
        ' codeSystem="2.16.840.1.113883.5.1"/>'
        f"<birthTime value={_a(patient.birth_date.strftime('%Y%m%d'))}/>"
        f"<birthplace><place><addr><county>{_t(patient.birthplace_code)}</county></addr></place></birthplace>"
        "</patient></patientRole></recordTarget>"
        f"<author><time value={_a(ts)}/><assignedAuthor>{_ps(author)}"
        f"{_org(author, tag='representedOrganization', practice=False)}</assignedAuthor></author>"
        "<custodian><assignedCustodian>"
        f"{_org(author, tag='representedCustodianOrganization', practice=False)}"
        "</assignedCustodian></custodian>"
        f'<legalAuthenticator><time value={_a(ts)}/><signatureCode code="S"/><assignedEntity>{_ps(author)}'
        f"{_org(author, tag='representedOrganization', practice=True)}</assignedEntity></legalAuthenticator>"
        "<documentationOf><serviceEvent>"
        f"<code code={_a(event_code[0])} displayName={_a(event_code[2])} codeSystem={_a(event_code[1])}/>"
        f"<effectiveTime><low value={_a(_ts(event_start))}/><high value={_a(ts)}/></effectiveTime>"
        f'<performer typeCode="PRF"><assignedEntity>{_ps(author)}'
        f"{_org(author, tag='representedOrganization', practice=True)}</assignedEntity></performer>"
        "</serviceEvent></documentationOf>"
        "<componentOf><encompassingEncounter>"
        f"<effectiveTime><low value={_a(_ts(event_start))}/></effectiveTime>"
        "<location><healthCareFacility>"
        f"<code code={_a(author.facility_type)} displayName={_a(author.facility_type_name)}"
        ' codeSystem="1.2.250.1.71.4.2.4"/>'
        "</healthCareFacility></location></encompassingEncounter></componentOf>"
    )


def _section(code: str, title: str, text: str) -> str:
    return (
        "<component><section><code code=" + _a(code) + ' codeSystem="2.16.840.1.113883.6.1"/>'
        f"<title>{_t(title)}</title><text>{text}</text></section></component>"
    )


#: Default results of the generated CR-BIO: (LOINC, label, value, unit, reference range).
DEFAULT_RESULTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("15074-8", "Glucose [Moles/volume] Sang", "5.2", "mmol/L", "3.9 - 5.8"),
    ("718-7", "Hémoglobine [Masse/volume] Sang", "13.5", "g/dL", "12.0 - 16.0"),
)


def generate_cr_bio(
    *,
    effective_time: datetime,
    patient: SamplePatient | None = None,
    author: SampleAuthor | None = None,
    document_id: str | None = None,
    results: Sequence[tuple[str, str, str, str, str]] = DEFAULT_RESULTS,
    sample_time: datetime | None = None,
) -> bytes:
    """Generate a CR d'examens de biologie médicale (LOINC ``11502-2``) as UTF-8 CDA R2 bytes.

    Args:
        effective_time: creation time of the document (timezone-aware).
        patient: the patient (default :class:`SamplePatient`).
        author: the biologist and laboratory (default :class:`SampleAuthor`).
        document_id: the ``ClinicalDocument/id/@root``; derived deterministically from the inputs when None.
        results: rows ``(LOINC, label, value, unit, reference range)`` rendered in the narrative.
        sample_time: specimen collection time (serviceEvent low); defaults to ``effective_time``.

    Raises:
        UsageError: a datetime is naive.
    """
    pat = patient or SamplePatient()
    auth = author or SampleAuthor()
    doc_id = document_id or _derived_oid("CR-BIO", pat.ins, _ts(effective_time), repr(results))
    rows = "".join(
        f"<tr><td>{_t(label)}</td><td>{_t(value)}</td><td>{_t(unit)}</td><td>{_t(ref)}</td><td>{_t(loinc)}</td></tr>"
        for loinc, label, value, unit, ref in results
    )
    table = (
        "<table><thead><tr><th>Examen</th><th>Résultat</th><th>Unité</th><th>Valeurs de référence</th>"
        f"<th>LOINC</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    head = _header(
        templates=[
            ("2.16.840.1.113883.2.8.2.1", None),
            ("1.2.250.1.213.1.1.1.1", None),
            ("1.3.6.1.4.1.19376.1.3.3", None),
            ("1.2.250.1.213.1.1.1.55", None),
        ],
        doc_id=doc_id,
        set_id=doc_id + ".0",
        code=("11502-2", "2.16.840.1.113883.6.1", "CR d'examens biologiques"),
        title="Compte rendu d'examens biologiques",
        patient=pat,
        author=auth,
        when=effective_time,
        event_code=("26436-6", "2.16.840.1.113883.6.1", "Examens de biologie"),
        event_start=sample_time or effective_time,
    )
    body = (
        "<component><structuredBody>"
        + _section("26436-6", "Examens de biologie", table)
        + "</structuredBody></component></ClinicalDocument>\n"
    )
    return (head + body).encode("utf-8")


def generate_vsm(
    *,
    effective_time: datetime,
    patient: SamplePatient | None = None,
    author: SampleAuthor | None = None,
    document_id: str | None = None,
    problems: Sequence[str] = ("Hypertension artérielle essentielle",),
    allergies: Sequence[str] = ("Pas d'allergie connue",),
    treatments: Sequence[str] = ("Amlodipine 5 mg, 1 comprimé par jour",),
) -> bytes:
    """Generate a Synthèse médicale (VSM, LOINC ``60591-5``) as UTF-8 CDA R2 bytes.

    Args:
        effective_time: creation time of the document (timezone-aware).
        patient: the patient (default :class:`SamplePatient`).
        author: the physician (default :class:`SampleAuthor` with ``ETABLISSEMENT``-like values if given).
        document_id: the ``ClinicalDocument/id/@root``; derived deterministically from the inputs when None.
        problems, allergies, treatments: narrative list items of the three sections.

    Raises:
        UsageError: a datetime is naive.
    """
    pat = patient or SamplePatient()
    auth = author or SampleAuthor(facility_type="SA07", facility_type_name="Cabinet individuel")
    doc_id = document_id or _derived_oid("VSM", pat.ins, _ts(effective_time), repr((problems, allergies, treatments)))

    def _list(items: Sequence[str]) -> str:
        return "<list>" + "".join(f"<item>{_t(i)}</item>" for i in items) + "</list>"

    head = _header(
        templates=[
            ("2.16.840.1.113883.2.8.2.1", None),
            ("1.2.250.1.213.1.1.1.1", None),
            ("1.2.250.1.213.1.1.1.13", "201310"),
        ],
        doc_id=doc_id,
        set_id=doc_id + ".0",
        code=("60591-5", "2.16.840.1.113883.6.1", "Synthèse médicale"),
        title="Synthèse médicale",
        patient=pat,
        author=auth,
        when=effective_time,
        event_code=("34117-2", "2.16.840.1.113883.6.1", "Historique et clinique"),
        event_start=effective_time,
    )
    body = (
        "<component><structuredBody>"
        + _section("11450-4", "Pathologies actives", _list(problems))
        + _section("48765-2", "Allergies et intolérances", _list(allergies))
        + _section("10160-0", "Traitements au long cours", _list(treatments))
        + "</structuredBody></component></ClinicalDocument>\n"
    )
    return (head + body).encode("utf-8")
