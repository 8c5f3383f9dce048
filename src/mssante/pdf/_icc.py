"""A small ICC v2 sRGB display profile, built from the published sRGB constants (no file, no dependency).

PDF/A-1 (ISO 19005-1 §6.2.2) needs an ``OutputIntent`` whose ``DestOutputProfile`` is an embedded ICC
profile; PDF 1.4 only knows ICC versions up to 2.x (version 4 profiles, such as the one littleCMS builds by
default, are refused by validators). The profile written here is a classic matrix/TRC profile:

* header: version 2.1.0, class ``mntr`` (display), colour space ``RGB``, PCS ``XYZ``, illuminant D50;
* ``rXYZ``/``gXYZ``/``bXYZ``: the sRGB primaries adapted to D50 (Bradford), as in IEC 61966-2-1 profiles;
* ``wtpt``: D50 (the adapted white); ``rTRC``/``gTRC``/``bTRC``: one shared 1024-entry sRGB tone curve;
* ``desc`` and ``cprt``: the v2 ``textDescriptionType`` and ``textType`` tags.

The bytes are a pure function of the code (fixed creation date), so documents stay reproducible.
"""

from __future__ import annotations

import struct
from functools import cache

__all__ = ["SRGB_DESCRIPTION", "srgb_icc_profile"]

SRGB_DESCRIPTION = "sRGB IEC61966-2.1"

_D50 = (0.9642, 1.0, 0.8249)
_RED = (0.4360747, 0.2225045, 0.0139322)
_GREEN = (0.3850649, 0.7168786, 0.0971045)
_BLUE = (0.1430804, 0.0606169, 0.7141733)


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(value: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15f16(v) for v in value)


def _srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _curve(points: int = 1024) -> bytes:
    values = [round(_srgb_to_linear(i / (points - 1)) * 65535) for i in range(points)]
    return b"curv\0\0\0\0" + struct.pack(f">I{points}H", points, *values)


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    body = struct.pack(">I", len(ascii_text)) + ascii_text
    body += struct.pack(">II", 0, 0)  # Unicode language code and count (none)
    body += struct.pack(">HB", 0, 0) + b"\0" * 67  # ScriptCode code, count and its fixed 67-byte field
    return b"desc\0\0\0\0" + body


def _text(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


@cache
def srgb_icc_profile() -> bytes:
    """Return the bytes of an ICC v2.1 sRGB display profile (about 2.6 kB), suitable for PDF/A-1.

    Raises:
        MssanteError: none on purpose (the profile is built from constants).
    """
    curve = _curve()
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _desc(SRGB_DESCRIPTION)),
        (b"cprt", _text("No copyright, use freely")),
        (b"wtpt", _xyz(_D50)),
        (b"rXYZ", _xyz(_RED)),
        (b"gXYZ", _xyz(_GREEN)),
        (b"bXYZ", _xyz(_BLUE)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries: list[bytes] = []
    blobs: list[bytes] = []
    placed: dict[bytes, tuple[int, int]] = {}
    for sig, data in tags:
        if data not in placed:  # the three TRC tags share one curve
            placed[data] = (offset, len(data))
            padded = _pad4(data)
            blobs.append(padded)
            offset += len(padded)
        where, size = placed[data]
        entries.append(sig + struct.pack(">II", where, size))
    body = struct.pack(">I", len(tags)) + b"".join(entries) + b"".join(blobs)
    size = 128 + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"  # preferred CMM: none
        + bytes((2, 0x10, 0, 0))  # version 2.1.0
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0\0\0\0"  # primary platform: none
        + struct.pack(">I", 0)  # flags
        + b"\0\0\0\0" * 2  # device manufacturer and model
        + b"\0" * 8  # device attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + b"".join(_s15f16(v) for v in _D50)
        + b"\0\0\0\0"  # creator
        + b"\0" * 16  # profile ID (v4 only)
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + body
