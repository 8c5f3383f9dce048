"""Bounded, path-safe reading and deterministic writing of ZIP archives.

Reading never trusts the sizes declared in the central directory: every entry is decompressed in chunks
and the per-entry, total and compression-ratio limits are checked while streaming, so a zip bomb stops at
the limit. Entry names are checked before any byte is read (no ``..``, no absolute path, no backslash, no
drive letter, no NUL), as are symlinks, encrypted entries, duplicate names and exotic compression methods.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mssante.errors import ContentError, LimitError, UnsafeContentError

__all__ = ["XDMLimits", "ZipEntry", "read_zip", "write_zip"]

_CHUNK = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_S_IFMT = 0o170000
_S_IFLNK = 0o120000


@dataclass(frozen=True, slots=True)
class XDMLimits:
    """Bounds applied while reading an XDM archive (all sizes in bytes).

    Attributes:
        max_archive_bytes: largest accepted ZIP file.
        max_entries: largest accepted number of entries (files and directories).
        max_total_bytes: largest accepted sum of uncompressed sizes.
        max_entry_bytes: largest accepted uncompressed size of one entry.
        max_ratio: largest accepted uncompressed/compressed ratio of one entry (checked once the entry
            has produced more than ``ratio_floor_bytes``, so tiny highly-compressible files pass).
        ratio_floor_bytes: see ``max_ratio``.
        max_xml_bytes: largest accepted XML document (METADATA.XML, CDA).
        max_xml_depth: deepest accepted XML element nesting.
    """

    max_archive_bytes: int = 64 * 1024 * 1024
    max_entries: int = 1000
    max_total_bytes: int = 256 * 1024 * 1024
    max_entry_bytes: int = 64 * 1024 * 1024
    max_ratio: int = 200
    ratio_floor_bytes: int = 1024 * 1024
    max_xml_bytes: int = 32 * 1024 * 1024
    max_xml_depth: int = 256


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One file entry read from the archive (directories are not returned)."""

    name: str
    data: bytes


def check_name(name: str) -> None:
    """Refuse an unsafe entry name (path traversal, absolute path, backslash, drive letter, NUL).

    Raises:
        UnsafeContentError: the name is unsafe.
    """
    bad = (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or _DRIVE.match(name) is not None
        or any(part in ("..", ".") for part in name.split("/"))
        or "//" in name.rstrip("/")
        or len(name) > 1024
    )
    if bad:
        raise UnsafeContentError(f"unsafe entry name in archive: {name[:120]!r}", requirement="XDM-ZIP-PATH")


def _bounded(info: zipfile.ZipInfo, size: int, limits: XDMLimits, budget: int, consumed: int) -> None:
    if size > limits.max_entry_bytes:
        raise LimitError(
            f"entry {info.filename[:120]!r} expands beyond {limits.max_entry_bytes} bytes", requirement="XDM-ZIP-LIMIT"
        )
    if size > budget:
        raise LimitError(f"archive expands beyond {limits.max_total_bytes} bytes in total", requirement="XDM-ZIP-LIMIT")
    if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(consumed, 1):
        raise UnsafeContentError(
            f"entry {info.filename[:120]!r} has a compression ratio above {limits.max_ratio} (zip bomb?)",
            requirement="XDM-ZIP-BOMB",
        )


