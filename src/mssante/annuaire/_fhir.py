"""The FHIR R4 vocabulary of the ANS Annuaire Santé (IG ``ansforge/IG-fhir-annuaire``) and its typed results.

An MSSanté mailbox is a ``telecom`` ContactPoint of the datatype profile ``as-mailbox-mss`` (parent FrContactPoint):
``system = email``, the address in ``value``, FR Core's e-mail type extension coded ``MSSANTE`` (TRE_R256) and the
``as-ext-mailbox-mss-metadata`` complex extension whose ``type`` sub-extension carries the BAL type (TRE_R257:
``PER``, ``ORG``, ``APP``, ``CAB``) and whose ``listeRouge`` says that the mailbox must not be published. It sits on
``Practitioner`` (PER BALs of the person), ``PractitionerRole`` (PER BALs of a practice situation) and
``Organization`` (ORG and APP BALs of a structure).

This module is pure: it turns already decoded JSON into :class:`Mailbox`, :class:`Practitioner` and
:class:`Organization` values and never trusts the shape it is given (anything unexpected is skipped or reported as
:class:`~mssante.errors.RemoteProtocolError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from mssante.errors import RemoteProtocolError

__all__ = [
    "EMAIL_TYPE_URL",
    "IDNPS_SYSTEM",
    "IDNST_SYSTEM",
    "MAILBOX_META_URL",
    "MAILBOX_PROFILE",
    "PROFESSION_SYSTEM",
    "RPPS_SYSTEM",
    "SPECIALTY_SYSTEM",
    "TYPE_BAL_SYSTEM",
    "TYPE_MESSAGERIE_SYSTEM",
    "Mailbox",
    "MailboxKind",
    "Organization",
    "Practitioner",
    "mailboxes_of",
    "organization_from_fhir",
    "practitioner_from_fhir",
]

MailboxKind = Literal["PER", "ORG", "APP", "CAB"]
MAILBOX_KINDS: Final[tuple[MailboxKind, ...]] = ("PER", "ORG", "APP", "CAB")

_IG: Final = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
#: The ContactPoint profile of an MSSanté mailbox.
MAILBOX_PROFILE: Final = _IG + "as-mailbox-mss"
#: The complex extension holding the BAL metadata (``type``, ``description``, ``listeRouge``...).
MAILBOX_META_URL: Final = _IG + "as-ext-mailbox-mss-metadata"
#: FR Core's e-mail type extension (its value says ``MSSANTE``).
EMAIL_TYPE_URL: Final = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
TYPE_MESSAGERIE_SYSTEM: Final = "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
TYPE_BAL_SYSTEM: Final = "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL"
#: idNatPs (``8`` + RPPS, ``0`` + ADELI) and RPPS identifier systems.
IDNPS_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.1"
RPPS_SYSTEM: Final = "https://rpps.esante.gouv.fr"
#: idNatStruct (type digit + FINESS/SIREN/SIRET...).
IDNST_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.2"
PROFESSION_SYSTEM: Final = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
SPECIALTY_SYSTEM: Final = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"

_MAX_TEXT = 200


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An MSSanté mailbox (BAL) published in the Annuaire Santé.

    Attributes:
        address: the mail address.
        kind: ``PER``, ``ORG``, ``APP`` or ``CAB``; None when the directory does not say.
        description: the functional description, when published.
    """

    address: str
    kind: MailboxKind | None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Practitioner:
    """A health professional found in the directory.

    Attributes:
        id: the resource id (``Practitioner/<id>``).
        national_id: idNatPs (``8`` + RPPS or ``0`` + ADELI), when published.
        rpps: the RPPS number, when published.
        family_name, given_name: the name of exercise.
        professions: TRE_G15 profession codes (``10`` médecin, ``21`` pharmacien...).
        specialties: TRE_R38 savoir-faire codes (``SM54`` médecine générale...).
        cities: the cities where the professional works.
        mailboxes: the MSSanté BALs (red-listed ones are never returned).
    """

    id: str
    national_id: str | None
    rpps: str | None
    family_name: str
    given_name: str
    professions: tuple[str, ...]
    specialties: tuple[str, ...]
    cities: tuple[str, ...]
    mailboxes: tuple[Mailbox, ...]


@dataclass(frozen=True, slots=True)
class Organization:
    """A health structure found in the directory.

    Attributes:
        id: the resource id (``Organization/<id>``).
        national_id: idNatStruct, when published.
        name: the raison sociale.
        city, postal_code: the address, when published.
        mailboxes: the MSSanté BALs (ORG and APP; red-listed ones are never returned).
    """

    id: str
    national_id: str | None
    name: str
    city: str | None
    postal_code: str | None
    mailboxes: tuple[Mailbox, ...]


