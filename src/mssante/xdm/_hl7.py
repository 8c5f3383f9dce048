"""HL7 v2 data types used in XDS slots (CX, XCN, XON) built from CDA header values (xdm-cda.md §2.3)."""

from __future__ import annotations

from mssante.cda import Author, Code, InstanceId, LegalAuthenticator, Organization, Patient, Person
from mssante.xdm._vocab import IDNAT_PS_OID, IDNAT_STRUCT_OID

__all__ = ["cx", "esc", "source_patient_info", "xcn", "xon"]


def esc(value: str | None) -> str:
    """Escape HL7 v2 delimiters (``\\ | ^ & ~``) inside one component value; None becomes ``""``."""
    if not value:
        return ""
    return (
        value.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def cx(ident: InstanceId, type_code: str) -> str:
    """CX ``value^^^&OID&ISO^<type>`` (``NH`` for the INS, ``PI`` for a local IPP)."""
    return f"{esc(ident.extension)}^^^&{esc(ident.root)}&ISO^{type_code}"


def xcn(ident: InstanceId | None, person: Person | None) -> str | None:
    """XCN of a professional: ``id^FAMILY^Given^^^^^^&OID&ISO^D^^^IDNPS`` (IdNat_PS) or ``^^^EI`` for others."""
    if ident is None and person is None:
        return None
    family = esc(person.family) if person else ""
    given = esc(person.given) if person else ""
    if ident is None or not ident.extension:
        return f"^{family}^{given}"
    kind = "IDNPS" if ident.root == IDNAT_PS_OID else "EI"
    return f"{esc(ident.extension)}^{family}^{given}^^^^^^&{esc(ident.root)}&ISO^D^^^{kind}"


def xon(org: Organization | None) -> str | None:
    """XON of an organisation: ``name^^^^^&OID&ISO^IDNST^^^id`` (IdNat_Struct), name only without id."""
    if org is None or not (org.name or org.id):
        return None
    name = esc(org.name)
    if org.id is None or not org.id.extension:
        return name
    kind = "IDNST" if org.id.root == IDNAT_STRUCT_OID else "XX"
    return f"{name}^^^^^&{esc(org.id.root)}&ISO^{kind}^^^{esc(org.id.extension)}"


def coded(code: Code | None) -> str | None:
    """``code^displayName^codeSystem`` (authorSpecialty form)."""
    if code is None:
        return None
    return f"{esc(code.code)}^{esc(code.display_name)}^{esc(code.code_system)}"


def author_parts(author: Author) -> tuple[str | None, str | None, str | None, str | None]:
    """(authorPerson, authorInstitution, authorRole, authorSpecialty) of a CDA author."""
    person = xcn(author.id, author.person)
    if person is None and author.device:
        person = f"^{esc(author.device)}"
    role = None
    if author.function is not None:
        role = author.function.display_name or author.function.code
    return person, xon(author.organization), role, coded(author.specialty)


def legal_xcn(la: LegalAuthenticator | None) -> str | None:
    """The ``legalAuthenticator`` slot value (XCN)."""
    return None if la is None else xcn(la.id, la.person)


def source_patient_info(patient: Patient) -> tuple[str, ...]:
    """``sourcePatientInfo`` values: ``PID-3``, ``PID-5`` (birth name, type L), ``PID-7``, ``PID-8``."""
    out: list[str] = []
    if patient.ins is not None:
        out.append("PID-3|" + cx(InstanceId(patient.ins.oid, patient.ins.matricule), "NH"))
    for local in patient.local_ids:
        if local.extension:
            out.append("PID-3|" + cx(local, "PI"))
    if patient.birth_family:
        out.append(f"PID-5|{esc(patient.birth_family)}^{esc(patient.first_given)}^^^^^L")
    if patient.birth_time:
        out.append(f"PID-7|{esc(patient.birth_time[:8])}")
    if patient.gender:
        out.append(f"PID-8|{esc(patient.gender)}")
    return tuple(out)
