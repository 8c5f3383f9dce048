"""Put an end-of-line marker before every ``endstream`` (ISO 19005-1 §6.1.7) and rebuild the xref table.

ReportLab writes ``<data>endstream`` with no EOL in between, which PDF/A-1 forbids ("the endstream keyword
shall be preceded by an EOL marker"). The EOL is not part of the stream (``/Length`` is unchanged); only the
object offsets after each insertion move, so the cross-reference table and ``startxref`` are rewritten.

The stream data is located with its ``/Length`` (never by searching for ``endstream`` inside binary data);
any layout other than ReportLab's classic one (one xref section, direct ``/Length`` values) is refused.
"""

from __future__ import annotations

import re

from mssante.errors import ConfigError

__all__ = ["eol_before_endstream"]

_STARTXREF = re.compile(rb"startxref\r?\n(\d+)\r?\n%%EOF\r?\n?$")
_XREF_HEAD = re.compile(rb"xref\r?\n0 (\d+)\r?\n")
_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])\s{1,2}")
_LENGTH = re.compile(rb"/Length\s+(\d+)(?![0-9])")
_STREAM = re.compile(rb"\sstream(\r\n|\n)")


def _fail(why: str) -> ConfigError:
    return ConfigError(f"unexpected PDF layout from reportlab ({why}); use reportlab>=4.4,<6")


def _fix_object(chunk: bytes) -> bytes:
    m = _STREAM.search(chunk)
    if m is None:
        return chunk
    length = _LENGTH.search(chunk, 0, m.start())
    if length is None:
        raise _fail("stream without a direct /Length")
    end = m.end() + int(length.group(1))
    if not chunk.startswith(b"endstream", end):
        if chunk[end : end + 1] in (b"\n", b"\r") and b"endstream" in chunk[end : end + 3]:
            return chunk
        raise _fail("stream /Length does not end at endstream")
    return chunk[:end] + b"\n" + chunk[end:]


def eol_before_endstream(data: bytes) -> bytes:
    """Return ``data`` with an EOL before each ``endstream`` and a matching cross-reference table.

    Raises:
        ConfigError: the file does not have the single-section layout ReportLab writes.
    """
    tail = _STARTXREF.search(data[-64:])
    if tail is None:
        raise _fail("no startxref at the end")
    xref_at = int(tail.group(1))
    head = _XREF_HEAD.match(data, xref_at)
    if head is None:
        raise _fail("no single xref section")
    count = int(head.group(1))
    pos = head.end()
    offsets: list[tuple[int, int]] = []
    for number in range(count):
        entry = _ENTRY.match(data, pos)
        if entry is None:
            raise _fail("unreadable xref entry")
        pos = entry.end()
        if entry.group(3) == b"n":
            offsets.append((int(entry.group(1)), number))
    offsets.sort()
    if not offsets or offsets[-1][0] >= xref_at:
        raise _fail("object offsets after the xref table")
    out = bytearray(data[: offsets[0][0]])
    new_offsets: dict[int, int] = {}
    bounds = [o for o, _ in offsets[1:]] + [xref_at]
    for (start, number), end in zip(offsets, bounds, strict=True):
        if not data.startswith(f"{number} 0 obj".encode(), start):
            raise _fail(f"xref offset of object {number} does not point at it")
        new_offsets[number] = len(out)
        out += _fix_object(data[start:end])
    new_xref = len(out)
    out += f"xref\n0 {count}\n0000000000 65535 f \n".encode()
    for number in range(1, count):
        if number not in new_offsets:
            raise _fail(f"object {number} is not in use")
        out += f"{new_offsets[number]:010d} 00000 n \n".encode()
    trailer = data[pos:]
    out += trailer[: trailer.rfind(b"startxref")] + f"startxref\n{new_xref}\n%%EOF\n".encode()
    return bytes(out)
