"""Build → read → validate on the ANS samples and on generated documents, with the expected metadata."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mssante.cda import generate_cr_bio, generate_vsm
from mssante.xdm import (
    XDMArchive,
    build_archive,
    read_archive,
    read_metadata,
    validate_archive,
    write_metadata,
    xmss_headers,
)
from tests.xdm._util import CRBIO, VSM, needs_samples, read_entry

pytestmark = needs_samples

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
INS_CX = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"


def _ids() -> Callable[[], uuid.UUID]:
    counter = iter(range(1, 1000))
    return lambda: uuid.UUID(int=next(counter))


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    return build_archive([CRBIO.read_bytes(), VSM.read_bytes()], now=NOW)


@pytest.fixture(scope="module")
def archive(archive_bytes: bytes) -> XDMArchive:
    return read_archive(archive_bytes)


def test_layout(archive: XDMArchive) -> None:
    assert archive.names == (
        "README.TXT",
        "INDEX.HTM",
        "IHE_XDM/SUBSET01/METADATA.XML",
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET01/DOC0002.XML",
    )
    assert archive.has_readme and archive.has_index
    assert [s.path for s in archive.subsets] == ["IHE_XDM/SUBSET01"]


def test_cr_bio_metadata_matches_the_research_oracle(archive: XDMArchive) -> None:
    doc = archive.documents[0]
    assert doc.path == "IHE_XDM/SUBSET01/DOC0001.XML"
    assert doc.data == CRBIO.read_bytes()
    de = doc.entry
    assert de is not None
    assert de.uri == "DOC0001.XML"
    assert de.unique_id == "1.2.250.1.213.1.1.1.55.2021.6.1"
    assert de.patient_id == INS_CX
    assert de.source_patient_id == "1234567890121^^^&1.2.3.4.567.8.9.10&ISO^PI"
    assert de.type_code is not None and (de.type_code.code, de.type_code.code_system) == (
        "11502-2",
        "2.16.840.1.113883.6.1",
    )
    assert de.class_code is not None and (de.class_code.code, de.class_code.code_system) == (
        "10",
        "1.2.250.1.213.1.1.4.1",
    )
    assert de.format_code is not None
    assert (de.format_code.code, de.format_code.code_system) == ("urn:ihe:lab:xd-lab:2008", "1.3.6.1.4.1.19376.1.2.3")
    assert [(c.code, c.code_system) for c in de.confidentiality_codes] == [("N", "2.16.840.1.113883.5.25")]
    assert de.healthcare_facility_type_code is not None
    assert (de.healthcare_facility_type_code.code, de.healthcare_facility_type_code.code_system) == (
        "SA25",
        "1.2.250.1.71.4.2.4",
    )
    assert de.practice_setting_code is not None
    assert (de.practice_setting_code.code, de.practice_setting_code.code_system) == (
        "AMBULATOIRE",
        "1.2.250.1.213.1.1.4.9",
    )
    assert de.creation_time == "20210104150527"
    assert (de.service_start_time, de.service_stop_time) == ("20210104082200", "20210104150500")
    assert de.language_code == "fr-FR"
    assert de.size == "59811"
    assert de.hash == "266780c539c36f2d60ae6a7f7173cfea2a9a4f54"
    assert de.mime_type == "text/xml"
    assert [(c.code, c.code_system) for c in de.event_codes] == [("18725-2", "2.16.840.1.113883.6.1")]
    assert de.title == "Compte rendu d'examens biologiques"
    assert len(de.authors) == 1
    author = de.authors[0]
    assert author.person == "801234534765^CAMPARINI^Marcel^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    assert author.institutions == ("Laboratoire des charmes^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1120459876",)
    assert author.specialties == ("G15_10/SM03^Médecin - Biologie médicale (SM)^1.2.250.1.213.1.1.4.5",)
    assert "PID-5|PAT-TROIS^DOMINIQUE^^^^^L" in de.source_patient_info
    assert "PID-7|19790328" in de.source_patient_info and "PID-8|F" in de.source_patient_info
    assert de.legal_authenticator is not None and de.legal_authenticator.startswith("801234534765^CAMPARINI^")


def test_vsm_metadata_matches_the_research_oracle(archive: XDMArchive) -> None:
    de = archive.documents[1].entry
    assert de is not None
    assert de.type_code is not None and (de.type_code.code, de.type_code.code_system) == (
        "SYNTH",
        "1.2.250.1.213.1.1.4.12",
    )
    assert de.class_code is not None and de.class_code.code == "11"
    assert de.format_code is not None
    assert (de.format_code.code, de.format_code.code_system) == (
        "urn:asip:ci-sis:vsm:2012",
        "1.2.250.1.213.1.1.4.2.282",
    )
    assert de.healthcare_facility_type_code is not None and de.healthcare_facility_type_code.code == "SA04"
    assert de.practice_setting_code is not None and de.practice_setting_code.code == "ETABLISSEMENT"
    assert de.creation_time == "20200312101700"
    assert de.service_start_time == "20200312101700" and de.service_stop_time is None
    assert (de.size, de.hash) == ("63805", "80d9b50e6aeaa96db9c63a49cbff7bac726216cc")
    assert de.authors[0].roles == ("Médecin traitant",)


def test_submission_set_and_associations(archive: XDMArchive) -> None:
    meta = archive.subsets[0].metadata
    assert meta is not None and len(meta.submission_sets) == 1
    ss = meta.submission_sets[0]
    assert ss.patient_id == INS_CX
    assert ss.submission_time == "20240301120000"
    assert ss.unique_id is not None and ss.unique_id.startswith("2.25.")
    assert ss.source_id is not None and ss.title == "2 documents"
    targets = {a.target for a in meta.associations if a.source == ss.entry_uuid}
    assert targets == {d.entry_uuid for d in meta.document_entries}
    assert all(a.submission_set_status == "Original" for a in meta.associations)


def test_patient_and_headers(archive: XDMArchive) -> None:
    assert archive.patient is not None and archive.patient.ins is not None
    assert archive.patient.ins.matricule == "279035121518989"
    assert archive.patient_id == INS_CX
    assert archive.has_qualified_ins
    assert [d.cda.code.code for d in archive.documents if d.cda and d.cda.code] == ["11502-2", "SYNTH"]
    assert xmss_headers(archive) == {"X-MSS-CODECDA": "11502-2,SYNTH", "X-MSS-INS": "O"}


def test_validates_without_error(archive_bytes: bytes) -> None:
    report = validate_archive(archive_bytes)
    assert report.ok, report.errors
    assert report.warnings == ()
    # The test INS OID is reported as information.
    assert any(f.rule == "CI-SIS INS" and f.severity == "info" for f in report.findings)


def test_deterministic_and_injected_ids() -> None:
    docs = [CRBIO.read_bytes()]
    a = build_archive(docs, now=NOW, id_source=_ids())
    b = build_archive(docs, now=NOW, id_source=_ids())
    assert a == b
    meta = read_metadata(read_entry(a, "IHE_XDM/SUBSET01/METADATA.XML"))
    assert meta.document_entries[0].entry_uuid == f"urn:uuid:{uuid.UUID(int=1)}"
    assert build_archive(docs, now=NOW) == build_archive(docs, now=NOW)
    assert build_archive(docs, now=NOW) != build_archive(docs, now=NOW + timedelta(seconds=1))
    # The submission time is written in UTC whatever the zone of ``now``.
    paris = build_archive(docs, now=NOW.astimezone(timezone(timedelta(hours=1))))
    ss = read_metadata(read_entry(paris, "IHE_XDM/SUBSET01/METADATA.XML")).submission_sets[0]
    assert ss.submission_time == "20240301120000"


def test_metadata_write_read_round_trip(archive_bytes: bytes) -> None:
    raw = read_entry(archive_bytes, "IHE_XDM/SUBSET01/METADATA.XML")
    meta = read_metadata(raw)
    assert write_metadata(meta) == raw


@pytest.mark.parametrize("kind", ["crbio", "vsm", "both"])
def test_generated_documents_validate(kind: str) -> None:
    when = datetime(2024, 5, 2, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    docs = {
        "crbio": [generate_cr_bio(effective_time=when)],
        "vsm": [generate_vsm(effective_time=when)],
        "both": [generate_cr_bio(effective_time=when), generate_vsm(effective_time=when)],
    }[kind]
    report = validate_archive(build_archive(docs, now=NOW))
    assert report.ok, report.errors
    assert report.warnings == (), report.warnings
    assert report.archive.has_qualified_ins
    codes = {"crbio": "11502-2", "vsm": "60591-5", "both": "11502-2,60591-5"}[kind]
    assert xmss_headers(report.archive)["X-MSS-CODECDA"] == codes
    for d in report.archive.documents:
        assert d.entry is not None and d.entry.class_code is not None
        assert d.entry.class_code.code == ("10" if d.entry.type_code and d.entry.type_code.code == "11502-2" else "11")
