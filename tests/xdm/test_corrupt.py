"""Corrupt and hostile archives: each gives a specific finding or a typed error, never a foreign exception."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from datetime import UTC, datetime

import pytest

from mssante.cda import SamplePatient, generate_cr_bio, generate_vsm
from mssante.errors import ContentError, LimitError, UnsafeContentError
from mssante.xdm import XDMLimits, build_archive, read_archive, validate_archive, xmss_headers
from tests.xdm._util import CRBIO_DOC, must_replace, read_entry, rezip, zeros_bomb

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
META = "IHE_XDM/SUBSET01/METADATA.XML"
DOC1 = "IHE_XDM/SUBSET01/DOC0001.XML"


@pytest.fixture(scope="module")
def good() -> bytes:
    return build_archive([CRBIO_DOC], now=NOW)


def _rules(data: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in validate_archive(data).findings:
        if f.severity == "error":
            out.setdefault(f.rule, []).append(f.where)
    return out


def test_wrong_hash(good: bytes) -> None:
    meta = must_replace(read_entry(good, META), hashlib.sha1(CRBIO_DOC).hexdigest().encode(), b"0" * 40)
    assert _rules(rezip(good, replace={META: meta})) == {"XDM-HASH": [DOC1]}


def test_tampered_document(good: bytes) -> None:
    doc = must_replace(read_entry(good, DOC1), b"Cabinet de test mssante", b"Cabinet de test MSSANTE")
    assert _rules(rezip(good, replace={DOC1: doc})) == {"XDM-HASH": [DOC1]}
    longer = read_entry(good, DOC1) + b"\n"
    assert set(_rules(rezip(good, replace={DOC1: longer}))) == {"XDM-HASH", "XDM-SIZE"}


def test_missing_metadata(good: bytes) -> None:
    data = rezip(good, replace={META: None})
    report = validate_archive(data)
    assert {(f.rule, f.where) for f in report.errors} == {("IHE ITI-32 ITI32-008", "IHE_XDM/SUBSET01")}
    # Without metadata the documents are still found (X-MSS headers stay computable).
    assert xmss_headers(report.archive)["X-MSS-CODECDA"] == "11502-2"


def test_missing_readme_index_and_subset(good: bytes) -> None:
    rules = _rules(rezip(good, replace={"README.TXT": None, "INDEX.HTM": None}))
    assert rules == {"IHE ITI-32 ITI32-005": ["archive", "archive"]}
    only_docs = rezip(good, replace={META: None, DOC1: None})
    assert "IHE ITI-32 ITI32-004" in _rules(only_docs)


def test_unresolved_uri_and_unreferenced_file(good: bytes) -> None:
    data = rezip(good, replace={DOC1: None}, add=[("IHE_XDM/SUBSET01/OTHER.XML", CRBIO_DOC)])
    report = validate_archive(data)
    assert {f.rule for f in report.errors} == {"XDM-URI"}
    assert ("XDM-UNREFERENCED", "IHE_XDM/SUBSET01/OTHER.XML") in {(f.rule, f.where) for f in report.warnings}


def test_malformed_and_incomplete_metadata(good: bytes) -> None:
    assert "XDM-METADATA-XML" in _rules(rezip(good, replace={META: b"<lcm:oops"}))
    meta = read_entry(good, META)
    stripped = must_replace(meta, b'name="languageCode"', b'name="langue"')
    stripped = must_replace(
        stripped, b"urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1", b"urn:uuid:00000000-0000-0000-0000-000000000000"
    )
    messages = [f.message for f in validate_archive(rezip(good, replace={META: stripped})).errors]
    assert "DocumentEntry.languageCode is missing" in messages
    assert "DocumentEntry.healthcareFacilityTypeCode is missing" in messages
    no_assoc = must_replace(meta, b"AssociationType:HasMember", b"AssociationType:Other")
    assert "XDM-ASSOC" in _rules(rezip(good, replace={META: no_assoc}))
    bad_time = must_replace(meta, b"<rim:Value>20240104150527</rim:Value>", b"<rim:Value>2024-01-04</rim:Value>")
    assert "IHE ITI TF-3 §4.2.3.2" in _rules(rezip(good, replace={META: bad_time}))


def test_metadata_patient_differs_from_cda(good: bytes) -> None:
    meta = must_replace(read_entry(good, META), b"279035121518989^^^", b"185057800608436^^^")
    rules = _rules(rezip(good, replace={META: meta}))
    assert "ECO.2.1.2" in rules


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "IHE_XDM/../../evil", "/etc/passwd", "C:/windows/x", "IHE_XDM\\SUBSET01\\DOC.XML", "a/./b"],
)
def test_traversal_entry_names(good: bytes, name: str) -> None:
    data = rezip(good, add=[(zipfile.ZipInfo(name), b"x")])
    with pytest.raises(UnsafeContentError) as exc:
        read_archive(data)
    assert exc.value.requirement == "XDM-ZIP-PATH"


def test_symlink_encrypted_duplicate(good: bytes) -> None:
    link = zipfile.ZipInfo("IHE_XDM/SUBSET01/LINK.XML")
    link.external_attr = 0o120777 << 16
    with pytest.raises(UnsafeContentError, match="symlink"):
        read_archive(rezip(good, add=[(link, b"/etc/passwd")]))
    enc = bytearray(rezip(good, add=[("SECRET.TXT", b"x")]))
    cd = enc.rfind(b"PK\x01\x02")  # central directory record of the last entry: set the "encrypted" flag
    enc[cd + 8] |= 0x1
    with pytest.raises(UnsafeContentError, match="encrypted"):
        read_archive(bytes(enc))
    with pytest.raises(UnsafeContentError, match="duplicate"):
        read_archive(rezip(good, add=[("readme.txt", b"again")]))


def test_zip_bomb_of_one_gigabyte() -> None:
    started = time.monotonic()
    bomb = zeros_bomb(1 << 30)
    assert len(bomb) < 2 * 1024 * 1024
    with pytest.raises(UnsafeContentError) as exc:
        read_archive(bomb)
    assert exc.value.requirement == "XDM-ZIP-BOMB"
    # With the ratio check disabled, the per-entry size limit stops the stream anyway.
    with pytest.raises(LimitError):
        read_archive(bomb, limits=XDMLimits(max_ratio=10**9, max_entry_bytes=8 * 1024 * 1024))
    with pytest.raises(LimitError):
        read_archive(bomb, limits=XDMLimits(max_ratio=10**9, max_total_bytes=4 * 1024 * 1024))
    assert time.monotonic() - started < 10


def test_lying_declared_size_is_caught() -> None:
    bomb = bytearray(zeros_bomb(8 << 20))
    # Patch the declared uncompressed size (local header offset 22, central directory entry) to 10 bytes.
    bomb[22:26] = (10).to_bytes(4, "little")
    cd = bomb.rfind(b"PK\x01\x02")
    bomb[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    with pytest.raises(ContentError):
        read_archive(bytes(bomb))


def test_other_limits(good: bytes) -> None:
    with pytest.raises(LimitError):
        read_archive(good, limits=XDMLimits(max_archive_bytes=100))
    with pytest.raises(LimitError):
        read_archive(good, limits=XDMLimits(max_entries=3))
    with pytest.raises(LimitError):
        read_archive(good, limits=XDMLimits(max_xml_bytes=1000))
    with pytest.raises(LimitError):
        read_archive(good, limits=XDMLimits(max_xml_depth=5))


XXE = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
LAUGHS = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><r>&b;</r>'


@pytest.mark.parametrize("payload", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
@pytest.mark.parametrize("target", [META, DOC1], ids=["metadata", "cda"])
def test_xxe_and_billion_laughs(good: bytes, payload: bytes, target: str) -> None:
    data = rezip(good, replace={target: payload})
    with pytest.raises(UnsafeContentError) as exc:
        read_archive(data)
    assert exc.value.requirement == "XDM-XML-SAFE"
    with pytest.raises(UnsafeContentError):
        validate_archive(data)


def test_doctype_inside_a_real_cda(good: bytes) -> None:
    doc = CRBIO_DOC.replace(
        b"<ClinicalDocument ",
        b'<!DOCTYPE ClinicalDocument [<!ENTITY e SYSTEM "http://127.0.0.1:1/">]>\n<ClinicalDocument ',
        1,
    )
    with pytest.raises(UnsafeContentError):
        read_archive(rezip(good, replace={DOC1: doc}))
    with pytest.raises(UnsafeContentError):
        build_archive([doc], now=NOW)


def test_two_patients_in_one_archive() -> None:
    when = datetime(2024, 5, 2, 10, 30, tzinfo=UTC)
    other = SamplePatient(ins="185057800608436", birth_family="MARTIN", given_names="PAUL", gender="M", ipp=None)
    docs = [generate_cr_bio(effective_time=when), generate_vsm(effective_time=when, patient=other)]
    with pytest.raises(ContentError) as exc:
        build_archive(docs, now=NOW)
    assert exc.value.requirement == "ECO.2.1.1"
    report = validate_archive(build_archive(docs, now=NOW, strict=False))
    eco = [f for f in report.errors if f.rule == "ECO.2.1.1"]
    assert len(eco) == 2  # two CDA patients and two metadata patientIds
    assert report.archive.patient is None and not report.archive.has_qualified_ins
    assert xmss_headers(report.archive)["X-MSS-INS"] == "N"


def test_not_a_cda_and_not_qualified(good: bytes) -> None:
    assert "CI-SIS CDA" in _rules(rezip(good, replace={DOC1: b"<html><body/></html>"}))
    unqualified = must_replace(CRBIO_DOC, b'<family qualifier="BR">PAT-TROIS</family>', b"")
    report = validate_archive(build_archive([unqualified], now=NOW))
    assert any(f.rule == "ECO.2.4.2" and "birth name" in f.message for f in report.warnings)
    assert xmss_headers(report.archive) == {"X-MSS-CODECDA": "11502-2", "X-MSS-INS": "N"}


@pytest.mark.parametrize("data", [b"", b"PK", b"not a zip at all", b"PK\x03\x04" + b"\x00" * 40])
def test_not_a_zip(data: bytes) -> None:
    with pytest.raises(ContentError):
        read_archive(data)


def test_empty_zip_is_read_but_invalid() -> None:
    report = validate_archive(b"PK\x05\x06" + b"\x00" * 18)
    assert {f.rule for f in report.errors} == {"IHE ITI-32 ITI32-005", "IHE ITI-32 ITI32-004"}


def test_truncated_and_bad_crc(good: bytes) -> None:
    with pytest.raises(ContentError):
        read_archive(good[: len(good) // 2])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("README.TXT", b"hello world")
    raw = bytearray(buf.getvalue())
    raw[raw.find(b"hello")] = ord("j")
    with pytest.raises(ContentError):
        read_archive(bytes(raw))


def test_unsupported_compression(good: bytes) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_BZIP2) as zf:
        zf.writestr("README.TXT", b"hello")
    with pytest.raises(ContentError, match="compression"):
        read_archive(buf.getvalue())


def test_lower_case_layout_is_read(good: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(good)) as src:
        files = [(i.filename.lower(), src.read(i)) for i in src.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, content in files:
            dst.writestr(name, content)
    report = validate_archive(buf.getvalue())
    assert report.ok, report.errors
    assert {f.rule for f in report.warnings} == {"XDM-SUBSET-NAME"}
    assert "XDM-FILENAME" in report.rules()
    assert xmss_headers(report.archive) == {"X-MSS-CODECDA": "11502-2", "X-MSS-INS": "O"}


def test_a_zip_version_zipfile_cannot_read_is_a_content_error(good: bytes) -> None:
    """The fuzzing campaign's find: a central directory asking for ZIP 6.4 (``zipfile`` raises NotImplementedError)."""
    central = good.index(b"PK\x01\x02")
    data = bytearray(good)
    data[central + 6] = 64  # "version needed to extract" of the first central directory entry: 6.4
    with pytest.raises(ContentError, match="not a readable ZIP archive"):
        read_archive(bytes(data))
    with pytest.raises(ContentError, match="not a readable ZIP archive"):
        validate_archive(bytes(data))