def _read_entry(data: bytes, info: zipfile.ZipInfo, limits: XDMLimits, budget: int) -> bytes:
    """Decompress one entry ourselves from its local header, counting real input and output bytes.

    The declared sizes are only used to locate the compressed bytes and are checked after the fact; the
    limits apply to what the stream really produces, chunk by chunk.
    """
    off = info.header_offset
    if off < 0 or off + 30 > len(data) or data[off : off + 4] != b"PK\x03\x04":
        raise ContentError(f"entry {info.filename[:120]!r}: bad local header", requirement="XDM-ZIP")
    name_len, extra_len = struct.unpack("<HH", data[off + 26 : off + 30])
    start = off + 30 + name_len + extra_len
    end = start + info.compress_size
    if end > len(data):
        raise ContentError(f"entry {info.filename[:120]!r}: truncated data", requirement="XDM-ZIP")
    out = bytearray()
    if info.compress_type == zipfile.ZIP_STORED:
        _bounded(info, end - start, limits, budget, end - start)
        out += data[start:end]
    else:
        dec = zlib.decompressobj(-15)
        pos = start
        pending = b""
        while not dec.eof:
            if not pending:
                if pos >= end:
                    break
                pending = data[pos : min(pos + _CHUNK, end)]
                pos += len(pending)
            out += dec.decompress(pending, _CHUNK)
            pending = dec.unconsumed_tail
            _bounded(info, len(out), limits, budget, pos - start - len(pending))
        if not dec.eof:
            raise ContentError(f"entry {info.filename[:120]!r}: truncated deflate stream", requirement="XDM-ZIP")
    if len(out) != info.file_size:
        raise ContentError(
            f"entry {info.filename[:120]!r}: {len(out)} bytes, {info.file_size} declared", requirement="XDM-ZIP"
        )
    if zlib.crc32(out) != info.CRC:
        raise ContentError(f"entry {info.filename[:120]!r}: CRC mismatch", requirement="XDM-ZIP")
    return bytes(out)


def read_zip(data: bytes, limits: XDMLimits) -> list[ZipEntry]:
    """Read every file entry of a ZIP archive, enforcing ``limits`` and the name/type safety rules.

    Raises:
        LimitError: the archive, an entry, the total or the entry count exceeds ``limits``.
        UnsafeContentError: an unsafe name, a symlink, an encrypted entry, a duplicate name or a bomb ratio.
        ContentError: the bytes are not a readable ZIP archive (corrupt, CRC error, unsupported method).
    """
    if len(data) > limits.max_archive_bytes:
        raise LimitError(f"archive of {len(data)} bytes exceeds {limits.max_archive_bytes} bytes")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    # NotImplementedError: a central directory asking for a ZIP version zipfile does not read (> 6.3).
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
            NotImplementedError) as exc:
        raise ContentError(f"not a readable ZIP archive ({exc.__class__.__name__})", requirement="XDM-ZIP") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise LimitError(f"archive has {len(infos)} entries, limit {limits.max_entries}")
        seen: set[str] = set()
        for info in infos:
            check_name(info.filename)
            key = info.filename.rstrip("/").upper()
            if key in seen:
                raise UnsafeContentError(
                    f"duplicate entry name {info.filename[:120]!r}", requirement="XDM-ZIP-DUPLICATE"
                )
            seen.add(key)
            if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
                raise UnsafeContentError(f"symlink entry {info.filename[:120]!r} refused", requirement="XDM-ZIP-LINK")
            if info.flag_bits & 0x1:
                raise UnsafeContentError(
                    f"encrypted entry {info.filename[:120]!r} refused", requirement="XDM-ZIP-ENCRYPTED"
                )
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ContentError(
                    f"entry {info.filename[:120]!r} uses unsupported compression method {info.compress_type}",
                    requirement="XDM-ZIP",
                )
        entries: list[ZipEntry] = []
        total = 0
        for info in infos:
            if info.is_dir():
                continue
            try:
                content = _read_entry(data, info, limits, limits.max_total_bytes - total)
            except (LimitError, UnsafeContentError):
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, struct.error) as exc:
                raise ContentError(
                    f"entry {info.filename[:120]!r} is corrupt ({exc.__class__.__name__})", requirement="XDM-ZIP"
                ) from None
            except (NotImplementedError, RuntimeError) as exc:
                raise ContentError(
                    f"entry {info.filename[:120]!r} cannot be read ({exc.__class__.__name__})", requirement="XDM-ZIP"
                ) from None
            total += len(content)
            entries.append(ZipEntry(info.filename, content))
        return entries


def write_zip(files: Sequence[tuple[str, bytes]], *, when: datetime) -> bytes:
    """Write ``files`` (name, bytes) into a deflated ZIP, deterministically (fixed timestamps and attributes).

    Raises:
        UnsafeContentError: a name is unsafe (see :func:`check_name`).
    """
    stamp = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files:
            check_name(name)
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (0o100644 & 0xFFFF) << 16
            zf.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buf.getvalue()
