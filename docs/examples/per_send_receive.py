"""BAL PER: sign in with Pro Santé Connect, send a CR with its XDM archive and PDF/A, receive the answers.

Run against a running sandbox (``mssante sandbox up``)::

    .venv/bin/python docs/examples/per_send_receive.py .sandbox/sandbox.json

What it shows (Référentiel #2 ids in brackets):

1. PSC login by CIBA on the server side of an LPS (the professional approves on their e-CPS;
   the sandbox approves after 2 s). The :class:`~mssante.psc.PSCSession` is the token source:
   tokens stay in memory and are refreshed ahead of expiry [ECO.1.2.5].
2. The servers are found by DNS SRV, priority 10 = the PSC front [ECO.1.1.9]; TLS is checked
   against the IGC Santé anchors with the CRL, failing closed [ECO.1.1.5-7, ECO.1.1.10].
3. A CR de biologie (CDA R2) goes out in ``IHE_XDM.ZIP`` with its PDF/A-1 companion; the
   subject and the X-MSS headers are computed [ECO.2.1.1, ECO.2.1.3, ECO.2.1.6, ECO.2.4.1-3],
   with a read receipt [ECO.2.3.2] and delivery notifications [ECO.2.3.1] requested.
4. The auto-responder ``vsm@`` answers with a VSM in an XDM archive; the operator sends a DSN,
   the responder an MDN. They arrive through IDLE (:meth:`Mailbox.watch`).
5. Every action is traced in a JSON Lines file [ECO.4.1.1, ECO.4.1.2].
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import sandbox_env

from mssante.cda import generate_cr_bio, parse_cda_header
from mssante.client import Mailbox, ReceivedMessage, WatchState
from mssante.message import (
    ComposeSettings,
    Draft,
    DSNReport,
    DSNRequest,
    MDNReport,
    PdfCompanion,
    Sender,
    check_message,
    generate_mdn,
    pdf_filename,
    professional_label,
)
from mssante.pdf import render_cda_pdf
from mssante.psc import PSCClient, PSCSession, PSCSettings
from mssante.trace import JSONLinesSink
from mssante.xdm import build_archive

#: For messages composed outside a Mailbox (here: MDNs). X-MSS-NIL goes on every message (ECO.2.4.3).
COMPOSE = ComposeSettings(product_reference=sandbox_env.PRODUCT_REFERENCE)


# -- 1. Pro Santé Connect ----------------------------------------------------------------------
async def sign_in(psc: PSCClient, national_id: str) -> PSCSession:
    """CIBA: PSC pushes a request to the professional's e-CPS; we poll until they approve."""
    request = await psc.start_ciba(national_id)
    print(f"Validez la demande sur votre e-CPS (code affiché : {request.binding_message})")
    tokens = await psc.wait_ciba(request, timeout=60)
    return psc.open_session(tokens)  # a TokenSource: access tokens refreshed ahead of expiry


# -- 3. the message ------------------------------------------------------------------------------
def lab_report_draft(sender: str, label: str, to: str) -> Draft:
    """A CR de biologie in IHE_XDM.ZIP plus its PDF/A-1 companion; headers are computed from the archive."""
    now = datetime.now(UTC).replace(microsecond=0)
    cda = generate_cr_bio(effective_time=now)  # your software produces its own CDA R2 document
    header = parse_cda_header(cda)
    act = header.service_events[0].start or header.effective_time or ""
    assert header.patient is not None and header.code is not None
    pdf = PdfCompanion(
        content=render_cda_pdf(cda, now=now),  # PDF/A-1b generated from the CDA (ECO.2.1.5)
        filename=pdf_filename(  # ECO.2.1.6: <date>_<type>_<NOM>_<prénom>.pdf
            act_date=date(int(act[:4]), int(act[4:6]), int(act[6:8])),
            document_type=header.code.display_name or "Document",
            family_name=header.patient.birth_family or "",
            given_name=header.patient.first_given or "",
        ),
    )
    return Draft(
        sender=Sender(address=sender, label=label),  # ECO.2.2.7 display label
        to=(to,),
        text="Bonjour,\n\nVeuillez trouver ci-joint le compte rendu de biologie.\n\nBien cordialement,\n",
        xdm_archive=build_archive([cda], now=now),  # subject, X-MSS-CODECDA and X-MSS-INS come from it
        pdfs=(pdf,),
        request_mdn=True,  # Disposition-Notification-To (ECO.2.3.2)
        dsn=DSNRequest(),  # NOTIFY=SUCCESS,FAILURE,DELAY, RET=HDRS, ORCPT (ECO.2.3.1)
    )


