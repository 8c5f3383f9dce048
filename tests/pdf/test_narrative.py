"""The narrative model (section/text to blocks), table placement, layout fallbacks and font discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.cda import parse_xml
from mssante.errors import ConfigError, LimitError
from mssante.pdf import FONT_DIR_ENV, PdfLimits, _fonts, render_cda_pdf
from mssante.pdf._layout import _chunks, _place
from mssante.pdf._narrative import Cell, Heading, ListBlock, Para, TableBlock, body_blocks
from tests.pdf._support import NOW, narrative, pdftotext

N = "{urn:hl7-org:v3}"


def _blocks(text_xml: str, limits: PdfLimits | None = None) -> list[object]:
    root = parse_xml(narrative(text_xml))
    body = root.find(f"{N}component/{N}structuredBody")
    assert body is not None
    return list(body_blocks(body, limits or PdfLimits()))


def test_mixed_content_paragraphs_lists_tables_and_inlines() -> None:
    blocks = _blocks(
        "Texte libre <content styleCode='Bold'>en gras</content><br/>ligne 2"
        "<paragraph><caption>Légende</caption>Glycémie 10<sup>9</sup>/L, CO<sub>2</sub>"
        "<footnoteRef IDREF='f1'/><footnote ID='f1'>à jeun</footnote></paragraph>"
        "<list listType='ordered'><item>un</item><item>deux<list><item>deux-a</item></list></item></list>"
        "<renderMultiMedia referencedObject='img1'/>"
        "<table><caption>Résultats</caption><thead><tr><th>A</th><th>B</th></tr></thead>"
        "<tbody><tr><td colspan='2'>large</td></tr></tbody></table>"
    )
    assert blocks[0] == Heading("Section de test", 1)
    first = blocks[1]
    assert isinstance(first, Para) and first.plain == "Texte libre en gras\nligne 2"
    assert isinstance(blocks[2], Para) and blocks[2].caption and blocks[2].plain == "Légende"
    para = blocks[3]
    assert isinstance(para, Para)
    assert [(i.text, i.kind) for i in para.inlines if i.kind] == [("9", "sup"), ("2", "sub")]
    assert para.plain == "Glycémie 109/L, CO2 [note : à jeun]"
    lst = blocks[4]
    assert isinstance(lst, ListBlock) and lst.ordered and len(lst.items) == 2
    assert isinstance(lst.items[1][1], ListBlock)
    assert isinstance(blocks[5], Para) and "multimédia non reproduit" in blocks[5].plain
    table = blocks[6]
    assert isinstance(table, TableBlock) and table.header_rows == 1 and table.caption is not None
    assert table.rows[1][0].colspan == 2 and table.rows[0][0].header


def test_nested_sections_and_deep_nesting_is_flattened_not_lost() -> None:
    deep = "<list><item>" * 12 + "au fond" + "</item></list>" * 12
    blocks = _blocks(deep, PdfLimits(max_nesting=3))

    def depth_and_texts(items: list[object], depth: int) -> tuple[int, list[str]]:
        deepest, texts = depth, []
        for b in items:
            if isinstance(b, Para):
                texts.append(b.plain)
            elif isinstance(b, ListBlock):
                for item in b.items:
                    d, t = depth_and_texts(list(item), depth + 1)
                    deepest, texts = max(deepest, d), texts + t
        return deepest, texts

    deepest, texts = depth_and_texts(blocks, 0)
    assert deepest == 2 and texts == ["au fond"]


def test_place_handles_row_and_column_spans() -> None:
    c = Cell((), colspan=1)
    wide = Cell((), colspan=2)
    tall = Cell((), rowspan=3)
    assert _place([[tall, wide], [c, c], [c, c]], max_columns=2) is None
    placed = _place([[tall, wide], [c, c], [c, c]], max_columns=3)
    assert placed is not None
    grid, spans = placed
    assert [len(r) for r in grid] == [3, 3, 3]
    assert grid[1][0] is None and grid[1][1] is c and grid[0][1] is wide
    assert sorted(spans) == [(0, 0, 0, 2), (1, 0, 2, 0)]


def test_tall_cells_and_wide_tables_fall_back_to_rows() -> None:
    long_cell = "Observation très détaillée. " * 600
    wide = "<tr>" + "".join(f"<td>c{i}</td>" for i in range(30)) + "</tr>"
    cda = narrative(
        f"<table><tbody><tr><td>Clé</td><td>{long_cell}</td></tr></tbody></table><table><tbody>{wide}</tbody></table>"
    )
    text = pdftotext(render_cda_pdf(cda, now=NOW))
    assert text.count("Observation très détaillée.") == 600
    assert "c0 | c1 | c2" in text and "c29" in text


def test_block_budget_counts_table_cells() -> None:
    rows = "<tr><td>x</td></tr>" * 50
    with pytest.raises(LimitError):
        _blocks(f"<table><tbody>{rows}</tbody></table>", PdfLimits(max_blocks=20))


# --- fonts ---------------------------------------------------------------------------------------------------


def test_configured_font_folder_must_hold_the_fonts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="font_dir"):
        _fonts.load_fonts(tmp_path)
    monkeypatch.setenv(FONT_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=FONT_DIR_ENV):
        render_cda_pdf(narrative("<paragraph>x</paragraph>"), now=NOW)
    (tmp_path / "DejaVuSans.ttf").write_bytes(b"not a font")
    (tmp_path / "DejaVuSans-Bold.ttf").write_bytes(b"not a font")
    with pytest.raises(ConfigError, match="cannot load"):
        _fonts.load_fonts()


def test_reportlab_vera_is_the_last_resort_and_missing_fonts_are_config_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(FONT_DIR_ENV, raising=False)
    monkeypatch.setattr(_fonts, "_SYSTEM_DIRS", ())
    pair = _fonts.load_fonts()
    assert pair.source.endswith("Vera.ttf")
    assert pair.clean("é€ → x") == "é€ ? x"
    pdf = render_cda_pdf(narrative("<paragraph>Évolution favorable</paragraph>"), now=NOW)
    assert b"+BitstreamVeraSans" in pdf and b"DejaVu" not in pdf and "Évolution favorable" in pdftotext(pdf)
    monkeypatch.setattr(_fonts, "_VERA", ("missing.ttf", "missing-bold.ttf"))
    with pytest.raises(ConfigError, match="fonts-dejavu-core"):
        _fonts.load_fonts()


def test_long_tables_are_cut_between_spans_and_keep_every_row() -> None:
    assert _chunks(250, 1, [(0, 100, 0, 101)]) == [(1, 102), (102, 202), (202, 250)]
    rows = "".join(f"<tr><td>ligne {i}</td><td>{i * 7}</td></tr>" for i in range(230))
    cda = narrative(f"<table><thead><tr><th>Examen</th><th>Valeur</th></tr></thead><tbody>{rows}</tbody></table>")
    text = pdftotext(render_cda_pdf(cda, now=NOW))
    assert all(f"ligne {i} {i * 7}" in text for i in range(230))
    assert text.count("Examen Valeur") >= 3  # the header row is repeated on every chunk and page
