"""Writing cases: Message-ID, threading, sender label, DSN request, writing to a patient, Annuaire lookup.

Each is judged on what the submission front journaled (envelope, ``RCPT`` parameters, headers)
and, for the Annuaire Santé, on the mock directory's access log:

* ``message-id`` (ECO.2.2.1): every message submitted during the job has an RFC 5322 §3.6.4
  ``Message-ID``, and no two share one;
* ``reply-threading`` (ECO.2.2.2): a reply names its parent in ``In-Reply-To`` and ends
  ``References`` with it after the parent's own references;
* ``sender-label`` (ECO.2.2.7): ``From`` carries a label next to the address; for a BAL PER it
  names the holder (prénom and NOM);
* ``dsn-request`` (ECO.2.3.1): a delivery notification asked with ``NOTIFY=SUCCESS,FAILURE``
  on ``RCPT`` (RFC 3461 §4.1);
* ``patient-address`` (ECO.2.2.6, ECO.3.1.5) and ``x-mss-mes`` (ECO.2.2.8): the message to a
  patient goes to ``<INS>@patient.mssante.fr`` and carries ``X-MSS-MES: FIN``;
* ``annuaire-lookup`` (ECO.3.1.4): given a name and an identifier only, the LPS searches the
  Annuaire Santé, then writes to the address found.
"""

from __future__ import annotations

import re
import time
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import getaddresses, parseaddr
from typing import Any, Final

from mssante.cda import SamplePatient
from mssante.conformance._cases_messages import sandbox_message, threading_verdict
from mssante.conformance._context import CaseContext
from mssante.conformance._driver import LookupRef, PatientRef, SendRequest
from mssante.conformance._judge import Submission, header
from mssante.conformance._model import Check, Evidence, Verdict
from mssante.message import PATIENT_DOMAIN, patient_address

__all__ = [
    "check_annuaire_lookup",
    "check_dsn_request",
    "check_message_id",
    "check_patient_address",
    "check_reply_threading",
    "check_sender_label",
    "check_x_mss_mes",
    "lookup_target",
]

_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM: Final = rf"{_ATEXT}(?:\.{_ATEXT})*"
#: RFC 5322 §3.6.4 msg-id (without the obsolete forms): ``<dot-atom-text@dot-atom-text or [dtext]>``.
MSG_ID: Final = re.compile(rf"^<{_DOT_ATOM}@(?:{_DOT_ATOM}|\[[!-Z^-~]*\])>$")


def _notes(*items: Evidence | None) -> list[Evidence]:
    return [i for i in items if i is not None]


def _decoded(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, HeaderParseError):
        return value


def check_message_id() -> Check:
    """Every message submitted during the job has a valid, unique Message-ID (ECO.2.2.1, RFC 5322 §3.6.4)."""

    async def check(ctx: CaseContext) -> Verdict:
        got = await ctx.document_message()
        if got is None:
            return Verdict.failed(f"Aucun message envoyé par le LPS à {ctx.peer} dans le délai imparti : le "
                                  "Message-ID ne peut pas être jugé.", ctx.notes())
        subs = await ctx.submissions(ctx.job_started)
        bad = [s for s in subs if not MSG_ID.match((s.message_id or "").strip())]
        seen: dict[str, int] = {}
        for s in subs:
            key = (s.message_id or "").strip()
            seen[key] = seen.get(key, 0) + 1
        twice = sorted(k for k, n in seen.items() if k and n > 1)
        evidence = [Evidence(title="Message-ID des messages soumis",
                             lines=tuple(f"{s.message_id or '(absent)'} → {', '.join(s.recipients)}" for s in subs))]
        if bad:
            shown = ", ".join(repr(s.message_id) for s in bad[:3])
            return Verdict.failed(
                f"{len(bad)} message(s) sur {len(subs)} sans Message-ID conforme ({shown}) : chaque message porte un "
                "identifiant « <partie-gauche@domaine> » unique (ECO.2.2.1, MSS/va1.12 ; RFC 5322 §3.6.4).", evidence)
        if twice:
            return Verdict.failed(f"Message-ID réutilisé pour plusieurs messages : {', '.join(twice)} ; il doit être "
                                  "unique (ECO.2.2.1 ; RFC 5322 §3.6.4).", evidence)
        return Verdict.passed(f"{len(subs)} message(s), chacun avec un Message-ID conforme et unique (ECO.2.2.1).",
                              evidence)

    return check