# -- 4. what comes back ------------------------------------------------------------------------------
async def handle(box: Mailbox, message: ReceivedMessage) -> str:
    """Sort one received message: DSN, MDN, or a message with health documents."""
    parsed = message.parsed
    if isinstance(parsed.report, DSNReport):
        states = ", ".join(f"{r.final_recipient}: {r.action} {r.status}" for r in parsed.report.recipients)
        return f"DSN  ({states})"
    if isinstance(parsed.report, MDNReport):
        return f"MDN  ({parsed.report.disposition}) pour {parsed.report.original_message_id}"
    report = check_message(message.raw)  # the Référentiel #2 rules, as `mssante check` applies them
    patient = parsed.archive.patient if parsed.archive else None
    if parsed.mdn_requested and not parsed.end_of_exchange:  # ECO.3.1.6: answer a read receipt request
        mdn = generate_mdn(parsed, reporter=box.address, settings=COMPOSE)
        await box.send(mdn)
    await box.flag(message.uid, seen=True)
    who = f"{patient.family_name} {patient.given_name} INS {patient.ins}" if patient else "sans patient"
    return (f"XDM  {parsed.subject!r} X-MSS-CODECDA={parsed.mss.codecda} ({who}); "
            f"{len(parsed.pdf_attachments)} PDF; contrôle Réf. #2 : {'OK' if report.ok else report.errors}")


async def main() -> None:
    info = sandbox_env.load(sandbox_env.sandbox_file())
    per = sandbox_env.bal(info, "PER")
    national_id = per["holders"][0]
    professional = next(p for p in info["professionals"] if p["national_id"] == national_id)
    traces_file = Path(tempfile.mkdtemp(prefix="mssante-traces-")) / "traces.jsonl"

    async with PSCClient(PSCSettings.from_sandbox(info)) as psc:
        session = await sign_in(psc, national_id)
        print(f"Connecté à Pro Santé Connect : {session.national_id}")
        async with Mailbox(
            per["address"],
            kind="PER",
            credentials=session,  # XOAUTH2 with the PSC access token (ECO.1.2.1)
            resolver=sandbox_env.resolver(info),  # production: None (system DNS)
            tls=sandbox_env.trust(info),
            traces=JSONLinesSink(traces_file),
            product_reference=sandbox_env.PRODUCT_REFERENCE,  # X-MSS-NIL (ECO.2.4.3)
            options=sandbox_env.options(info),
        ) as box:
            # Watch from the newest UID present now, so nothing that arrives after the send is missed.
            newest = await box.list("INBOX", limit=1)
            state = WatchState(uidvalidity=newest[0].uidvalidity if newest else None,
                               last_uid=newest[0].uid if newest else 0)

            label = professional_label(given_name=professional["given_name"], family_name=professional["family_name"])
            draft = lab_report_draft(box.address, label, f"vsm@{info['domain']}")
            sent = await box.send(draft)
            print(f"Envoyé {sent.message_id} : {sent.reply} (copie dans {sent.sent_folder})")

            seen: list[str] = []
            async with asyncio.timeout(60), contextlib.aclosing(box.watch(state=state)) as arrivals:
                async for summary in arrivals:  # IDLE on a connection of its own
                    message = await box.fetch(summary.uid)
                    seen.append(await handle(box, message))
                    print("Reçu", seen[-1])
                    if {kind[:3] for kind in seen} >= {"DSN", "MDN", "XDM"}:
                        break
        await psc.logout(session)  # ends the PSC session; a mailbox still open would be closed (ECO.1.2.6)

    print(f"Traces ({traces_file}):")
    for line in traces_file.read_text(encoding="utf-8").splitlines()[:6]:
        print("  ", line)


if __name__ == "__main__":
    asyncio.run(main())
