"""Fixtures: a stand-in for the XDM reader, and message builders.

The stand-in maps known archive bytes to :class:`ArchiveInfo` values, so that composing,
parsing and checking can be tested without depending on the XDM package (the end-to-end
tests with real archives are in ``test_xdm_end_to_end.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from mssante.errors import ContentError
from mssante.message import (
    ArchiveInfo,
    ComposeSettings,
    DocumentInfo,
    Draft,
    PatientInfo,
    PdfCompanion,
    Sender,
    _xdm_bridge,
    pdf_filename,
    professional_label,
)

NOW = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
SETTINGS = ComposeSettings(product_reference="DEV935997")
SENDER = Sender(
    address="jean.dupont@hopital-test.mssante.fr",
    label=professional_label(title="Dr", given_name="Jean", family_name="Dupont", unit="Biologie"),
)
PATIENT_ADDRESS = "279035121518989@patient.mssante.fr"
PRO_ADDRESS = "marie.curie@cabinet-test.mssante.fr"
PDF = b"%PDF-1.4\n% fake PDF/A-1 companion\n%%EOF\n"

PATIENT = PatientInfo(family_name="Pat-Trois", given_name="Hélène", birth_date=date(1979, 3, 28), ins="279035121518989")
ARCHIVE_ONE = b"PK\x03\x04 fake archive: one CR-BIO"
ARCHIVE_TWO = b"PK\x03\x04 fake archive: CR-BIO + VSM"
ARCHIVE_NO_CDA = b"PK\x03\x04 fake archive: no CDA"
ARCHIVE_TWO_PATIENTS = b"PK\x03\x04 fake archive: two patients"
ARCHIVE_BROKEN = b"PK\x03\x04 broken"

CR_BIO = DocumentInfo(
    path="IHE_XDM/SUBSET01/DOC0001.XML",
    cda_code="11502-2",
    display_name="CR d'examens biologiques médicaux",
    act_date=date(2024, 4, 30),
)
VSM = DocumentInfo(
    path="IHE_XDM/SUBSET01/DOC0002.XML",
    cda_code="60591-5",
    display_name="Synthèse médicale",
    act_date=date(2024, 4, 29),
)

FAKE_ARCHIVES = {
    ARCHIVE_ONE: ArchiveInfo(documents=(CR_BIO,), has_qualified_ins=True, patient=PATIENT),
    ARCHIVE_TWO: ArchiveInfo(documents=(CR_BIO, VSM), has_qualified_ins=False, patient=PATIENT),
    ARCHIVE_NO_CDA: ArchiveInfo(documents=(DocumentInfo(path="IHE_XDM/SUBSET01/DOC0001.PDF"),), patient=None),
    ARCHIVE_TWO_PATIENTS: ArchiveInfo(documents=(CR_BIO, VSM), has_qualified_ins=False, patient=None),
}

PDF_NAME = pdf_filename(
    act_date=date(2024, 4, 30),
    document_type="CR d'examens biologiques médicaux",
    family_name="Pat-Trois",
    given_name="Hélène",
)


@dataclass
class FakeXDM:
    """Records the archives it was asked to read."""

    calls: list[bytes] = field(default_factory=list)

    def inspect(self, data: bytes) -> ArchiveInfo:
        self.calls.append(data)
        try:
            return FAKE_ARCHIVES[data]
        except KeyError:
            raise ContentError("not an XDM archive (fake reader)") from None


@pytest.fixture
def fake_xdm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeXDM]:
    fake = FakeXDM()
    monkeypatch.setattr(_xdm_bridge, "inspect_archive", fake.inspect)
    yield fake


def xdm_draft(**changes: object) -> Draft:
    """A draft to a patient with a one-document archive and its PDF."""
    values: dict[str, object] = {
        "sender": SENDER,
        "to": (PATIENT_ADDRESS,),
        "text": "Bonjour,\nvoici le compte rendu de vos analyses.\n",
        "xdm_archive": ARCHIVE_ONE,
        "pdfs": (PdfCompanion(content=PDF, filename=PDF_NAME),),
    }
    values.update(changes)
    return Draft(**values)  # type: ignore[arg-type]
