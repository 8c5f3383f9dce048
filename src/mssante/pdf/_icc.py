"""The sRGB output profile of the PDF/A OutputIntent: the ICC v2 profile that pikepdf ships as package data.

PDF/A-1 (ISO 19005-1 §6.2.2) needs an ``OutputIntent`` whose ``DestOutputProfile`` is an embedded ICC
profile; PDF 1.4 only knows ICC versions up to 2.x (version 4 profiles, such as the one littleCMS builds by
default, are refused by validators). pikepdf, a runtime dependency, ships a version 2 sRGB display profile
(``pikepdf/pdfa/data/sRGB.icc``, "no copyright, use freely") for exactly this purpose; it is read as package
data, without importing ``pikepdf.pdfa`` (whose optional dependencies are not required).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from mssante.errors import ConfigError

__all__ = ["SRGB_DESCRIPTION", "icc_major_version", "srgb_icc_profile"]

SRGB_DESCRIPTION = "sRGB IEC61966-2.1"
_PACKAGE_DATA = ("pdfa", "data", "sRGB.icc")


def icc_major_version(profile: bytes) -> int | None:
    """Return the major version of an ICC profile, or None when ``profile`` is not one (no ``acsp`` signature).

    Raises:
        MssanteError: none on purpose.
    """
    if len(profile) < 128 or profile[36:40] != b"acsp":
        return None
    return profile[8]


@cache
def srgb_icc_profile() -> bytes:
    """Return the bytes of pikepdf's ICC v2 sRGB display profile (about 7 kB), suitable for PDF/A-1.

    Raises:
        ConfigError: pikepdf is missing, or its package data lacks a version 2 RGB display profile.
    """
    try:
        path = resources.files("pikepdf").joinpath(*_PACKAGE_DATA)
        data = path.read_bytes()
    except (ModuleNotFoundError, OSError) as exc:
        raise ConfigError(
            f"PDF/A needs the sRGB profile shipped by pikepdf (pip install 'pikepdf>=10.18,<11'): {exc}"
        ) from None
    if icc_major_version(data) != 2 or data[12:20] != b"mntrRGB ":
        raise ConfigError("pikepdf's sRGB.icc is not an ICC v2 RGB display profile; use pikepdf>=10.18,<11")
    return data
