"""Message cases: what the LPS sends (X-MSS headers, XDM subject, PDF, UTF-8, MDN) and receives.

Sent messages are judged on the copy delivered to the recipient's mailbox in the sandbox, with
:func:`mssante.message.check_message` (each finding names its rule), plus the envelope and
headers the submission front journaled. Received messages are judged from the IMAP commands
of the LPS (a FETCH of the message text after it arrived).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from email.utils import getaddresses

from mssante.conformance._context import CaseContext
from mssante.conformance._driver import SendRequest
from mssante.conformance._judge import Submission, body_fetches, header, session_evidence
from mssante.conformance._model import Check, Evidence, Verdict
from mssante.message import (
    ComposeSettings,
    Draft,
    MDNReport,
    Sender,
    check_message,
    compose_message,
    parse_message,
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
]

#: X-MSS-NIL of the messages the suite itself sends to the LPS (ECO.2.4.3 applies to them too).
SANDBOX_PRODUCT_REFERENCE = "SANDBOX0001"
_NIL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _findings(findings: Sequence[MessageFinding]) -> Evidence:
    lines = tuple(f"[{f.severity}] {f.rule} : {f.message}" for f in findings) or ("aucune remarque",)
    return Evidence(title="Contrôle du message (mssante check)", lines=lines)


def _no_document(ctx: CaseContext) -> Verdict:
    notes = [n for n in ctx.shared.get("notes", []) if isinstance(n, Evidence)]
    return Verdict.failed(
        f"Aucun message avec document (IHE_XDM.ZIP) envoyé par le LPS à {ctx.peer} dans le délai imparti.", notes)


def check_document_rules(rules: tuple[str, ...], summary_fr: str) -> Check:
    """Judge the document message against ``rules`` (ECO ids): any error finding of them fails.

    Raises:
        Nothing.
    """

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
    """X-MSS-NIL on every message sent during the job (ECO.2.4.3 / SC.MSS/CONF.16).

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        if await ctx.document_message() is None:
            return _no_document(ctx)
        subs = await ctx.submissions(ctx.job_started)
        missing = [s for s in subs if not _NIL.match(header(s.entry.get("headers", {}), "X-MSS-NIL") or "")]
        evidence = [s.evidence() for s in (missing or subs)[:5]]
        if missing:
            return Verdict.failed(
                f"{len(missing)} message(s) sur {len(subs)} sans X-MSS-NIL valide : chaque message émis porte la "
                "référence produit Convergence du logiciel (ECO.2.4.3, SC.MSS/CONF.16).", evidence)
        values = sorted({header(s.entry.get("headers", {}), "X-MSS-NIL") or "" for s in subs})
        return Verdict.passed(f"{len(subs)} message(s), tous avec X-MSS-NIL ({', '.join(values)}).", evidence)

    return check


def check_mdn_request() -> Check:
    """The LPS can ask for a read receipt when sending (ECO.2.3.2).

    Raises:
        Nothing.
    """

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
    """A received message asking for a read receipt gets an RFC 8098 MDN (ECO.3.1.6 / MSS/va1.14).

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        composed = compose_message(
            Draft(sender=Sender(address=ctx.peer, label="Conformité MSSanté"), to=(ctx.bal,),
                  subject="Test de conformité : accusé de lecture demandé",
                  text="Bonjour,\n\nMerci d'ouvrir ce message et de renvoyer l'accusé de lecture demandé.\n",
                  request_mdn=True, mdn_to=ctx.peer),
            settings=ComposeSettings(product_reference=SANDBOX_PRODUCT_REFERENCE))
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
        shown = mdn.disposition.type if mdn.disposition is not None else "?"
        return Verdict.passed(f"MDN « {shown} » renvoyé à {ctx.peer} (ECO.3.1.6).", evidence)

    return check


def check_receive_xdm() -> Check:
    """The LPS receives and reads (FETCH of the text) the XDM answer of the auto-responder.

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        if ctx.responder is None:
            return Verdict.skipped("Ce bac à sable n'a pas de répondeur automatique XDM.")
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
        notes += [n for n in [await ctx.act(ctx.driver.read_new_messages(), "lecture")] if n is not None]

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
        return Verdict.passed(f"Message XDM du répondeur reçu et lu ({len(reads)} FETCH du contenu).", evidence)

    return check


def check_sent_copy() -> Check:
    """The sent message is filed in the BAL's Sent folder (IMAP APPEND; ref2-requirements.md §5.8).

    Raises:
        Nothing.
    """

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
