"""Realistic MSSanté inputs built with our own generators (no file from /work/shared).

Shared by the hardening tests and by ``benchmarks/fuzz.py`` (its seed corpus).
"""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone

from mssante.cda import SamplePatient, generate_cr_bio, generate_vsm
from mssante.message import (
    ComposeSettings,
    Draft,
    PdfCompanion,
    Sender,
    compose_message,
    pdf_filename,
    professional_label,
)
from mssante.xdm import build_archive

NOW = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
PARIS = timezone(timedelta(hours=2))
PATIENT = SamplePatient()
SENDER = Sender(
    address="jean.dupont@hopital-test.mssante.fr",
    label=professional_label(title="Dr", given_name="Jean", family_name="Dupont", unit="Biologie"),
)
PDF = b"%PDF-1.4\n% PDF/A-1 companion\n%%EOF\n"
CDA_PATH = "IHE_XDM/SUBSET01/DOC0001.XML"


def cda_documents() -> list[bytes]:
    """A CR-BIO and a VSM about the same patient."""
    when = datetime(2024, 4, 30, 16, 5, 27, tzinfo=PARIS)
    return [generate_cr_bio(effective_time=when), generate_vsm(effective_time=when - timedelta(days=1))]


def archive(documents: list[bytes] | None = None) -> bytes:
    """An IHE_XDM.ZIP built by :func:`mssante.xdm.build_archive`."""
    return build_archive(documents or cda_documents(), now=NOW)


def replace_entry(data: bytes, name: str, content: bytes) -> bytes:
    """Copy an archive with one entry's bytes replaced (hash and size in METADATA.XML are not updated)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, content if info.filename == name else src.read(info))
    return out.getvalue()


def message(xdm: bytes | None = None, *, to: str | None = None) -> bytes:
    """A composed MSSanté message to a patient carrying ``xdm`` (default :func:`archive`) and a PDF."""
    name = pdf_filename(
        act_date=date(2024, 4, 30),
        document_type="CR d'examens biologiques",
        family_name=PATIENT.birth_family,
        given_name=PATIENT.given_names.split()[0],
    )
    draft = Draft(
        sender=SENDER,
        to=(to or f"{PATIENT.ins}@patient.mssante.fr",),
        text="Bonjour,\nvoici le compte rendu de vos analyses.\n",
        xdm_archive=xdm if xdm is not None else archive(),
        pdfs=(PdfCompanion(content=PDF, filename=name),),
        end_of_exchange=True,
        request_mdn=True,
    )
    return compose_message(draft, settings=ComposeSettings(product_reference="DEV935997"), now=NOW).to_bytes()


def message_carrying(xdm: bytes) -> bytes:
    """:func:`message` whose IHE_XDM.ZIP attachment is replaced by ``xdm`` after composing.

    ``compose_message`` refuses an unreadable archive: this gives the message a receiver would get.
    """
    good = archive()
    composed = message(good)
    old = base64.encodebytes(good).replace(b"\n", b"\r\n")
    assert old in composed
    return composed.replace(old, base64.encodebytes(xdm).replace(b"\n", b"\r\n"))
