"""Helpers for the XDM tests: sample files, archive rewriting, crafted ZIPs (bomb, raw names)."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"
VSM = SAMPLES / "VSM_1.4_2022.01.xml"
CRBIO = SAMPLES / "BIO-CR-BIO_2021.01_Microbiologie_V1.xml"
#: Modules built on the ANS sample documents set ``pytestmark = needs_samples``: on a bare clone
#: (no /work/shared beside the repository) they are skipped, not failed.
needs_samples = pytest.mark.skipif(not (CRBIO.is_file() and VSM.is_file()), reason="ANS samples absent")


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