def _text(value: object) -> str | None:
    """A short printable string from untrusted JSON, or None."""
    if not isinstance(value, str) or not value:
        return None
    return "".join(c for c in value[:_MAX_TEXT] if c.isprintable())


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _codes(concepts: object, system: str) -> tuple[str, ...]:
    out: list[str] = []
    for concept in _list(concepts):
        for coding in _list(_dict(concept).get("coding")):
            c = _dict(coding)
            code = _text(c.get("code"))
            if c.get("system") == system and code and code not in out:
                out.append(code)
    return tuple(out)


def _identifier(resource: Mapping[str, Any], system: str) -> str | None:
    for ident in _list(resource.get("identifier")):
        i = _dict(ident)
        if i.get("system") == system:
            return _text(i.get("value"))
    return None


def mailboxes_of(resource: Mapping[str, Any]) -> tuple[Mailbox, ...]:
    """Return the MSSanté mailboxes among a resource's ``telecom`` ContactPoints (profile ``as-mailbox-mss``).

    A ContactPoint counts when ``system`` is ``email`` and it is typed MSSanté (FR Core's e-mail type extension)
    or carries the ``as-ext-mailbox-mss-metadata`` extension; red-listed mailboxes (``listeRouge`` true) are left
    out, as the directory must not publish them.

    Raises:
        MssanteError: none on purpose (malformed entries are skipped).
    """
    found: list[Mailbox] = []
    for point in _list(resource.get("telecom")):
        p = _dict(point)
        address = _text(p.get("value"))
        if p.get("system") != "email" or not address or "@" not in address:
            continue
        mss, kind, description, red = False, None, None, False
        for ext in _list(p.get("extension")):
            e = _dict(ext)
            if e.get("url") == EMAIL_TYPE_URL:
                coding = _dict(e.get("valueCoding"))
                mss = mss or (coding.get("system") == TYPE_MESSAGERIE_SYSTEM and coding.get("code") == "MSSANTE")
            elif e.get("url") == MAILBOX_META_URL:
                mss = True
                for sub in _list(e.get("extension")):
                    s = _dict(sub)
                    if s.get("url") == "type":
                        codes = _codes([s.get("valueCodeableConcept")], TYPE_BAL_SYSTEM)
                        kind = next((k for k in MAILBOX_KINDS if k in codes), None)
                    elif s.get("url") == "description":
                        description = _text(s.get("valueString"))
                    elif s.get("url") == "listeRouge":
                        red = s.get("valueBoolean") is True
        if mss and not red:
            found.append(Mailbox(address=address, kind=kind, description=description))
    return tuple(found)


def _require(resource: object, kind: str) -> Mapping[str, Any]:
    r = _dict(resource)
    if r.get("resourceType") != kind or not _text(r.get("id")):
        raise RemoteProtocolError(f"the Annuaire Santé returned a {kind} entry without resourceType or id")
    return r


def practitioner_from_fhir(resource: object, roles: Sequence[Mapping[str, Any]] = ()) -> Practitioner:
    """Build a :class:`Practitioner` from a FHIR ``Practitioner`` and its ``PractitionerRole`` resources.

    Professions and specialties come from ``qualification`` and from the roles' ``code``/``specialty``; the
    mailboxes from the practitioner and its roles.

    Raises:
        RemoteProtocolError: ``resource`` is not a Practitioner with an id.
    """
    r = _require(resource, "Practitioner")
    name = _dict(next(iter(_list(r.get("name"))), {}))
    quals = [_dict(q).get("code") for q in _list(r.get("qualification"))]
    professions = list(_codes(quals, PROFESSION_SYSTEM))
    specialties = list(_codes(quals, SPECIALTY_SYSTEM))
    boxes = list(mailboxes_of(r))
    for role in roles:
        professions += [c for c in _codes(role.get("code"), PROFESSION_SYSTEM) if c not in professions]
        specialties += [c for c in _codes(role.get("specialty"), SPECIALTY_SYSTEM) if c not in specialties]
        boxes += [b for b in mailboxes_of(role) if b not in boxes]
    cities = tuple(dict.fromkeys(c for a in _list(r.get("address")) if (c := _text(_dict(a).get("city")))))
    return Practitioner(
        id=str(r["id"]),
        national_id=_identifier(r, IDNPS_SYSTEM),
        rpps=_identifier(r, RPPS_SYSTEM),
        family_name=_text(name.get("family")) or "",
        given_name=" ".join(g for g in (_text(x) for x in _list(name.get("given"))) if g),
        professions=tuple(professions),
        specialties=tuple(specialties),
        cities=cities,
        mailboxes=tuple(boxes),
    )


def organization_from_fhir(resource: object) -> Organization:
    """Build an :class:`Organization` from a FHIR ``Organization``.

    Raises:
        RemoteProtocolError: ``resource`` is not an Organization with an id.
    """
    r = _require(resource, "Organization")
    address = _dict(next(iter(_list(r.get("address"))), {}))
    return Organization(
        id=str(r["id"]),
        national_id=_identifier(r, IDNST_SYSTEM),
        name=_text(r.get("name")) or "",
        city=_text(address.get("city")),
        postal_code=_text(address.get("postalCode")),
        mailboxes=mailboxes_of(r),
    )
