"""Helpers for the XDM tests: test documents, archive rewriting, crafted ZIPs (bomb, raw names).

Two kinds of CDA documents feed the tests:

- generated ones (``CRBIO_DOC``, ``VSM_DOC``), built by :mod:`mssante.cda` at import time, so every
  test that needs "a real CR de biologie" or "a real VSM" runs on a bare clone of the repository;
- the two public ANS examples, read from ``../shared/samples`` beside the repository. They are not
  redistributed with the project (their licence is unstated), so the oracle tests that compare with
  them skip, saying why, when they are absent (``ans_sample``).
"""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mssante.cda import generate_cr_bio, generate_vsm

SAMPLES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "samples").resolve()
VSM_SAMPLE = SAMPLES / "VSM_1.4_2022.01.xml"
CRBIO_SAMPLE = SAMPLES / "BIO-CR-BIO_2021.01_Microbiologie_V1.xml"
SAMPLES_ABSENT = (
    f"ANS sample CDA documents not found in {SAMPLES}: they live in ../shared/samples beside a "
    "development checkout and are not redistributed with the public repository"
)

#: When the generated test documents were "written": fixed, so every run builds the same bytes.
DOC_TIME = datetime(2024, 1, 4, 15, 5, 27, tzinfo=UTC)
CRBIO_DOC = generate_cr_bio(effective_time=DOC_TIME)
VSM_DOC = generate_vsm(effective_time=DOC_TIME)


def ans_sample(path: Path) -> bytes:
    """The bytes of an ANS sample, or skip the calling test when ``../shared/samples`` is absent."""
    if not path.is_file():
        pytest.skip(SAMPLES_ABSENT)
    return path.read_bytes()


def must_replace(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data.replace(old, new)``, failing the test when ``old`` is absent (a replace that changes nothing
    would make the calling test vacuous)."""
    assert old in data, f"{old!r} not found: the test's premise no longer holds"
    return data.replace(old, new)


def rezip(
    data: bytes,
    *,
    replace: dict[str, bytes | None] | None = None,
    add: list[tuple[str | zipfile.ZipInfo, bytes]] | None = None,
) -> bytes:
    """Copy an archive, replacing (bytes) or dropping (None) entries by name, then appending ``add``."""
    replace = replace or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in replace:
                new = replace[info.filename]
                if new is not None:
                    dst.writestr(info.filename, new)
            else:
                dst.writestr(info.filename, src.read(info))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which some tests want
            for name, content in add or []:
                dst.writestr(name, content)
    return out.getvalue()


def read_entry(data: bytes, name: str) -> bytes:
    """Return one entry of an archive."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(name)


def zeros_bomb(total: int = 1 << 30, name: str = "IHE_XDM/SUBSET01/DOC0001.XML") -> bytes:
    """A ZIP with one deflated entry expanding to ``total`` zero bytes, built in well under a second.

    The deflate stream is a 1 MiB segment compressed once after a full flush (no back-reference across
    segments), repeated; the CRC is the real one, so the archive is a genuine bomb.
    """
    chunk = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    seg = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    count = total // len(chunk)
    stream = seg * count + comp.flush()
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    fname = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(stream), total, len(fname), 0)
    body = local + fname + stream
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(stream),
            total,
            len(fname),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + fname
    )
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + eocd