def check_reply_threading() -> Check:
    """A reply carries ``In-Reply-To`` (the parent) and ``References`` (parent's, then the parent) (ECO.2.2.2)."""

    async def check(ctx: CaseContext) -> Verdict:
        root = f"<fil-{int(time.time() * 1000)}@conformite.{ctx.control.info.get('domain', 'sandbox')}>"
        parent = sandbox_message(ctx, "Test de conformité : merci de répondre à ce message",
                                 "Bonjour,\n\nMerci de répondre à ce message depuis votre LPS.\n",
                                 in_reply_to=root, references=(root,))
        await ctx.control.deliver(ctx.bal, parent.to_bytes())
        since = time.time()
        notes = _notes(await ctx.act(ctx.driver.read_new_messages(), "lecture"),
                       await ctx.act(ctx.driver.send_message(SendRequest(to=ctx.peer, in_reply_to=parent.message_id)),
                                     "réponse"))

        def is_reply(s: Submission) -> bool:
            kind = (header(s.entry.get("headers", {}), "Content-Type") or "").lower()
            return ctx.peer.lower() in (r.lower() for r in s.recipients) and "multipart/report" not in kind

        sub = await ctx.wait_submission(since, is_reply, ctx.bound())
        delivered = Evidence(title="Message déposé par le bac à sable",
                             lines=(f"Message-ID: {parent.message_id}", f"References: {root}"))
        if sub is None:
            return Verdict.failed(f"Aucune réponse envoyée à {ctx.peer} dans le délai imparti.", [*notes, delivered])
        evidence = [*notes, delivered, sub.evidence()]
        return threading_verdict(sub, parent.message_id, (root,), "La réponse", evidence)

    return check


def _holder(ctx: CaseContext) -> dict[str, Any] | None:
    info = ctx.control.info
    entry = next((b for b in info.get("bals", ()) if str(b.get("address", "")).lower() == ctx.bal.lower()), None)
    if entry is None or entry.get("kind") != "PER" or not entry.get("holders"):
        return None
    holder = str(entry["holders"][0])
    return next((dict(p) for p in info.get("professionals", ()) if str(p.get("national_id")) == holder), None)


def check_sender_label() -> Check:
    """``From`` carries a meaningful label next to the address; a BAL PER's names its holder (ECO.2.2.7)."""

    async def check(ctx: CaseContext) -> Verdict:
        got = await ctx.document_message()
        if got is None:
            return Verdict.failed(f"Aucun message envoyé par le LPS à {ctx.peer} dans le délai imparti : le libellé "
                                  "de l'expéditeur ne peut pas être jugé.", ctx.notes())
        sub, _ = got
        raw_from = header(sub.entry.get("headers", {}), "From") or ""
        label, address = parseaddr(_decoded(raw_from))
        label = label.strip()
        evidence = [Evidence(title="Expéditeur", lines=(f"From: {_decoded(raw_from)}",)), sub.evidence()]
        if address.lower() != ctx.bal.lower():
            return Verdict.failed(f"From ({address or 'absent'}) n'est pas l'adresse de la BAL {ctx.bal} (ECO.2.2.7).",
                                  evidence)
        if not label or "@" in label:
            return Verdict.failed(
                "Pas de libellé d'expéditeur : From ne porte que l'adresse ; la forme attendue est « Intitulé_BAL "
                "<adresse> » (BAL PER : <Titre>_<Prénom>_<NOM>_<Entité>, BAL ORG/APP : <Entité fonctionnelle>) "
                "(ECO.2.2.7, MSS/va1.16).", evidence)
        pro = _holder(ctx)
        if pro is not None:
            folded = label.casefold()
            missing = [str(pro.get(k, "")) for k in ("given_name", "family_name")
                       if str(pro.get(k, "")).casefold() not in folded]
            if missing:
                return Verdict.failed(
                    f"Libellé « {label} » sans {' ni '.join(missing)} : le libellé d'une BAL personnelle nomme son "
                    "titulaire (<Titre>_<Prénom>_<NOM>_<Entité>, prénom et NOM obligatoires ; ECO.2.2.7).", evidence)
        return Verdict.passed(f"Libellé d'expéditeur « {label} » (ECO.2.2.7).", evidence)

    return check


