"""Find, register and use the TrueType fonts embedded in every PDF (PDF/A-1 requires embedded fonts).

Search order for the regular and bold faces:

1. ``font_dir`` given by the caller, else the ``MSSANTE_PDF_FONT_DIR`` environment variable: it must hold
   ``DejaVuSans.ttf`` and ``DejaVuSans-Bold.ttf`` (a wrong setting is a :class:`~mssante.errors.ConfigError`,
   never silently ignored);
2. DejaVu Sans in the usual system folders (Debian/Ubuntu ``fonts-dejavu-core``, Fedora, Arch, Homebrew...);
3. Bitstream Vera, which ReportLab ships inside its wheel (fewer glyphs: no Greek letters nor arrows).

Characters that the chosen font cannot draw are replaced by ``?`` (:func:`FontPair.clean`) so that no
``.notdef`` glyph is ever shown; control characters are dropped.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mssante.errors import ConfigError
from mssante.pdf._rl import rl

__all__ = ["FONT_DIR_ENV", "FontPair", "load_fonts"]

FONT_DIR_ENV = "MSSANTE_PDF_FONT_DIR"

_DEJAVU = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
_VERA = ("Vera.ttf", "VeraBd.ttf")
_SYSTEM_DIRS = (
    "/usr/share/fonts/truetype/dejavu",  # Debian, Ubuntu (fonts-dejavu-core)
    "/usr/share/fonts/dejavu-sans-fonts",  # Fedora, RHEL
    "/usr/share/fonts/dejavu",  # openSUSE, older Fedora
    "/usr/share/fonts/TTF",  # Arch
    "/usr/local/share/fonts",
    "/usr/local/share/fonts/dejavu",  # FreeBSD
    "/opt/homebrew/share/fonts",
    "/usr/share/fonts/truetype",
)
_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], FontPair] = {}


@dataclass(frozen=True)
class FontPair:
    """A registered regular/bold pair.

    Attributes:
        regular, bold: the ReportLab font names to use in styles.
        family: the ReportLab family name (``<b>`` in paragraphs switches to ``bold``).
        source: the path of the regular face (reported in errors and tests).
        glyphs: the Unicode code points the regular face can draw.
    """

    regular: str
    bold: str
    family: str
    source: str
    glyphs: frozenset[int]

    def clean(self, text: str) -> str:
        """Return ``text`` with control characters removed and undrawable characters replaced.

        A character missing from the font (or outside the Basic Multilingual Plane, which ReportLab's
        ToUnicode maps cannot carry) is first tried in its compatibility decomposition (``ﬁ`` → ``fi``),
        then replaced by ``?``; invisible format characters the font lacks are dropped.

        Raises:
            MssanteError: none on purpose.
        """
        out: list[str] = []
        glyphs = self.glyphs
        for ch in text:
            code = ord(ch)
            category = unicodedata.category(ch)
            if ch in "\t\n\r\u00a0":
                out.append(" ")
            elif category in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp"):
                continue
            elif code > 0xFFFF:  # ReportLab's ToUnicode maps are 16-bit: astral characters would be misread
                out.append("?")
            elif code in glyphs:
                out.append(ch)
            elif category == "Cf":
                continue
            else:
                alt = unicodedata.normalize("NFKD", ch)
                if alt != ch and all(ord(a) in glyphs or unicodedata.combining(a) for a in alt):
                    out.append("".join(a for a in alt if ord(a) in glyphs))
                else:
                    out.append("?")
        return "".join(out)


def _candidates(font_dir: str | os.PathLike[str] | None) -> list[tuple[Path, tuple[str, str]]]:
    configured = font_dir if font_dir is not None else os.environ.get(FONT_DIR_ENV) or None
    if configured is not None:
        path = Path(configured)
        if not all((path / name).is_file() for name in _DEJAVU):
            source = "font_dir" if font_dir is not None else FONT_DIR_ENV
            raise ConfigError(
                f"{source}={str(configured)[:200]!r} does not hold {' and '.join(_DEJAVU)} (install fonts-dejavu-core "
                "or point it at a folder with these files)"
            )
        return [(path, _DEJAVU)]
    found: list[tuple[Path, tuple[str, str]]] = [(Path(d), _DEJAVU) for d in _SYSTEM_DIRS]
    found.append((Path(rl("reportlab").__file__).parent / "fonts", _VERA))  # inside the reportlab wheel
    return found


def _register(folder: Path, names: tuple[str, str]) -> FontPair:
    addMapping = rl("reportlab.lib.fonts").addMapping
    pdfmetrics = rl("reportlab.pdfbase.pdfmetrics")
    ttfonts = rl("reportlab.pdfbase.ttfonts")

    key = (str(folder), names[0])
    with _LOCK:
        pair = _LOADED.get(key)
        if pair is not None:
            return pair
        index = len(_LOADED)
        family = f"mssante-pdf-{index}"
        regular, bold = family + "-regular", family + "-bold"
        try:
            reg_font = ttfonts.TTFont(regular, str(folder / names[0]))
            bold_font = ttfonts.TTFont(bold, str(folder / names[1]))
        except (ttfonts.TTFError, OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the PDF font {str(folder / names[0])[:200]!r}: {exc}") from None
        pdfmetrics.registerFont(reg_font)
        pdfmetrics.registerFont(bold_font)
        for is_bold, is_italic, name in ((0, 0, regular), (1, 0, bold), (0, 1, regular), (1, 1, bold)):
            addMapping(family, is_bold, is_italic, name)
        glyphs = frozenset(int(c) for c in reg_font.face.charToGlyph) & frozenset(
            int(c) for c in bold_font.face.charToGlyph
        )
        pair = FontPair(regular, bold, family, str(folder / names[0]), glyphs)
        _LOADED[key] = pair
        return pair


def load_fonts(font_dir: str | os.PathLike[str] | None = None) -> FontPair:
    """Find and register (once per process) the regular and bold faces used by the renderer.

    Args:
        font_dir: a folder holding ``DejaVuSans.ttf`` and ``DejaVuSans-Bold.ttf``; when None, the
            ``MSSANTE_PDF_FONT_DIR`` environment variable, then the system folders, then ReportLab's Vera.

    Raises:
        ConfigError: the configured folder lacks the fonts, a font file is unreadable, or no font was found.
    """
    for folder, names in _candidates(font_dir):
        if all((folder / n).is_file() for n in names):
            return _register(folder, names)
    raise ConfigError(
        "no TrueType font found for PDF rendering: install Debian's fonts-dejavu-core or set "
        f"{FONT_DIR_ENV} to a folder holding {' and '.join(_DEJAVU)}"
    )
