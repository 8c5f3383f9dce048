"""The sandbox's professionals, structures and BALs as Annuaire Santé FHIR R4 resources, and their search index.

* each :class:`~mssante.sandbox.config.Structure` is an ``Organization`` (idNatStruct, raison sociale, address)
  carrying its ORG and APP BALs;
* each :class:`~mssante.sandbox.config.Professional` is a ``Practitioner`` (idNatPs, RPPS, name, profession and
  savoir-faire qualifications, the cities of the structures where it works) carrying its PER BALs;
* each holder of an ORG BAL gets a ``PractitionerRole`` linking it to the BAL's structure.

Every BAL is a ContactPoint of the IG's ``as-mailbox-mss`` profile: ``system = email``, FR Core's e-mail type
``MSSANTE`` and the ``as-ext-mailbox-mss-metadata`` extension with the BAL type (TRE_R257) and
``listeRouge = false``. The sandbox configuration has no city: the département of the structure stands in for it
(``Paris (75)`` gives city ``Paris``, postal code ``75000``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mssante.annuaire._fhir import (
    EMAIL_TYPE_URL,
    IDNPS_SYSTEM,
    IDNST_SYSTEM,
    MAILBOX_META_URL,
    PROFESSION_SYSTEM,
    RPPS_SYSTEM,
    SPECIALTY_SYSTEM,
    TYPE_BAL_SYSTEM,
    TYPE_MESSAGERIE_SYSTEM,
)
from mssante.sandbox.config import BALConfig, SandboxConfig, Structure

__all__ = ["Directory", "Indexed", "fold"]

_IG = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
_DEPARTEMENT = re.compile(r"^\s*(.*?)\s*\((\d[0-9AB]\d?)\)\s*$")
_LABELS = {"PER": "BAL personnelle", "ORG": "BAL organisationnelle", "APP": "BAL applicative", "CAB": "BAL de cabinet"}


def fold(text: str) -> str:
    """Lower case, accents removed, spaces collapsed: how string search parameters compare (FHIR R4 §3.1.1.5.5)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def _mailbox(bal: BALConfig) -> dict[str, Any]:
    return {
        "system": "email",
        "value": bal.address,
        "extension": [
            {"url": EMAIL_TYPE_URL, "valueCoding": {"system": TYPE_MESSAGERIE_SYSTEM, "code": "MSSANTE"}},
            {
                "url": MAILBOX_META_URL,
                "extension": [
                    {"url": "type", "valueCodeableConcept": {"coding": [
                        {"system": TYPE_BAL_SYSTEM, "code": bal.kind, "display": _LABELS[bal.kind]}]}},
                    {"url": "description", "valueString": _LABELS[bal.kind]},
                    {"url": "listeRouge", "valueBoolean": False},
                ],
            },
        ],
    }


def _address(structure: Structure) -> dict[str, Any]:
    m = _DEPARTEMENT.match(structure.departement)
    if m is None:
        return {"use": "work", "city": structure.departement.strip(), "country": "FRA"}
    name, code = m.group(1), m.group(2)
    postal = "20000" if code in ("2A", "2B") else (code + "00" if len(code) == 3 else code + "000")
    return {"use": "work", "city": name, "district": structure.departement, "postalCode": postal, "country": "FRA"}


def _ident(system: str, value: str, type_code: str) -> dict[str, Any]:
    return {"use": "official", "system": system, "value": value,
            "type": {"coding": [{"system": _V2_0203, "code": type_code}]}}


