"""The parts of the builtin conformance LPS (:mod:`mssante.conformance.builtin`) that are plain library use.

Package-private. They do not import :mod:`mssante.conformance` (only
:mod:`mssante.conformance.builtin` implements the suite's protocol): reading a BAL out of the
sandbox description, the professional's PSC login, and the messages the driver composes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from mssante.annuaire import AnnuaireClient
from mssante.cda import generate_cr_bio, generate_vsm, parse_cda_header
from mssante.client._config import BALKind
from mssante.errors import ConfigError, ContentError
from mssante.message import (
    XDM_SUBJECT_PREFIX,
    Draft,
    ParsedMessage,
    PdfCompanion,
    Sender,
    organisation_label,
    pdf_filename,
    professional_label,
)
from mssante.pdf import render_cda_pdf
from mssante.psc import PSCClient, TokenSet
from mssante.xdm import build_archive

__all__ = [
    "bal_entry",
    "compose_draft",
    "lookup_address",
    "psc_login",
    "sender_of",
    "understood_of",
]

#: Mon espace santé: a patient's address is ``<INS matricule>@patient.mssante.fr`` (ECO.2.2.6).

_TEXT: Final = ("Bonjour,\n\nVeuillez trouver ci-joint le document. Cordialement.\n"
                "Message envoyé par la suite de conformité MSSanté (client mssante).\n")


def bal_entry(info: Mapping[str, Any], bal: str) -> Mapping[str, Any]:
    """The sandbox description's entry for ``bal``."""
    for entry in info.get("bals", ()):
        if isinstance(entry, Mapping) and str(entry.get("address", "")).lower() == bal.lower():
            return entry
    raise ConfigError(f"{bal} is not a BAL of this sandbox")


async def psc_login(psc: PSCClient, *, bal: str, entry: Mapping[str, Any],
                    login: Callable[[], Awaitable[Mapping[str, Any]]] | None, login_timeout: float) -> TokenSet:
    """The professional's PSC tokens: through ``login`` when given, else by CIBA for the BAL's first holder."""
    if login is not None:
        body = await login()
        raw_id = body.get("id_token")
        claims = await psc.validate_id_token(raw_id) if isinstance(raw_id, str) and raw_id else None
        return TokenSet.from_response(body, now=time.time(), id_claims=claims)
    holders = entry.get("holders") or ()
    if not holders:
        raise ConfigError(f"{bal}: no holder to log in with PSC")
    request = await psc.start_ciba(str(holders[0]))
    return await psc.wait_ciba(request, timeout=login_timeout)


def sender_of(kind: BALKind, bal: str, entry: Mapping[str, Any], info: Mapping[str, Any]) -> Sender:
    """The sender of the BAL's messages, labelled as the BAL's holder (or the software for a BAL APP)."""
    if kind == "APP":
        return Sender(address=bal, label=organisation_label("Logiciel DPI - conformité"))
    holders = [str(h) for h in entry.get("holders") or ()]
    for pro in info.get("professionals", ()):
        if isinstance(pro, Mapping) and holders and str(pro.get("national_id")) == holders[0]:
            label = professional_label(given_name=str(pro.get("given_name", "")),
                                       family_name=str(pro.get("family_name", "")), title="Dr")
            return Sender(address=bal, label=label)
    return Sender(address=bal)


def compose_draft(sender: Sender, to: str, document: str | None, *, request_mdn: bool) -> Draft:
    """A plain text message when ``document`` is None, else one CDA (``"crbio"`` or VSM) as XDM plus its PDF."""
    if document is None:
        return Draft(sender=sender, to=(to,), subject="Message de test de conformité", text=_TEXT,
                     request_mdn=request_mdn)
    now = datetime.now(UTC).replace(microsecond=0)
    cda = generate_cr_bio(effective_time=now) if document == "crbio" else generate_vsm(effective_time=now)
    header = parse_cda_header(cda)
    patient = header.patient
    label = header.code.display_name if header.code is not None else None
    name = pdf_filename(act_date=now.date(), document_type=label or "Document",
                        family_name=(patient.birth_family if patient else None) or "PATIENT",
                        given_name=(patient.first_given if patient else None) or "X")
    companion = PdfCompanion(content=render_cda_pdf(cda, now=now), filename=name)
    return Draft(sender=sender, to=(to,), text=_TEXT, xdm_archive=build_archive([cda], now=now),
                 pdfs=(companion,), request_mdn=request_mdn)


async def lookup_address(info: Mapping[str, Any], national_id: str, family_name: str) -> str:
    """The BAL PER of a professional, found in the Annuaire Santé by RPPS/idNatPs and name (ECO.3.1.4)."""
    async with AnnuaireClient.from_sandbox(info, timeout=10) as annuaire:
        page = await annuaire.search_practitioners(identifier=national_id, name=family_name)
    for pro in page.entries:
        for box in pro.mailboxes:
            if box.kind == "PER":
                return box.address
    raise ContentError(f"no BAL PER for {family_name} ({national_id}) in the Annuaire Santé", requirement="ECO.3.1.4")


def understood_of(parsed: ParsedMessage) -> dict[str, Any]:
    """What the LPS understood of a message read: patient of its documents (ECO.2.1.2), CDA codes, subject shown
    (ECO.3.1.3), and whether a patient or a professional wrote it (ECO.3.1.1)."""
    out: dict[str, Any] = {"message_id": parsed.message_id or "", "documents": [],
                           "subject_shown": (parsed.subject or "").removeprefix(XDM_SUBJECT_PREFIX).strip(),
                           "sender_kind": parsed.sender_kind}
    archive = parsed.archive
    if archive is not None:
        if archive.patient is not None:
            out["patient"] = {"ins": archive.patient.ins, "family_name": archive.patient.family_name,
                              "given_name": archive.patient.given_name}
        out["documents"] = [d.cda_code for d in archive.documents if d.cda_code]
    return out
