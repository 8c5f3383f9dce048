"""BAL APP: a laboratory system sends results, a hospital system integrates them (synchronous API).

Run against a running sandbox (``mssante sandbox up``)::

    .venv/bin/python docs/examples/app_lab_sender.py .sandbox/sandbox.json

Two automated systems, each with a BAL APP and its structure's IGC Santé ORG AUTH_CLI
certificate (mutual TLS on the priority-20 front, then SASL PLAIN with the BAL address):

* the laboratory's SIL (``sil.labo@``) sends a CR de biologie (IHE_XDM.ZIP + PDF/A-1) to the
  hospital's DPI, asking for a read receipt and delivery notifications;
* the DPI (``dpi.hopital@``) also writes to the auto-responder ``crbio-xdm@``, which answers with
  a CR de biologie, as the ANS's responder does; the DPI then integrates every XDM message it
  receives (patient INS, CDA code) and answers read-receipt requests automatically
  (``automatic-action/MDN-sent-automatically; processed``, ECO.3.1.6);
* the SIL finally reads its DSN and MDN.

The synchronous :class:`~mssante.client.SyncMailbox` suits such batch jobs; it runs the async
client in a background thread and has the same methods and errors.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import sandbox_env
from cryptography import x509

from mssante.cda import generate_cr_bio, parse_cda_header
from mssante.client import SyncMailbox
from mssante.message import (
    ComposeSettings,
    Draft,
    DSNReport,
    DSNRequest,
    MDNReport,
    PdfCompanion,
    Sender,
    compose_message,
    generate_mdn,
    organisation_label,
    pdf_filename,
)
from mssante.pdf import render_cda_pdf
from mssante.xdm import build_archive, read_archive

COMPOSE = ComposeSettings(product_reference=sandbox_env.PRODUCT_REFERENCE)  # X-MSS-NIL (ECO.2.4.3)


def open_app_mailbox(info: dict[str, Any], address: str) -> SyncMailbox:
    """A BAL APP: the ORG AUTH_CLI certificate authenticates; discovery picks the priority-20 front."""
    entry = next(b for b in info["bals"] if b["address"] == address)
    certificate = sandbox_env.certificate(entry)
    subject = x509.load_pem_x509_certificate(certificate.cert.read_bytes()).subject.rfc4514_string()
    print(f"{address}: certificat {subject}")  # CN=<libre>,OU=<IdNat_Struct>,O=<raison sociale>,ST=...,C=FR
    return SyncMailbox(
        address,
        kind="APP",
        credentials=certificate,
        resolver=sandbox_env.resolver(info),
        tls=sandbox_env.trust(info),
        product_reference=sandbox_env.PRODUCT_REFERENCE,
        options=sandbox_env.options(info, poll_interval=1.0),
    )


def results_message(lab: str, to: str) -> Draft:
    """The lab's CR de biologie (CDA R2 N3) in IHE_XDM.ZIP, with its PDF/A-1 companion."""
    now = datetime.now(UTC).replace(microsecond=0)
    cda = generate_cr_bio(effective_time=now, results=(
        ("2345-7", "Glucose", "5,2", "mmol/L", "4,1 - 5,9"),
        ("718-7", "Hémoglobine", "13,8", "g/dL", "12,0 - 16,0"),
    ))
    header = parse_cda_header(cda)
    assert header.patient is not None and header.code is not None
    act = header.service_events[0].start or ""
    pdf_name = pdf_filename(
        act_date=date(int(act[:4]), int(act[4:6]), int(act[6:8])),
        document_type=header.code.display_name or "CR de biologie",
        family_name=header.patient.birth_family or "",
        given_name=header.patient.first_given or "",
        record_number="PRESC-0042",  # for biology, the prescription number (ECO.2.1.6)
    )
    return Draft(
        sender=Sender(address=lab, label=organisation_label("Laboratoire de biologie test")),
        to=(to,),
        text="Résultats d'analyses de biologie médicale (message automatique).\n",
        xdm_archive=build_archive([cda], now=now, intended_recipients=(to,)),
        pdfs=(PdfCompanion(content=render_cda_pdf(cda, now=now), filename=pdf_name),),
        request_mdn=True,
        dsn=DSNRequest(notify=("SUCCESS", "FAILURE")),
    )


def integrate(dpi: SyncMailbox, expected: set[str], deadline: float) -> None:
    """The DPI's batch: integrate unseen XDM messages until the ``expected`` ones are done."""
    while expected and time.monotonic() < deadline:
        for summary in dpi.list("INBOX", unseen_only=True):
            message = dpi.fetch(summary.uid)
            parsed = message.parsed
            xdm = parsed.xdm_attachments
            if parsed.report is None and xdm:
                archive = read_archive(xdm[0].content)  # bounded, safe reading (no XXE, no zip bomb)
                patient = archive.patients[0] if archive.patients else None
                ins = patient.ins.matricule if patient and patient.ins else "?"
                print(f"DPI : intègre {archive.cda_codes} pour INS {ins} ({parsed.sender})")
                if parsed.mdn_requested:
                    dpi.send(generate_mdn(parsed, reporter=dpi.address, settings=COMPOSE, disposition="processed",
                                          action_mode="automatic-action", sending_mode="MDN-sent-automatically"))
            dpi.flag(summary.uid, seen=True)
            expected.discard(parsed.message_id or "")
            expected.discard(parsed.in_reply_to or "")
        time.sleep(0.5)
    if expected:
        raise TimeoutError(f"not received: {expected}")


def main() -> None:
    info = sandbox_env.load(sandbox_env.sandbox_file())
    lab_address = "sil.labo@" + info["domain"]
    dpi_address = "dpi.hopital@" + info["domain"]
    deadline = time.monotonic() + 60

    with open_app_mailbox(info, lab_address) as lab, open_app_mailbox(info, dpi_address) as dpi:
        sent = lab.send(results_message(lab_address, dpi_address))
        print(f"SIL : CR envoyé à {dpi_address} ({sent.reply})")

        # Test reception of an XDM archive: the auto-responder answers any message (ANS webinar).
        ask = compose_message(Draft(sender=Sender(address=dpi_address), to=("crbio-xdm@" + info["domain"],),
                                    subject="Test de réception", text="Merci de répondre."), settings=COMPOSE)
        dpi.send(ask)

        integrate(dpi, {sent.message_id, ask.message_id}, deadline)

        reports: dict[str, str] = {}
        while len(reports) < 2 and time.monotonic() < deadline:
            for summary in lab.list("INBOX", unseen_only=True):
                report = lab.fetch(summary.uid).parsed.report
                if isinstance(report, MDNReport) and report.original_message_id == sent.message_id:
                    reports["MDN"] = str(report.disposition)
                elif isinstance(report, DSNReport) and report.original_envelope_id == sent.message_id.strip("<>"):
                    reports["DSN"] = ", ".join(f"{r.action} {r.status}" for r in report.recipients)
                lab.flag(summary.uid, seen=True)
            time.sleep(0.5)
        print("SIL : accusés reçus", reports)
        if len(reports) < 2:
            raise TimeoutError("the DSN or the MDN did not arrive")


if __name__ == "__main__":
    main()