def check_dsn_request() -> Check:
    """The LPS can ask for a delivery status notification: ``NOTIFY=SUCCESS,FAILURE`` on RCPT (ECO.2.3.1)."""

    async def check(ctx: CaseContext) -> Verdict:
        since = time.time()
        note = await ctx.act(ctx.driver.send_message(SendRequest(to=ctx.peer, dsn=True)), "envoi")
        sub = await ctx.wait_submission(since, lambda s: ctx.peer.lower() in (r.lower() for r in s.recipients),
                                        ctx.bound())
        notes = _notes(note)
        if sub is None:
            return Verdict.failed(f"Aucun message envoyé à {ctx.peer} dans le délai imparti.", notes)
        options = {str(k).lower(): v for k, v in dict(sub.entry.get("rcpt_options", {})).items()}
        mine = options.get(ctx.peer.lower(), {})
        notify = {n.strip().upper() for n in str(mine.get("NOTIFY", "")).split(",") if n.strip()}
        lines = [f"RCPT TO:<{ctx.peer}> " + " ".join(f"{k}={v}" for k, v in mine.items()),
                 "MAIL FROM " + " ".join(f"{k}={v}" for k, v in dict(sub.entry.get("mail_options", {})).items())]
        evidence = [*notes, Evidence(title="Paramètres DSN de l'enveloppe (RFC 3461)", lines=tuple(lines)),
                    sub.evidence()]
        if not {"SUCCESS", "FAILURE"} <= notify:
            return Verdict.failed(
                f"Avis de remise non demandé : RCPT TO sans NOTIFY=SUCCESS,FAILURE (reçu : "
                f"{','.join(sorted(notify)) or 'aucun NOTIFY'}) ; le LPS doit permettre de demander un DSN à "
                "l'émission (ECO.2.3.1, MSS/va1.15 ; RFC 3461 §4.1).", evidence)
        return Verdict.passed(f"DSN demandé : NOTIFY={','.join(sorted(notify))} (ECO.2.3.1).", evidence)

    return check


def sample_patient_ref() -> PatientRef:
    """The patient record the LPS is asked to write to (the ANS test patient, qualified INS)."""
    p = SamplePatient()
    return PatientRef(ins=p.ins, ins_oid=p.ins_oid, family_name=p.birth_family,
                      given_name=p.given_names.split(" ")[0], birth_date=p.birth_date.isoformat())


async def _patient_message(ctx: CaseContext) -> tuple[Submission | None, list[Evidence]]:
    cached = ctx.shared.get("patient")
    if isinstance(cached, tuple):
        return cached
    since = time.time()
    request = SendRequest(patient=sample_patient_ref(), end_of_exchange=True)
    notes = _notes(await ctx.act(ctx.driver.send_message(request), "envoi au patient"))
    sub = await ctx.wait_submission(since, lambda s: bool(s.recipients), ctx.bound())
    result = (sub, notes)
    if sub is not None:
        ctx.shared["patient"] = result
    return result


def check_patient_address() -> Check:
    """A message to a patient goes to ``<INS>@patient.mssante.fr`` (ECO.2.2.6), from the record (ECO.3.1.5)."""

    async def check(ctx: CaseContext) -> Verdict:
        sub, notes = await _patient_message(ctx)
        patient = sample_patient_ref()
        wanted = patient_address(patient.ins)
        asked = Evidence(title="Dossier patient donné au LPS",
                         lines=(f"{patient.family_name} {patient.given_name}, né(e) le {patient.birth_date}",
                                f"INS {patient.ins} (OID {patient.ins_oid})"))
        if sub is None:
            return Verdict.failed(f"Aucun message envoyé au patient dans le délai imparti : le LPS doit permettre "
                                  f"d'écrire au patient depuis son dossier, à {wanted} (ECO.3.1.5, ECO.2.2.6).",
                                  [*notes, asked])
        evidence = [*notes, asked, sub.evidence()]
        recipients = [r.lower() for r in sub.recipients]
        to = [a.lower() for _, a in getaddresses([header(sub.entry.get("headers", {}), "To") or ""])]
        if recipients != [wanted] or wanted not in to:
            return Verdict.failed(
                f"Adresse du patient {', '.join(sub.recipients)} (To : {', '.join(to) or 'absent'}) au lieu de "
                f"{wanted} : l'adresse Mon espace santé se construit à partir de l'INS qualifié, "
                f"<matricule INS>@{PATIENT_DOMAIN} (ECO.2.2.6, ECO.3.1.5).", evidence)
        return Verdict.passed(f"Message écrit au patient à {wanted}, adresse construite depuis l'INS (ECO.2.2.6).",
                              evidence)

    return check


def check_x_mss_mes() -> Check:
    """The message to a patient who may not answer carries ``X-MSS-MES: FIN`` (ECO.2.2.8, SC.MSS/CONF.21)."""

    async def check(ctx: CaseContext) -> Verdict:
        sub, notes = await _patient_message(ctx)
        if sub is None:
            return Verdict.failed("Aucun message envoyé au patient dans le délai imparti : X-MSS-MES ne peut pas être "
                                  "jugé (ECO.2.2.8).", notes)
        evidence = [*notes, sub.evidence()]
        value = header(sub.entry.get("headers", {}), "X-MSS-MES")
        if (value or "").strip() != "FIN":
            return Verdict.failed(
                f"X-MSS-MES {value!r} au lieu de « FIN » sur un message au patient sans réponse possible : le LPS "
                "doit pouvoir positionner X-MSS-MES: FIN (ECO.2.2.8, SC.MSS/CONF.21).", evidence)
        return Verdict.passed("X-MSS-MES: FIN sur le message au patient (ECO.2.2.8).", evidence)

    return check


