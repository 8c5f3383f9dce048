"""The guides stay true to their examples and to each other (no sandbox needed).

* every code block announced as an excerpt (``<!-- extrait: examples/x.py -->`` or
  ``<!-- excerpt: ... -->``) is copied verbatim from that file (indentation aside);
* every relative link points to an existing file, and its ``#anchor`` to an existing heading;
* no page loads an external resource (images are local);
* the French and English guides have the same pages, the same excerpts, in the same order;
* ``docs/gen_api.py`` is deterministic and covers the public modules.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "examples" not in p.parts)
GUIDES = {"fr": sorted((DOCS / "fr").glob("*.md")), "en": sorted((DOCS / "en").glob("*.md"))}
_EXCERPT = re.compile(r"<!-- (?:extrait|excerpt): (\S+) -->\n```\w*\n(.*?)\n```", re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _excerpts(page: Path) -> list[tuple[str, str]]:
    return _EXCERPT.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_excerpts_are_verbatim(page: Path) -> None:
    for source, block in _excerpts(page):
        lines = (page.parent / ".." / source).resolve().read_text(encoding="utf-8").splitlines()
        wanted = textwrap.dedent(block).splitlines()
        windows = (textwrap.dedent("\n".join(lines[i:i + len(wanted)])).splitlines()
                   for i in range(len(lines) - len(wanted) + 1))
        assert wanted in windows, f"{page.name}: an excerpt of {source} differs from the file"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_links_resolve_and_stay_local(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in _LINK.findall(text):
        assert not re.match(r"[a-z]+://", target), f"{page.name}: external link or resource {target}"
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: broken link {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: no heading for #{anchor} in {resolved.name}"


def test_french_and_english_guides_match() -> None:
    assert len(GUIDES["fr"]) == len(GUIDES["en"]) == 8
    fr = sorted(src + block for page in GUIDES["fr"] for src, block in _excerpts(page))
    en = sorted(src + block for page in GUIDES["en"] for src, block in _excerpts(page))
    assert fr == en, "the French and English guides quote different excerpts"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_generator_is_deterministic() -> None:
    gen = _generator()
    first, second = gen.generate(), gen.generate()
    assert first == second
    assert not re.search(r" at 0x[0-9a-f]+", first)
    for module in ("mssante.client", "mssante.psc", "mssante.bridge.client", "mssante.errors"):
        assert f"\n## {module}\n" in first
    assert "### `Mailbox`" in first and "**Raises**" in first


def test_api_reference_is_up_to_date() -> None:
    """docs/api.md is what docs/gen_api.py writes today (regenerate with: python docs/gen_api.py)."""
    gen = _generator()
    assert gen.generate() == (DOCS / "api.md").read_text(encoding="utf-8"), "run: .venv/bin/python docs/gen_api.py"
