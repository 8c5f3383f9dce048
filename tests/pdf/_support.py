"""Shared test helpers: the ANS samples, generated documents, N1 builders, text extraction with pdftotext.

ReportLab is needed to render; pikepdf (structure checks) and poppler's ``pdftotext`` (text checks) are
test tools. A missing one skips the tests that need it, with the reason in the report.
"""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from mssante.cda import generate_cr_bio, generate_vsm
from tests.xdm._util import SAMPLES, SAMPLES_ABSENT

NOW = datetime(2024, 6, 3, 9, 15, tzinfo=UTC)
SAMPLE_NAMES = ("VSM_1.4_2022.01.xml", "BIO-CR-BIO_2021.01_Microbiologie_V1.xml")


def sample(name: str) -> bytes:
    """Bytes of an ANS sample (skip when shared/ is not beside the repository)."""
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(SAMPLES_ABSENT)
    return path.read_bytes()


def generated(kind: str) -> bytes:
    """A generated CR-BIO or VSM for the default test patient."""
    if kind == "cr-bio":
        return generate_cr_bio(effective_time=NOW)
    return generate_vsm(effective_time=NOW)


def with_body(body: str, *, base: bytes | None = None) -> bytes:
    """A generated VSM whose ``structuredBody`` component is replaced by ``body`` (an XML fragment)."""
    doc = (base or generate_vsm(effective_time=NOW)).decode("utf-8")
    start = doc.index("<component><structuredBody>")
    end = doc.index("</structuredBody></component>") + len("</structuredBody></component>")
    return (doc[:start] + body + doc[end:]).encode("utf-8")


def narrative(text_xml: str, title: str = "Section de test") -> bytes:
    """A VSM with one section whose ``text`` is ``text_xml``."""
    return with_body(
        f"<component><structuredBody><component><section><title>{title}</title>"
        f"<text>{text_xml}</text></section></component></structuredBody></component>"
    )


def n1(payload: bytes | str, media: str, *, b64: bool = True, extra: str = "") -> bytes:
    """A level-1 CDA whose ``nonXMLBody/text`` carries ``payload``."""
    if b64:
        data = base64.encodebytes(payload if isinstance(payload, bytes) else payload.encode()).decode()
        text = f'<text mediaType="{media}" representation="B64"{extra}>{data}</text>'
    else:
        raw = payload.decode() if isinstance(payload, bytes) else payload
        text = f'<text mediaType="{media}"{extra}>{raw}</text>'
    return with_body(f"<component><nonXMLBody>{text}</nonXMLBody></component>")


@functools.cache
def _pdftotext_path() -> str | None:
    return shutil.which("pdftotext")


def pdftotext(pdf: bytes) -> str:
    """Text of ``pdf`` as poppler extracts it, white space collapsed (skip without poppler-utils)."""
    exe = _pdftotext_path()
    if exe is None:
        pytest.skip("pdftotext not installed (Debian package poppler-utils)")
    out = subprocess.run([exe, "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True, timeout=30)
    return " ".join(out.stdout.decode("utf-8").split())


@functools.cache
def rendered(name: str) -> bytes:
    """Render a sample (by file name) or a generated document (``cr-bio``/``vsm``) once per session."""
    from mssante.pdf import render_cda_pdf

    cda = generated(name) if name in ("cr-bio", "vsm") else sample(name)
    return render_cda_pdf(cda, now=NOW)


ALL_DOCS = (*SAMPLE_NAMES, "cr-bio", "vsm")