def lookup_target(info: dict[str, Any], peer: str) -> LookupRef | None:
    """What the LPS is given to find ``peer`` in the Annuaire Santé: the holder of a BAL PER, else the structure."""
    entry = next((b for b in info.get("bals", ()) if str(b.get("address", "")).lower() == peer.lower()), None)
    if entry is None:
        return None
    if entry.get("kind") == "PER" and entry.get("holders"):
        holder = str(entry["holders"][0])
        pro = next((p for p in info.get("professionals", ()) if str(p.get("national_id")) == holder), None)
        if pro is not None:
            return LookupRef(family_name=str(pro["family_name"]), given_name=str(pro["given_name"]),
                             national_id=holder)
    return None


def check_annuaire_lookup() -> Check:
    """Given a professional's name and RPPS only, the LPS searches the Annuaire Santé, then writes (ECO.3.1.4).

    Judged from the mock directory's access log: a successful search (200, at least one match)
    between the request and the submission, and the message goes to the address the directory gives.
    """

    async def check(ctx: CaseContext) -> Verdict:
        info = ctx.control.info
        target_bal = next((str(b["address"]) for b in info.get("bals", ())
                           if b.get("kind") == "PER" and lookup_target(info, str(b["address"])) is not None
                           and str(b["address"]).lower() != ctx.bal.lower()), None)
        if target_bal is None:
            target_bal = next((str(b["address"]) for b in info.get("bals", ()) if b.get("kind") == "PER"), None)
        ref = lookup_target(info, target_bal) if target_bal else None
        if ref is None or target_bal is None:
            return Verdict.errored("Le bac à sable n'a pas de BAL personnelle avec un titulaire à chercher dans "
                                   "l'Annuaire Santé.")
        since = time.time()
        note = await ctx.act(ctx.driver.send_message(SendRequest(lookup=ref)), "envoi après recherche")
        sub = await ctx.wait_submission(since, lambda s: bool(s.recipients), ctx.bound())
        asked = Evidence(title="Destinataire à chercher dans l'Annuaire Santé",
                         lines=(f"{ref.given_name} {ref.family_name}, RPPS/idNatPs {ref.national_id}",
                                f"Adresse attendue : {target_bal}"))
        notes = [*_notes(note), asked]
        if sub is None:
            return Verdict.failed(f"Aucun message envoyé à {ref.given_name} {ref.family_name} dans le délai imparti.",
                                  notes)
        log = await ctx.control.annuaire_log(since - 1)
        if log is None:
            return Verdict.errored("Ce bac à sable ne donne pas le journal d'accès de son Annuaire Santé.", notes)
        searches = [r for r in log if float(r.get("time", 0)) <= sub.at and int(r.get("status", 0)) == 200
                    and int(r.get("matches", 0)) >= 1
                    and str(r.get("path", "")).rstrip("/").rsplit("/", 1)[-1] in (
                        "Practitioner", "PractitionerRole", "Organization")]
        lines = tuple(f"{r.get('method')} {r.get('path')}?{r.get('query')} → {r.get('status')} "
                      f"({r.get('matches')} résultat(s))" for r in log[:10]) or ("aucune requête",)
        evidence = [*notes, Evidence(title="Journal d'accès de l'Annuaire Santé (bac à sable)", lines=lines),
                    sub.evidence()]
        if not searches:
            return Verdict.failed(
                "Aucune recherche dans l'Annuaire Santé avant l'envoi : le LPS doit permettre de chercher le "
                "destinataire (nom, RPPS) dans l'Annuaire Santé et d'écrire à l'adresse MSSanté trouvée (ECO.3.1.4, "
                "SC.MSS/CONF.20).", evidence)
        if [r.lower() for r in sub.recipients] != [target_bal.lower()]:
            return Verdict.failed(f"Message envoyé à {', '.join(sub.recipients)} et non à l'adresse que donne "
                                  f"l'Annuaire Santé, {target_bal} (ECO.3.1.4).", evidence)
        return Verdict.passed(f"{len(searches)} recherche(s) dans l'Annuaire Santé, puis envoi à {target_bal} "
                              "(ECO.3.1.4).", evidence)

    return check
