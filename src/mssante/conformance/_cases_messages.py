"""Message cases: what the LPS sends (X-MSS headers, XDM subject, PDF, UTF-8, MDN) and receives.

Sent messages are judged on the copy delivered to the recipient's mailbox in the sandbox, with
:func:`mssante.message.check_message` (each finding names its rule), plus the envelope and
headers the submission front journaled. Received messages are judged from the IMAP commands
of the LPS (a FETCH of the message text after it arrived).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from email.utils import getaddresses
from typing import Any

from mssante.cda import SamplePatient
from mssante.conformance._context import CaseContext
from mssante.conformance._driver import SendRequest
from mssante.conformance._judge import Submission, body_fetches, header, session_evidence
from mssante.conformance._model import Check, Evidence, Status, Verdict
from mssante.message import (
    XDM_SUBJECT_PREFIX,
    ComposedMessage,
    ComposeSettings,
    Draft,
    MDNReport,
    ParsedMessage,
    Sender,
    check_message,
    compose_message,
    parse_message,
    patient_address,
)
from mssante.message import Finding as MessageFinding

__all__ = [
    "SANDBOX_PRODUCT_REFERENCE",
    "check_document_rules",
    "check_mdn_request",
    "check_mdn_return",
    "check_nil",
    "check_receive_xdm",
    "check_sent_copy",
    "sandbox_message",
    "threading_of_mdn",
    "threading_verdict",
]

#: X-MSS-NIL of the messages the suite itself sends to the LPS (ECO.2.4.3 applies to them too).
SANDBOX_PRODUCT_REFERENCE = "SANDBOX0001"
_NIL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_IDS = re.compile(r"<[^<>\s]+>")


def sandbox_message(ctx: CaseContext, subject: str, text: str, **fields: Any) -> ComposedMessage:
    """A message from :attr:`CaseContext.peer` to the BAL under test, as the suite delivers them.

    ``fields`` are more :class:`~mssante.message.Draft` fields (``request_mdn``, ``in_reply_to``...).

    Raises:
        ContentError, UsageError: a field is not valid in a draft.
    """
    return compose_message(
        Draft(sender=Sender(address=ctx.peer, label="Conformité MSSanté"), to=(ctx.bal,), subject=subject,
              text=text, **fields),
        settings=ComposeSettings(product_reference=SANDBOX_PRODUCT_REFERENCE))


def _findings(findings: Sequence[MessageFinding]) -> Evidence:
    lines = tuple(f"[{f.severity}] {f.rule} : {f.message}" for f in findings) or ("aucune remarque",)
    return Evidence(title="Contrôle du message (mssante check)", lines=lines)


def _no_document(ctx: CaseContext) -> Verdict:
    notes = [n for n in ctx.shared.get("notes", []) if isinstance(n, Evidence)]
    return Verdict.failed(
        f"Aucun message avec document (IHE_XDM.ZIP) envoyé par le LPS à {ctx.peer} dans le délai imparti.", notes)


def check_document_rules(rules: tuple[str, ...], summary_fr: str) -> Check:
    """Judge the document message against ``rules`` (ECO ids): any error finding of them fails."""

    async def check(ctx: CaseContext) -> Verdict:
        got = await ctx.document_message()
        if got is None:
            return _no_document(ctx)
        sub, raw = got
        report = check_message(raw)
        parsed = parse_message(raw)
        relevant = [f for f in report.findings if f.rule in rules]
        evidence = [sub.evidence(), _findings(relevant)]
        if not parsed.xdm_attachments:
            return Verdict.failed(f"Le message envoyé ne porte pas d'archive IHE_XDM.ZIP : {summary_fr} ne peut être "
                                  "respecté (ECO.2.1.1).", evidence)
        errors = [f for f in relevant if f.severity == "error"]
        if errors:
            return Verdict.failed(f"{summary_fr} : " + " ; ".join(f"{f.message} ({f.rule})" for f in errors), evidence)
        warned = [f for f in relevant if f.severity == "warning"]
        extra = f" ({len(warned)} avertissement(s))" if warned else ""
        return Verdict.passed(f"{summary_fr} : conforme ({', '.join(rules)}){extra}.", evidence)

    return check


def check_nil() -> Check:
    """X-MSS-NIL on every message sent during the job, equal to the declared product reference (ECO.2.4.3).

    The reference is the one Convergence gave the product, declared to the suite with
    ``--product-reference``: a value of the right shape but not the product's is refused.
    """

    async def check(ctx: CaseContext) -> Verdict:
        if await ctx.document_message() is None:
            return _no_document(ctx)
        subs = await ctx.submissions(ctx.job_started)
        declared = ctx.product_reference
        values = [header(s.entry.get("headers", {}), "X-MSS-NIL") or "" for s in subs]
        missing = [s for s, v in zip(subs, values, strict=True) if not _NIL.match(v)]
        evidence = [s.evidence() for s in (missing or subs)[:5]]
        if missing:
            return Verdict.failed(
                f"{len(missing)} message(s) sur {len(subs)} sans X-MSS-NIL valide : chaque message émis porte la "
                "référence produit Convergence du logiciel (ECO.2.4.3, SC.MSS/CONF.16).", evidence)
        seen = sorted(set(values))
        if declared is None:
            return Verdict.failed(
                f"Référence produit non déclarée à la suite : X-MSS-NIL ({', '.join(seen)}) ne peut pas être comparé "
                "à la référence Convergence du LPS ; relancez avec --product-reference RÉFÉRENCE (ECO.2.4.3).",
                evidence)
        wrong = [s for s, v in zip(subs, values, strict=True) if v != declared]
        if wrong:
            return Verdict.failed(
                f"{len(wrong)} message(s) avec X-MSS-NIL {', '.join(v for v in seen if v != declared)} au lieu de la "
                f"référence produit déclarée {declared} : X-MSS-NIL porte la référence donnée par Convergence au "
                "logiciel qui produit le message (ECO.2.4.3, SC.MSS/CONF.16).", [w.evidence() for w in wrong[:5]])
        return Verdict.passed(f"{len(subs)} message(s), tous avec X-MSS-NIL {declared}, la référence déclarée.",
                              evidence)

    return check


def check_mdn_request() -> Check:
    """The LPS can ask for a read receipt when sending (ECO.2.3.2)."""

    async def check(ctx: CaseContext) -> Verdict:
        since = time.time()
        note = await ctx.act(ctx.driver.send_message(SendRequest(to=ctx.peer, request_mdn=True)), "envoi")
        sub = await ctx.wait_submission(since, lambda s: ctx.peer.lower() in (r.lower() for r in s.recipients),
                                        ctx.bound())
        notes = [note] if note is not None else []
        if sub is None:
            return Verdict.failed(f"Aucun message envoyé à {ctx.peer} dans le délai imparti.", notes)
        evidence = [*notes, sub.evidence()]
        value = header(sub.entry.get("headers", {}), "Disposition-Notification-To")
        if not value:
            return Verdict.failed("Pas d'en-tête Disposition-Notification-To : le LPS doit permettre de demander un "
                                  "accusé de lecture (MDN) à l'émission (ECO.2.3.2 ; RFC 8098 §2.1).", evidence)
        addresses = [a for _, a in getaddresses([value]) if "@" in a]
        if not addresses:
            return Verdict.failed(f"Disposition-Notification-To sans adresse valide : {value!r} (RFC 8098 §2.1).",
                                  evidence)
        return Verdict.passed(f"Accusé de lecture demandé à {', '.join(addresses)} (ECO.2.3.2).", evidence)

    return check


def check_mdn_return() -> Check:
    """A received message asking for a read receipt gets an RFC 8098 MDN (ECO.3.1.6 / MSS/va1.14)."""

    async def check(ctx: CaseContext) -> Verdict:
        composed = sandbox_message(
            ctx, "Test de conformité : accusé de lecture demandé",
            "Bonjour,\n\nMerci d'ouvrir ce message et de renvoyer l'accusé de lecture demandé.\n",
            request_mdn=True, mdn_to=ctx.peer)
        since = time.time()
        await ctx.control.deliver(ctx.bal, composed.to_bytes())
        notes = [n for n in (await ctx.act(ctx.driver.read_new_messages(), "lecture"),
                             await ctx.act(ctx.driver.answer_mdns(), "accusé de lecture")) if n is not None]

        def is_mdn(s: Submission) -> bool:
            kind = (header(s.entry.get("headers", {}), "Content-Type") or "").lower()
            return "multipart/report" in kind and "disposition-notification" in kind

        sub = await ctx.wait_submission(since, is_mdn, ctx.bound())
        request = Evidence(title="Message déposé par le bac à sable",
                           lines=(f"Message-ID: {composed.message_id}", f"Disposition-Notification-To: {ctx.peer}"))
        if sub is None:
            return Verdict.failed(
                f"Aucun accusé de lecture (MDN, multipart/report) envoyé pour le message {composed.message_id} : le "
                "LPS doit permettre de retourner un MDN lorsqu'un message reçu le demande (ECO.3.1.6, MSS/va1.14).",
                [*notes, request])
        raw = await ctx.stored_copy(sub)
        evidence = [*notes, request, sub.evidence()]
        if raw is None:
            return Verdict.errored(f"Le MDN n'a pas été retrouvé dans la BAL {ctx.peer}.", evidence)
        report = check_message(raw)
        parsed = parse_message(raw)
        evidence.append(_findings(report.findings))
        mdn = parsed.report
        if not isinstance(mdn, MDNReport) or mdn.original_message_id != composed.message_id:
            return Verdict.failed("Le MDN ne désigne pas le message reçu (Original-Message-ID, RFC 8098 §3.2.5).",
                                  evidence)
        if not report.ok:
            return Verdict.failed("MDN non conforme : " + " ; ".join(f"{f.message} ({f.rule})" for f in report.errors),
                                  evidence)
        threaded = threading_of_mdn(sub, composed.message_id, evidence)
        if threaded.status is not Status.PASS:
            return threaded
        shown = mdn.disposition.type if mdn.disposition is not None else "?"
        return Verdict.passed(f"MDN « {shown} » renvoyé à {ctx.peer}, rattaché au message (ECO.3.1.6, ECO.2.2.2).",
                              evidence)

    return check


def check_receive_xdm(*, display: bool) -> Check:
    """The LPS receives, reads and *understands* the XDM answer of the auto-responder (ECO.2.1.2).

    Reading is seen in the journal (a FETCH of the message text after it arrived). Understanding
    is what the LPS reports for the message (:data:`~mssante.conformance._driver.Understood`: the
    builtin client returns it, an external LPS sends it with the acknowledgement of the ``read``
    step): the patient identified by the archive's METADATA.XML (INS, names; ECO.2.1.2) and the
    CDA codes integrated. With ``display`` (PER/ORG, an LPS with a user interface) the subject
    as shown must hide the ``XDM/1.0/DDM+`` prefix (ECO.3.1.3), the patient shown is the one of
    the documents (ECO.3.1.2), and a message a patient wrote (delivered from
    ``<INS>@patient.mssante.fr`` meanwhile) is told apart: ``sender_kind`` ``patient`` (ECO.3.1.1).
    """

    async def check(ctx: CaseContext) -> Verdict:
        if ctx.responder is None:
            return Verdict.errored("Ce bac à sable n'a pas de répondeur automatique XDM : la réception ne peut pas "
                                   "être jugée.")
        known = {m.uid for m in await ctx.control.list_messages(ctx.bal)}
        since = time.time()
        notes = [n for n in [await ctx.act(ctx.driver.send_message(SendRequest(to=ctx.responder)), "envoi")]
                 if n is not None]

        async def arrived() -> tuple[int, str] | None:
            for m in await ctx.control.list_messages(ctx.bal):
                sender = next((v for k, v in m.headers.items() if k.lower() == "from"), "")
                if m.uid not in known and ctx.responder is not None and ctx.responder.lower() in sender.lower():
                    return m.uid, m.headers.get("Subject", "")
            return None

        reply = await ctx.wait_for(arrived, ctx.bound())
        if reply is None:
            return Verdict.failed(f"Aucune réponse du répondeur {ctx.responder} : le LPS n'a pas envoyé de message "
                                  "ou l'envoi a échoué.", notes)
        arrival = time.time()
        expected = parse_message(await ctx.control.get_message(ctx.bal, "INBOX", reply[0]))
        from_patient = None
        if display:  # ECO.3.1.1: a message from a patient, to be shown apart from the professionals' ones
            from_patient = compose_message(
                Draft(sender=Sender(address=patient_address(SamplePatient().ins)), to=(ctx.bal,),
                      subject="Question sur mon compte rendu", text="Bonjour Docteur,\n\nMerci pour le document.\n"),
                settings=ComposeSettings(product_reference=SANDBOX_PRODUCT_REFERENCE))
            await ctx.control.deliver(ctx.bal, from_patient.to_bytes())
        understood, note = await ctx.read()
        notes += [n for n in [note] if n is not None]

        async def fetched() -> list[tuple[int, str]] | None:
            records = [r for r in await ctx.control.records(since=ctx.job_started - 3600)
                       if (r.bal or "").lower() == ctx.bal.lower() and r.protocol == "imap"]
            found = [(r.id, c) for r in records for c in body_fetches(r, since)]
            return found or None

        reads = await ctx.wait_for(fetched, ctx.bound(), asked=True)
        evidence = [*notes, Evidence(title="Réponse du répondeur automatique",
                                     lines=(f"UID {reply[0]}", f"Objet : {reply[1]}",
                                            f"Arrivée {arrival - since:.2f} s après l'envoi"))]
        if not reads:
            return Verdict.failed(
                "La réponse XDM n'a pas été lue : aucune commande FETCH du contenu (BODY[], RFC822, BINARY[]) après "
                "son arrivée ; le LPS doit récupérer le message pour intégrer le document (ECO.2.1.2).", evidence)
        evidence.append(Evidence(title="Lectures IMAP", lines=tuple(f"session #{i} : {c}" for i, c in reads[:6])))
        if understood is None and ctx.events is not None:
            understood = await ctx.wait_for(ctx.events.understood, ctx.bound(), asked=True)
        verdict = _understanding(expected, understood, display=display, evidence=evidence)
        if verdict.status is not Status.PASS or from_patient is None:
            return verdict
        return _patient_apart(from_patient.message_id, expected.message_id, understood or (), verdict)

    return check


def _patient_apart(patient_id: str, professional_id: str | None, understood: Sequence[Mapping[str, Any]],
                   verdict: Verdict) -> Verdict:
    """ECO.3.1.1: the message a patient wrote is told apart (``sender_kind``) from the professional's."""
    kinds = {str(u.get("message_id", "")).strip(): str(u.get("sender_kind") or "") for u in understood}
    evidence = [*verdict.evidence, Evidence(title="Expéditeurs compris (ECO.3.1.1)", lines=(
        f"{patient_id} (écrit par un patient) : {kinds.get(patient_id) or 'non dit'}",
        f"{professional_id} (répondeur, BAL de professionnels) : {kinds.get(professional_id or '') or 'non dit'}"))]
    if kinds.get(patient_id) != "patient" or kinds.get(professional_id or "") in (None, "", "patient"):
        return Verdict.failed(
            "Le message d'un patient n'est pas distingué de celui d'un professionnel (sender_kind « patient » "
            "attendu pour l'adresse @patient.mssante.fr, autre chose pour la BAL du répondeur) : les messages "
            "des patients et des professionnels sont présentés distinctement (ECO.3.1.1, SC.MSS/UX.25).", evidence)
    return Verdict.passed(verdict.explanation.rstrip(".") + " ; message du patient présenté à part (ECO.3.1.1).",
                          evidence)