@dataclass
class Indexed:
    """A resource and the values each search parameter compares with."""

    resource: dict[str, Any]
    strings: dict[str, list[str]] = field(default_factory=dict)
    tokens: dict[str, list[tuple[str | None, str]]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``Type/id``."""
        return f"{self.resource['resourceType']}/{self.resource['id']}"

    def add_strings(self, name: str, values: Iterable[str]) -> None:
        """Index ``values`` under the string parameter ``name``."""
        self.strings.setdefault(name, []).extend(v for v in values if v)

    def add_tokens(self, name: str, values: Iterable[tuple[str | None, str]]) -> None:
        """Index ``(system, code)`` pairs under the token or reference parameter ``name``."""
        self.tokens.setdefault(name, []).extend(values)


def _common(item: Indexed, bals: Iterable[BALConfig]) -> None:
    res = item.resource
    boxes = list(bals)
    if boxes:
        res["telecom"] = [_mailbox(b) for b in boxes]
    item.add_tokens("_id", [(None, res["id"])])
    item.add_tokens("identifier", [(i["system"], i["value"]) for i in res.get("identifier", [])])
    item.add_strings("mailbox-mss", [b.address for b in boxes])
    item.add_tokens("mailbox-mss-type", [(TYPE_BAL_SYSTEM, b.kind) for b in boxes])
    item.add_tokens("active", [(None, "true")])


class Directory:
    """The FHIR resources built from a :class:`~mssante.sandbox.config.SandboxConfig`, in a stable order."""

    def __init__(self, config: SandboxConfig) -> None:
        """Build every resource once (the configuration is frozen)."""
        self.resources: dict[str, list[Indexed]] = {"Practitioner": [], "PractitionerRole": [], "Organization": []}
        self.by_key: dict[str, Indexed] = {}
        cities: dict[str, list[str]] = {}
        for s in config.structures:
            org_bals = [b for b in config.bals if b.structure_id == s.national_id and b.kind in ("ORG", "APP")]
            address = _address(s)
            org = Indexed({
                "resourceType": "Organization",
                "id": f"org-{s.national_id}",
                "meta": {"profile": [_IG + "as-organization"]},
                "identifier": [_ident(IDNST_SYSTEM, s.national_id, "IDNST")],
                "active": True,
                "name": s.name,
                "address": [address],
            })
            _common(org, org_bals)
            org.add_strings("name", [s.name])
            org.add_strings("address-city", [address["city"]])
            org.add_strings("address-postalcode", [address.get("postalCode", "")])
            self._add(org)
            for bal in org_bals:
                for holder in bal.holders:
                    cities.setdefault(holder, [])
                    if address["city"] not in cities[holder]:
                        cities[holder].append(address["city"])
        for p in config.professionals:
            idents = [_ident(IDNPS_SYSTEM, p.national_id, "IDNPS")]
            if p.national_id.startswith("8"):
                idents.append(_ident(RPPS_SYSTEM, p.national_id[1:], "RPPS"))
            quals = [{"code": {"coding": [{"system": PROFESSION_SYSTEM, "code": p.profession_code}]}}]
            if p.specialty_code:
                quals.append({"code": {"coding": [{"system": SPECIALTY_SYSTEM, "code": p.specialty_code}]}})
            resource: dict[str, Any] = {
                "resourceType": "Practitioner",
                "id": f"pra-{p.national_id}",
                "meta": {"profile": [_IG + "as-practitioner"]},
                "identifier": idents,
                "active": True,
                "name": [{"use": "official", "family": p.family_name, "given": [p.given_name],
                          "prefix": [p.civility]}],
                "qualification": quals,
            }
            where = cities.get(p.national_id, [])
            if where:
                resource["address"] = [{"use": "work", "city": c} for c in where]
            pra = Indexed(resource)
            _common(pra, [b for b in config.bals if b.kind == "PER" and p.national_id in b.holders])
            pra.add_strings("family", [p.family_name])
            pra.add_strings("given", [p.given_name])
            pra.add_strings("name", [p.family_name, p.given_name, f"{p.given_name} {p.family_name}"])
            pra.add_strings("address-city", where)
            codes = [(PROFESSION_SYSTEM, p.profession_code)]
            if p.specialty_code:
                codes.append((SPECIALTY_SYSTEM, p.specialty_code))
            pra.add_tokens("qualification-code", codes)
            self._add(pra)
            structures = dict.fromkeys(
                b.structure_id for b in config.bals if b.kind == "ORG" and p.national_id in b.holders and b.structure_id
            )
            for sid in structures:
                role: dict[str, Any] = {
                    "resourceType": "PractitionerRole",
                    "id": f"rol-{p.national_id}-{sid}",
                    "meta": {"profile": [_IG + "as-practitionerrole"]},
                    "active": True,
                    "practitioner": {"reference": f"Practitioner/pra-{p.national_id}"},
                    "organization": {"reference": f"Organization/org-{sid}"},
                    "code": [{"coding": [{"system": PROFESSION_SYSTEM, "code": p.profession_code}]}],
                }
                if p.specialty_code:
                    role["specialty"] = [{"coding": [{"system": SPECIALTY_SYSTEM, "code": p.specialty_code}]}]
                rol = Indexed(role)
                _common(rol, [])
                rol.add_tokens("practitioner", [("Practitioner", f"pra-{p.national_id}")])
                rol.add_tokens("organization", [("Organization", f"org-{sid}")])
                rol.add_tokens("role", [(PROFESSION_SYSTEM, p.profession_code)])
                if p.specialty_code:
                    rol.add_tokens("specialty", [(SPECIALTY_SYSTEM, p.specialty_code)])
                self._add(rol)

    def _add(self, item: Indexed) -> None:
        self.resources[item.resource["resourceType"]].append(item)
        self.by_key[item.key] = item
