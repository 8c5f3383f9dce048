"""The XDM auto-responder of the sandbox (the ANS webinar's "répondeur automatique").

Every message sent to a responder address (``vsm@<domain>``, ``crbio-xdm@<domain>`` by
default) is answered with a Référentiel #2 message carrying an ``IHE_XDM.ZIP`` with a test
document — a VSM (synthèse médicale) or a CR de biologie — and its PDF companion, with correct
``X-MSS-*`` headers. When the received message asked for a read receipt, an MDN
(RFC 8098, ``automatic-action/MDN-sent-automatically; processed``) is sent back too.

The document concerns the patient of the received archive when there is one with an INS (so
an LPS can check that its patient comes back), else the ANS test patient.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Literal

from mssante.cda import SamplePatient, generate_cr_bio, generate_vsm, parse_cda_header
from mssante.errors import MssanteError
from mssante.message import (
    ComposeSettings,
    Draft,
    ParsedMessage,
    PdfCompanion,
    Sender,
    compose_message,
    generate_mdn,
    parse_message,
    pdf_filename,
)
from mssante.sandbox.config import SandboxConfig
from mssante.sandbox.fronts.delivery import OutgoingMessage, Responder
from mssante.xdm import build_archive, read_archive

__all__ = ["RESPONDER_PRODUCT_REFERENCE", "xdm_responder"]

log = logging.getLogger(__name__)

#: X-MSS-NIL of the sandbox's own messages (ECO.2.4.3 asks for one on every message).
RESPONDER_PRODUCT_REFERENCE = "SANDBOX0001"

_LABELS = {
    "vsm": ("Répondeur automatique VSM", "Synthèse médicale"),
    "crbio": ("Répondeur automatique CR de biologie", "CR de biologie"),
}


def _patient_of(received: ParsedMessage) -> SamplePatient:
    patient = None
    for part in received.attachments:
        if (part.filename or "").upper() == "IHE_XDM.ZIP":
            try:
                patient = read_archive(part.content).patient
            except MssanteError:
                patient = None
            break
    if patient is None or patient.ins is None or not patient.birth_family or not patient.birth_time:
        return SamplePatient()
    try:
        birth = date(int(patient.birth_time[:4]), int(patient.birth_time[4:6]), int(patient.birth_time[6:8]))
    except ValueError:
        return SamplePatient()
    return SamplePatient(
        ins=patient.ins.matricule,
        ins_oid=patient.ins.oid,
        birth_family=patient.birth_family,
        given_names=patient.given_names or patient.first_given or "",
        gender=patient.gender or "U",
        birth_date=birth,
        birthplace_code=patient.birthplace_code or "99999",
        ipp=None,
    )


def _pdf_companion(cda: bytes, when: datetime) -> PdfCompanion | None:
    try:
        render = importlib.import_module("mssante.pdf").render_cda_pdf
    except ImportError:  # the PDF renderer needs its optional dependencies
        return None
    header = parse_cda_header(cda)
    patient = header.patient
    act = when.date()
    name = pdf_filename(
        act_date=act,
        document_type=(header.code.display_name if header.code and header.code.display_name else "Document"),
        family_name=(patient.birth_family if patient and patient.birth_family else "INCONNU"),
        given_name=(patient.first_given if patient and patient.first_given else "INCONNU"),
    )
    content: bytes = render(cda, now=when)
    return PdfCompanion(content=content, filename=name)


def build_reply(
    received: ParsedMessage, *, own_address: str, to: str, kind: Literal["vsm", "crbio"], now: datetime
) -> bytes:
    """Compose the answer: an XDM archive with a generated document for the received patient.

    Raises:
        ContentError: the generated document or archive is invalid (a bug, logged by the caller).
    """
    patient = _patient_of(received)
    generate = generate_vsm if kind == "vsm" else generate_cr_bio
    cda = generate(effective_time=now, patient=patient)
    archive = build_archive([cda], now=now)
    label, what = _LABELS[kind]
    pdf = _pdf_companion(cda, now)
    draft = Draft(
        sender=Sender(address=own_address, label=label),
        to=(to,),
        text=(
            f"Bonjour,\n\nVoici le document de test « {what} » envoyé par le répondeur automatique "
            "du bac à sable MSSanté, en réponse à votre message.\n\nCe message est généré automatiquement.\n"
        ),
        xdm_archive=archive,
        pdfs=(pdf,) if pdf is not None else (),
        in_reply_to=received.message_id,
        references=(*received.references, *([received.message_id] if received.message_id else [])),
    )
    composed = compose_message(draft, settings=ComposeSettings(product_reference=RESPONDER_PRODUCT_REFERENCE), now=now)
    return composed.to_bytes()


def xdm_responder(config: SandboxConfig, kind: str) -> Responder:
    """Return the responder callable for one address answering with ``kind`` ("vsm" or "crbio").

    Raises:
        ValueError: ``kind`` is not "vsm" or "crbio".
    """
    if kind not in _LABELS:
        raise ValueError(f"unknown responder kind {kind!r}")
    doc_kind: Literal["vsm", "crbio"] = "vsm" if kind == "vsm" else "crbio"
    settings = ComposeSettings(product_reference=RESPONDER_PRODUCT_REFERENCE)

    async def respond(envelope_from: str, own_address: str, data: bytes) -> Sequence[OutgoingMessage]:
        if not envelope_from or config.bal(envelope_from) is None:
            return ()
        received = parse_message(data)
        if received.report is not None:
            return ()
        now = datetime.now(UTC).replace(microsecond=0)
        out = [
            OutgoingMessage(
                sender=own_address,
                recipients=(envelope_from,),
                data=build_reply(received, own_address=own_address, to=envelope_from, kind=doc_kind, now=now),
            )
        ]
        if received.mdn_requested:
            try:
                mdn = generate_mdn(
                    received, reporter=own_address, settings=settings, disposition="processed",
                    action_mode="automatic-action", sending_mode="MDN-sent-automatically",
                )
            except MssanteError as exc:
                log.info("no MDN for %s: %s", received.message_id, exc.message)
            else:
                out.append(OutgoingMessage(sender="", recipients=mdn.recipients, data=mdn.to_bytes()))
        return out

    return respond