def _understanding(expected: ParsedMessage, understood: Sequence[Mapping[str, Any]] | None, *, display: bool,
                   evidence: list[Evidence]) -> Verdict:
    archive = expected.archive
    patient = archive.patient if archive is not None else None
    if patient is None or archive is None:
        return Verdict.errored("Le message du répondeur ne porte pas de patient lisible : la compréhension ne peut "
                               "pas être jugée.", evidence)
    codes = sorted({d.cda_code for d in archive.documents if d.cda_code})
    evidence.append(Evidence(title="Ce que porte le message (METADATA.XML, CDA)", lines=(
        f"Message-ID {expected.message_id}", f"Patient : {patient.family_name} {patient.given_name}, INS {patient.ins}",
        f"Documents : {', '.join(codes)}")))
    if understood is None:
        return Verdict.failed(
            "Le LPS n'a pas dit ce qu'il a compris du message lu : le LPS intégré le rend par son API, un LPS externe "
            "l'envoie avec l'acquittement de l'étape « read » ({\"understood\": [{\"message_id\", \"patient\": "
            "{\"ins\", \"family_name\", \"given_name\"}, \"documents\", \"subject_shown\"}]}, événements "
            "--events) ; la réception d'un document XDM ne peut pas être jugée sans (ECO.2.1.2).", evidence)
    item = next((u for u in understood if str(u.get("message_id", "")).strip() == expected.message_id), None)
    evidence.append(Evidence(title="Ce que le LPS dit avoir compris",
                             lines=tuple(json.dumps(dict(u), ensure_ascii=False)[:300] for u in understood[:5])
                             or ("rien",)))
    if item is None:
        return Verdict.failed(f"Le LPS ne rend compte d'aucune lecture du message {expected.message_id} du "
                              "répondeur (ECO.2.1.2).", evidence)
    seen = item.get("patient") if isinstance(item.get("patient"), Mapping) else {}
    assert isinstance(seen, Mapping)
    if str(seen.get("ins") or "") != (patient.ins or "") or \
            str(seen.get("family_name") or "").casefold() != (patient.family_name or "").casefold():
        return Verdict.failed(
            f"Patient compris : {seen.get('family_name')} INS {seen.get('ins')} au lieu de {patient.family_name} INS "
            f"{patient.ins} : le patient se lit dans le patientId de METADATA.XML de l'archive IHE_XDM (ECO.2.1.2"
            + (", ECO.3.1.2 : nom, prénom et INS affichés)." if display else ")."), evidence)
    documents = sorted({str(d) for d in item.get("documents") or () if d})
    if not set(codes) <= set(documents):
        return Verdict.failed(f"Documents intégrés {', '.join(documents) or 'aucun'} au lieu de {', '.join(codes)} : "
                              "chaque document CDA de l'archive est intégré (ECO.2.1.2).", evidence)
    if display:
        shown = str(item.get("subject_shown") or "")
        if not shown.strip() or shown.startswith(XDM_SUBJECT_PREFIX):
            return Verdict.failed(
                f"Objet affiché « {shown} » : le préfixe {XDM_SUBJECT_PREFIX} est masqué à l'affichage, le reste de "
                "l'objet est montré (ECO.3.1.3, SC.MSS/UX.28).", evidence)
    return Verdict.passed(f"Message XDM du répondeur lu ({len(documents)} document(s)) et compris : patient "
                          f"{patient.family_name} INS {patient.ins}" + (", objet affiché sans préfixe." if display
                                                                         else "."), evidence)


