"""The CDA header as French label/value rows (ECO.2.1.5: title, type, date, author, organisation...)."""

from __future__ import annotations

import re

from mssante.cda import CDAHeader, Code, InstanceId, Organization, Person

__all__ = ["document_title", "format_ts", "front_rows", "patient_line"]

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{2})?(\d{2})?$")
_GENDER = {"F": "Féminin", "M": "Masculin", "U": "Inconnu", "UN": "Indéterminé"}


def format_ts(value: str | None) -> str | None:
    """Format an HL7 TS for a French reader: ``20210104160527+0100`` → ``04/01/2021 16:05 (UTC+01:00)``.

    A value that is not an HL7 TS is returned as written.

    Raises:
        MssanteError: none on purpose.
    """
    if not value:
        return None
    m = _TS.match(value.strip())
    if not m:
        return value
    year, month, day, hour, minute, _sec, off_h, off_m = m.groups()
    out = year
    if month:
        out = f"{month}/{year}"
    if day:
        out = f"{day}/{month}/{year}"
    if hour:
        out += f" {hour}:{minute or '00'}"
        if off_h:
            out += f" (UTC{off_h}:{off_m or '00'})"
    return out


def _code(code: Code | None) -> str | None:
    if code is None:
        return None
    return f"{code.display_name} ({code.code})" if code.display_name else code.code


def _person(person: Person | None) -> str | None:
    if person is None:
        return None
    parts = [p for p in (person.prefix, person.given, person.family, person.suffix) if p]
    return " ".join(parts) or None


def _ii(ii: InstanceId | None) -> str | None:
    return None if ii is None else ii.as_uid()


def _org(org: Organization | None) -> str | None:
    if org is None:
        return None
    name = org.name or _ii(org.id)
    if name and org.id is not None and org.name and org.id.extension:
        name += f" (identifiant {org.id.extension})"
    return name


def document_title(header: CDAHeader) -> str:
    """The title shown on the first page and in the PDF metadata: ``title``, else the type's display name.

    Raises:
        MssanteError: none on purpose.
    """
    if header.title:
        return header.title
    if header.code is not None and header.code.display_name:
        return header.code.display_name
    return "Document médical"


def patient_line(header: CDAHeader) -> str:
    """One line naming the patient for page footers: ``NOM Prénoms, né(e) le …, INS …``.

    Raises:
        MssanteError: none on purpose.
    """
    pat = header.patient
    if pat is None:
        return "Patient non renseigné"
    name = " ".join(p for p in (pat.birth_family or pat.used_family, pat.given_names or pat.first_given) if p)
    parts = [name or "Patient"]
    if pat.birth_time:
        born = "née" if pat.gender == "F" else "né" if pat.gender == "M" else "né(e)"
        parts.append(f"{born} le {format_ts(pat.birth_time)}")
    if pat.ins is not None:
        parts.append(f"INS {pat.ins.matricule}")
    return ", ".join(parts)


def _rows(pairs: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    return [(label, value) for label, value in pairs if value]


def front_rows(header: CDAHeader) -> list[tuple[str, list[tuple[str, str]]]]:
    """Group the header data into titled blocks of ``(label, value)`` rows, in French.

    Raises:
        MssanteError: none on purpose.
    """
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    doc = _rows(
        [
            ("Type de document", _code(header.code)),
            ("Date du document", format_ts(header.effective_time)),
            ("Date de l'acte", format_ts(header.service_start)),
            ("Fin de l'acte", format_ts(header.service_stop)),
            ("Acte", "; ".join(c for c in (_code(e.code) for e in header.service_events) if c) or None),
            ("Cadre d'exercice", _code(header.practice_setting)),
            ("Identifiant du document", _ii(header.id)),
            ("Version", header.version_number),
            ("Confidentialité", _code(header.confidentiality)),
        ]
    )
    groups.append(("Document", doc))
    pat = header.patient
    if pat is not None:
        ins = None
        if pat.ins is not None:
            ins = f"{pat.ins.matricule} ({pat.ins.kind}, OID {pat.ins.oid})"
        groups.append(
            (
                "Patient",
                _rows(
                    [
                        ("Nom de naissance", pat.birth_family),
                        ("Nom utilisé", pat.used_family if pat.used_family != pat.birth_family else None),
                        ("Prénoms", pat.given_names),
                        ("Premier prénom de naissance", pat.first_given),
                        ("Prénom utilisé", pat.used_given),
                        ("Date de naissance", format_ts(pat.birth_time)),
                        ("Sexe", _GENDER.get(pat.gender or "", pat.gender)),
                        ("INS", ins),
                        ("Autres identifiants", ", ".join(i.as_uid() for i in pat.local_ids) or None),
                    ]
                ),
            )
        )
    for n, author in enumerate(header.authors, 1):
        label = "Auteur" if len(header.authors) == 1 else f"Auteur {n}"
        groups.append(
            (
                label,
                _rows(
                    [
                        ("Nom", _person(author.person) or author.device),
                        ("Identifiant", _ii(author.id)),
                        ("Profession / spécialité", _code(author.specialty)),
                        ("Rôle", _code(author.function)),
                        ("Organisation", _org(author.organization)),
                        ("Date", format_ts(author.time)),
                    ]
                ),
            )
        )
    legal = header.legal_authenticator
    if legal is not None:
        groups.append(
            (
                "Responsable du document",
                _rows(
                    [
                        ("Nom", _person(legal.person)),
                        ("Identifiant", _ii(legal.id)),
                        ("Organisation", _org(legal.organization)),
                        ("Date de signature", format_ts(legal.time)),
                    ]
                ),
            )
        )
    if header.custodian is not None:
        groups.append(("Établissement conservant le document", _rows([("Organisation", _org(header.custodian))])))
    return [(title, rows) for title, rows in groups if rows]
