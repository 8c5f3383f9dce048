"""Identity claims of the test professionals, shaped like PSC's (psc-igc.md §1.5).

The userinfo document mirrors real BAS samples: top-level VIHF-like attributes and a
``SubjectRefPro`` with ``exercices`` (French) holding ``activities`` (English). Every activity
field is a string, empty when unknown, as in the samples.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from mssante.sandbox.config import Professional, SandboxConfig, Structure

__all__ = ["PROFESSION_LABELS", "display_name", "other_ids", "subject", "userinfo"]

# Keycloak federated-user ids look like f:<uuid of the identity provider>:<national id> (psc-igc.md §1.5).
# The UUID is derived, not copied from a real BAS token, so sandbox subjects are recognisable.
_FEDERATION_UUID = uuid.uuid5(uuid.NAMESPACE_URL, "https://mssante.invalid/sandbox/psc")

#: TRE_G15 profession codes shown on the login page.
PROFESSION_LABELS = {
    "10": "Médecin",
    "21": "Pharmacien",
    "40": "Chirurgien-dentiste",
    "50": "Sage-femme",
    "60": "Infirmier",
}

_ACTIVITY_FIELDS = (
    "codeModeExercice", "codeSecteurDactivite", "codeSectionPharmacien", "codeRole", "codeGenreActivite",
    "numeroSiretSite", "numeroSirenSite", "numeroFinessSite", "numeroFinessetablissementJuridique",
    "identifiantTechniqueDeLaStructure", "raisonSocialeSite", "enseigneCommercialeSite", "complementDestinataire",
    "complementPointGeographique", "numeroVoie", "indiceRepetitionVoie", "codeTypeDeVoie", "libelleVoie",
    "mentionDistribution", "bureauCedex", "codePostal", "codeCommune", "codePays", "telephone", "telephone2",
    "telecopie", "adresseEMail", "codeDepartement", "ancienIdentifiantDeLaStructure", "autoriteDenregistrement",
)


def subject(professional: Professional) -> str:
    """Return the ``sub`` PSC gives this professional: ``f:<uuid>:<national id>``."""
    return f"f:{_FEDERATION_UUID}:{professional.national_id}"


def other_ids(professional: Professional) -> list[dict[str, Any]]:
    """Return ``otherIds``: the RPPS or ADELI number behind the national id (psc-igc.md §1.5)."""
    origin = "RPPS" if professional.national_id.startswith("8") else "ADELI"
    return [{"identifiant": professional.national_id[1:], "origine": origin, "qualite": 1}]


def display_name(professional: Professional) -> str:
    """Return a French label for the login page, e.g. ``DR Marie CURIE — Médecin``."""
    label = PROFESSION_LABELS.get(professional.profession_code, f"Profession {professional.profession_code}")
    return f"{professional.civility} {professional.given_name} {professional.family_name} — {label}"


def _structures_of(config: SandboxConfig, professional: Professional) -> list[Structure]:
    found: list[Structure] = []
    for bal in config.bals:
        if professional.national_id in bal.holders and bal.structure_id:
            structure = config.structure(bal.structure_id)
            if structure is not None and structure not in found:
                found.append(structure)
    return found


def _activity(structure: Structure | None) -> dict[str, str]:
    activity = dict.fromkeys(_ACTIVITY_FIELDS, "")
    activity["codeGenreActivite"] = "GENR01"
    activity["codePays"] = "99000"
    if structure is None:  # liberal practice with no configured structure
        activity["codeModeExercice"] = "L"
        activity["codeSecteurDactivite"] = "SA07"
        return activity
    kind, number = structure.national_id[0], structure.national_id[1:]
    activity["codeModeExercice"] = "S"
    activity["codeSecteurDactivite"] = "SA01" if kind == "1" else "SA25"
    activity["identifiantTechniqueDeLaStructure"] = structure.national_id
    activity["raisonSocialeSite"] = structure.name
    if kind == "1":
        activity["numeroFinessSite"] = number
    elif kind == "3":
        activity["numeroSiretSite"] = number
        activity["numeroSirenSite"] = number[:9]
    dept = re.search(r"\((\w+)\)", structure.departement)
    activity["codeDepartement"] = dept.group(1) if dept else ""
    return activity


def userinfo(config: SandboxConfig, professional: Professional, auth_mode: str) -> dict[str, Any]:
    """Return the userinfo document for ``professional`` (claim names exactly as PSC's).

    Activities come from the structures of the ORG BALs the professional holds; a professional
    with none gets one liberal activity with empty site fields.
    """
    structures = _structures_of(config, professional)
    activities = [_activity(s) for s in structures] or [_activity(None)]
    exercice = {
        "codeProfession": professional.profession_code,
        "codeCategorieProfessionnelle": "C",
        "codeCiviliteDexercice": professional.civility,
        "nomDexercice": professional.family_name,
        "prenomDexercice": professional.given_name,
        "codeTypeSavoirFaire": "S" if professional.specialty_code else "",
        "codeSavoirFaire": professional.specialty_code,
        "activities": activities,
    }
    first = structures[0] if structures else None
    return {
        "sub": subject(professional),
        "SubjectNameID": professional.national_id,
        "preferred_username": professional.national_id,
        "given_name": professional.given_name,
        "family_name": professional.family_name,
        "email_verified": False,
        "SubjectOrganization": first.name if first else "",
        "SubjectOrganizationID": first.national_id if first else "",
        "SubjectRole": [f"{professional.profession_code}^1.2.250.1.213.1.1.5.5"],
        "Secteur_Activite": f"{activities[0]['codeSecteurDactivite']}^1.2.250.1.71.4.2.4",
        "PSI_Locale": "1.2.250.1.213.1.3.1.1",
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "Acces_Regulation_Medicale": "FAUX",
        "Mode_Acces_Raison": "",
        "UITVersion": "1.0",
        "authMode": auth_mode,
        "otherIds": other_ids(professional),
        "codeCivilite": "",
        "codeGenreActivite": "GENR01",
        "SubjectRefPro": {"codeCivilite": "", "exercices": [exercice]},
    }