def threading_verdict(sub: Submission, parent: str, ancestors: Sequence[str], what: str,
                       evidence: list[Evidence]) -> Verdict:
    """Whether ``sub`` names ``parent`` in In-Reply-To and ends References with it (ECO.2.2.2)."""
    headers = sub.entry.get("headers", {})
    in_reply_to = _IDS.findall(header(headers, "In-Reply-To") or "")
    references = _IDS.findall(header(headers, "References") or "")
    if in_reply_to != [parent]:
        return Verdict.failed(
            f"{what} ne désigne pas le message auquel elle répond : In-Reply-To {in_reply_to or 'absent'} au lieu de "
            f"{parent} (ECO.2.2.2, MSS/va1.08 ; RFC 5322 §3.6.4).", evidence)
    if not references or references[-1] != parent or any(a not in references for a in ancestors):
        return Verdict.failed(
            f"{what} a un en-tête References incomplet ({' '.join(references) or 'absent'}) : il reprend les "
            f"References du message d'origine puis son Message-ID {parent} (ECO.2.2.2 ; RFC 5322 §3.6.4).", evidence)
    return Verdict.passed(f"{what} porte In-Reply-To {parent} et References complet (ECO.2.2.2).", evidence)


def threading_of_mdn(sub: Submission, parent: str, evidence: list[Evidence]) -> Verdict:
    """The threading verdict of an MDN answering ``parent`` (ECO.2.2.2 applies to MDNs too)."""
    return threading_verdict(sub, parent, (), "L'accusé de lecture", evidence)


def check_sent_copy() -> Check:
    """The sent message is filed in the BAL's Sent folder (IMAP APPEND; ref2-requirements.md §5.8)."""

    async def check(ctx: CaseContext) -> Verdict:
        got = await ctx.document_message()
        if got is None:
            return _no_document(ctx)
        sub, _ = got
        wanted = sub.message_id

        async def probe() -> bool | None:
            return True if any(m.message_id == wanted for m in await ctx.control.list_messages(ctx.bal, "Sent")) \
                else None

        found = await ctx.wait_for(probe, ctx.bound())
        imap = [r for r in await ctx.control.records(since=sub.at - 1) if r.protocol == "imap"
                and (r.bal or "").lower() == ctx.bal.lower()]
        evidence = [sub.evidence(), *(session_evidence(r) for r in imap[:2])]
        if not found:
            return Verdict.failed(
                f"Le message {wanted} n'est pas dans le dossier « Sent » de la BAL : l'opérateur ne le copie pas lors "
                "d'une soumission par l'API LPS, le LPS doit l'y déposer (IMAP APPEND).", evidence)
        return Verdict.passed(f"Le message {wanted} est classé dans « Sent ».", evidence)

    return check
