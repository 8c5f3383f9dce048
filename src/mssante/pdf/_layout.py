"""Lay out the French header rows and the narrative blocks on A4 pages with ReportLab (platypus).

Every piece of CDA text is cleaned (:meth:`FontPair.clean`) and XML-escaped before it reaches ReportLab's
paragraph mark-up, so a document cannot inject mark-up (no ``<img>``, no links, no external resource).
Tables become grids with repeated header rows; when a table cannot be laid out (a row taller than a page,
too many columns) it is written row by row instead. Pages carry the patient, the title and ``Page n / N``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from mssante.errors import ContentError, LimitError
from mssante.pdf._fonts import FontPair
from mssante.pdf._narrative import Block, Cell, Heading, ListBlock, Para, PdfLimits, TableBlock
from mssante.pdf._pdfa import PdfMeta, doc_template_info
from mssante.pdf._rl import rl

__all__ = ["build_pdf"]

_MM = 72 / 25.4
_MARGIN = 16 * _MM
_GREY = (0.45, 0.45, 0.45)
_LIGHT = (0.91, 0.92, 0.94)
_CHUNK_ROWS = 100


class _Styles:
    def __init__(self, fonts: FontPair) -> None:
        ps = rl("reportlab.lib.styles").ParagraphStyle
        base = ps(
            "mss-body", fontName=fonts.regular, bulletFontName=fonts.regular, fontSize=9.5, leading=12.5, spaceAfter=3
        )
        self.body = base
        self.caption = ps("mss-caption", parent=base, textColor=_GREY)
        self.cell = ps("mss-cell", parent=base, fontSize=8.5, leading=10.5, spaceAfter=0)
        self.cell_head = ps("mss-cell-head", parent=self.cell, fontName=fonts.bold)
        self.label = ps("mss-label", parent=self.cell, fontName=fonts.bold)
        self.title = ps("mss-title", parent=base, fontName=fonts.bold, fontSize=15, leading=19, spaceAfter=8)
        self.group = ps("mss-group", parent=base, fontName=fonts.bold, fontSize=10, spaceBefore=6, spaceAfter=2)
        self.heads = [
            ps(f"mss-h{n}", parent=base, fontName=fonts.bold, fontSize=size, leading=size + 3, spaceBefore=space)
            for n, (size, space) in enumerate(((12.5, 12), (11, 8), (10, 6)), 1)
        ]


class _Builder:
    def __init__(self, fonts: FontPair, limits: PdfLimits, linear_tables: bool) -> None:
        self.fonts = fonts
        self.limits = limits
        self.linear = linear_tables
        self.styles = _Styles(fonts)
        self.platypus = rl("reportlab.platypus")
        self.width = rl("reportlab.lib.pagesizes").A4[0] - 2 * _MARGIN
        self.pstyle = rl("reportlab.lib.styles").ParagraphStyle
        self.derived: dict[tuple[str, float, bool], Any] = {}

    def text(self, value: str) -> str:
        return escape(self.fonts.clean(value))

    def markup(self, para: Para) -> str:
        parts: list[str] = []
        for piece in para.inlines:
            if piece.kind == "br":
                parts.append("<br/>")
            elif piece.kind == "sup":
                parts.append(f"<super>{self.text(piece.text)}</super>")
            elif piece.kind == "sub":
                parts.append(f"<sub>{self.text(piece.text)}</sub>")
            else:
                parts.append(self.text(piece.text))
        return "".join(parts).strip()

    def paragraph(self, markup: str, style: Any, indent: float = 0, bullet: str | None = None) -> Any:
        if indent or bullet:
            key = (style.name, indent, bullet is not None)
            derived = self.derived.get(key)
            if derived is None:
                left = indent + (14 if bullet else 0)
                derived = self.pstyle(
                    f"{style.name}-{len(self.derived)}", parent=style, leftIndent=left, bulletIndent=indent + 2
                )
                self.derived[key] = derived
            style = derived
        return self.platypus.Paragraph(markup or "&nbsp;", style, bulletText=bullet)

    def front(self, title: str, groups: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> list[Any]:
        out: list[Any] = [self.paragraph(self.text(title), self.styles.title)]
        for group, rows in groups:
            data = [
                [self.paragraph(self.text(label), self.styles.label), self.paragraph(self.text(v), self.styles.cell)]
                for label, v in rows
            ]
            table = self.platypus.Table(data, colWidths=[48 * _MM, self.width - 48 * _MM], hAlign="LEFT")
            table.setStyle(self._grid_style(len(data), header_rows=0, spans=[], label_column=True))
            out += [self.paragraph(self.text(group), self.styles.group), table]
        return out

    def blocks(self, blocks: Sequence[Block], indent: float = 0) -> list[Any]:
        out: list[Any] = []
        for block in blocks:
            if isinstance(block, Heading):
                style = self.styles.heads[min(block.level, 3) - 1]
                out.append(self.paragraph(self.text(block.text), style))
            elif isinstance(block, Para):
                style = self.styles.caption if block.caption else self.styles.body
                out.append(self.paragraph(self.markup(block), style, indent))
            elif isinstance(block, ListBlock):
                out += self.bullets(block, indent)
            else:
                out += self.table(block, indent)
        return out

    def bullets(self, block: ListBlock, indent: float) -> list[Any]:
        out: list[Any] = []
        for n, item in enumerate(block.items, 1):
            bullet = f"{n}." if block.ordered else "•"
            first, rest = (item[0], item[1:]) if item and isinstance(item[0], Para) else (None, item)
            text = self.markup(first) if first is not None else ""
            out.append(self.paragraph(text, self.styles.body, indent, bullet))
            out += self.blocks(rest, indent + 14)
        return out

    def _flat(self, blocks: Sequence[Block]) -> list[str]:
        """Cell content as paragraph mark-up: nested lists and tables become plain lines."""
        lines: list[str] = []
        for block in blocks:
            if isinstance(block, Para | Heading):
                lines.append(self.markup(block) if isinstance(block, Para) else self.text(block.text))
            elif isinstance(block, ListBlock):
                for n, item in enumerate(block.items, 1):
                    mark = f"{n}." if block.ordered else "•"
                    lines.append(f"{mark} " + " ".join(self._flat(item)))
            else:
                for row in block.rows:
                    lines.append(" | ".join(" ".join(self._flat(c.blocks)) for c in row))
        return lines

    def _cell(self, cell: Cell) -> Any:
        style = self.styles.cell_head if cell.header else self.styles.cell
        return self.paragraph("<br/>".join(self._flat(cell.blocks)), style)

    def table(self, block: TableBlock, indent: float) -> list[Any]:
        out: list[Any] = []
        if block.caption is not None:
            out.append(self.paragraph(self.markup(block.caption), self.styles.caption, indent))
        rows = [r for r in block.rows if r]
        if not rows:
            return out
        placed = None if self.linear else _place(rows, self.limits.max_columns)
        if placed is None:
            for row in rows:
                cells = [" ".join(self._flat(c.blocks)) for c in row]
                style = self.styles.cell_head if all(c.header for c in row) else self.styles.cell
                out.append(self.paragraph(" | ".join(cells), style, indent))
            return out
        grid, spans = placed
        columns = len(grid[0])
        data = [[self._cell(c) if c is not None else "" for c in r] for r in grid]
        weights = [3.0] * columns
        for r in grid:
            for i, c in enumerate(r):
                if c is not None and c.colspan == 1:
                    weights[i] = max(weights[i], min(30.0, float(sum(len(t) for t in self._flat(c.blocks)))))
        avail = self.width - indent
        widths = [avail * w / sum(weights) for w in weights]
        header_rows = block.header_rows if block.header_rows < len(grid) else 0
        head = data[:header_rows]
        head_spans = [s for s in spans if s[3] < header_rows]
        for start, end in _chunks(len(grid), header_rows, spans):
            part = head + data[start:end]
            shift = start - header_rows
            part_spans = head_spans + [
                (c0, r0 - shift, c1, r1 - shift) for c0, r0, c1, r1 in spans if start <= r0 < end
            ]
            table = self.platypus.Table(part, colWidths=widths, repeatRows=header_rows, splitByRow=1, hAlign="LEFT")
            table.setStyle(self._grid_style(len(part), header_rows, part_spans, label_column=False))
            out.append(table)
        out.append(self.platypus.Spacer(1, 4))
        return out

    def _grid_style(
        self, nrows: int, header_rows: int, spans: list[tuple[int, int, int, int]], label_column: bool
    ) -> Any:
        colors = rl("reportlab.lib.colors")
        cmds: list[tuple[Any, ...]] = [
            ("GRID", (0, 0), (-1, -1), 0.5, colors.Color(*_GREY)),
            ("FONTNAME", (0, 0), (-1, -1), self.fonts.regular),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ]
        if header_rows:
            cmds.append(("BACKGROUND", (0, 0), (-1, header_rows - 1), colors.Color(*_LIGHT)))
        if label_column and nrows:
            cmds.append(("BACKGROUND", (0, 0), (0, -1), colors.Color(*_LIGHT)))
        cmds += [("SPAN", (c0, r0), (c1, r1)) for c0, r0, c1, r1 in spans]
        return self.platypus.TableStyle(cmds)


def _place(
    rows: Sequence[Sequence[Cell]], max_columns: int
) -> tuple[list[list[Cell | None]], list[tuple[int, int, int, int]]] | None:
    """Place cells on a grid like HTML does (row and column spans): the grid and the SPAN boxes.

    Returns None when the grid would be wider than ``max_columns`` (the table is then written row by row),
    which also bounds the work done for hostile spans.
    """
    taken: set[tuple[int, int]] = set()
    grid: list[list[Cell | None]] = [[] for _ in rows]
    spans: list[tuple[int, int, int, int]] = []
    for r, row in enumerate(rows):
        col = 0
        for cell in row:
            while (r, col) in taken:
                col += 1
            last_row = min(len(rows) - 1, r + cell.rowspan - 1)
            last_col = col + cell.colspan - 1
            if last_col >= max_columns:
                return None
            for rr in range(r, last_row + 1):
                for cc in range(col, last_col + 1):
                    taken.add((rr, cc))
            line = grid[r]
            line.extend([None] * (last_col + 1 - len(line)))
            line[col] = cell
            if last_row > r or last_col > col:
                spans.append((col, r, last_col, last_row))
            col = last_col + 1
    width = max((c for _, c in taken), default=-1) + 1
    for line in grid:
        line.extend([None] * (width - len(line)))
    return grid, spans


def _chunks(nrows: int, header_rows: int, spans: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """Cut the body rows into runs of about :data:`_CHUNK_ROWS` rows, never inside a row span.

    ReportLab re-measures the rest of a table at every page break, so one huge table costs quadratic time;
    consecutive smaller tables (each repeating the header rows) look the same and stay linear.
    """
    crossing: set[int] = set()
    for _c0, r0, _c1, r1 in spans:
        crossing.update(range(r0, r1))  # a cut after row r is impossible when a span covers r and r + 1
    cuts: list[tuple[int, int]] = []
    start = header_rows
    for row in range(header_rows, nrows):
        if row + 1 - start >= _CHUNK_ROWS and row not in crossing and row + 1 < nrows:
            cuts.append((start, row + 1))
            start = row + 1
    cuts.append((start, nrows))
    return cuts


def _canvas_class(fonts: FontPair, footer: str, title: str, max_pages: int) -> type:
    """A Canvas that defers pages to write ``Page n / N`` footers."""
    base = rl("reportlab.pdfgen.canvas").Canvas

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        self._mss_pages = []

    def showPage(self: Any) -> None:
        if len(self._mss_pages) >= max_pages:
            raise LimitError(f"the PDF would have more than {max_pages} pages; not rendered")
        self._mss_pages.append(dict(self.__dict__))
        self._startPage()

    def save(self: Any) -> None:
        total = len(self._mss_pages)
        width = self._pagesize[0]
        for number, state in enumerate(self._mss_pages, 1):
            self.__dict__.update(state)
            self.setStrokeColorRGB(*_GREY)
            self.setLineWidth(0.5)
            self.line(_MARGIN, 12 * _MM, width - _MARGIN, 12 * _MM)
            self.setFillColorRGB(*_GREY)
            self.setFont(fonts.regular, 7.5)
            self.drawString(_MARGIN, 8.5 * _MM, fonts.clean(footer)[:150])
            self.drawString(_MARGIN, 5.5 * _MM, fonts.clean(title)[:150])
            self.drawRightString(width - _MARGIN, 8.5 * _MM, f"Page {number} / {total}")
            base.showPage(self)
        base.save(self)

    return type("_PdfACanvas", (base,), {"__init__": __init__, "showPage": showPage, "save": save})


def build_pdf(
    *,
    fonts: FontPair,
    meta: PdfMeta,
    limits: PdfLimits,
    title: str,
    front: Sequence[tuple[str, Sequence[tuple[str, str]]]],
    blocks: Sequence[Block],
    footer: str,
    closing: str,
) -> bytes:
    """Lay out and write the PDF; retry with row-by-row tables when a table cannot fit a page.

    Raises:
        LimitError: more than ``limits.max_pages`` pages.
        ContentError: the content cannot be laid out even with row-by-row tables.
        ConfigError: the installed ReportLab lacks the internals relied upon.
    """
    platypus = rl("reportlab.platypus")
    layout_error = rl("reportlab.platypus.doctemplate").LayoutError
    canvas_class = _canvas_class(fonts, footer, title, limits.max_pages)
    for linear in (False, True):
        builder = _Builder(fonts, limits, linear)
        story = [*builder.front(title, front), platypus.Spacer(1, 6), *builder.blocks(blocks)]
        story.append(builder.paragraph(builder.text(closing), builder.styles.caption))
        out = io.BytesIO()
        doc = platypus.SimpleDocTemplate(
            out,
            pagesize=rl("reportlab.lib.pagesizes").A4,
            leftMargin=_MARGIN,
            rightMargin=_MARGIN,
            topMargin=_MARGIN,
            bottomMargin=18 * _MM,
            invariant=1,
            pageCompression=1,
            initialFontName=fonts.regular,
            lang="fr-FR",
            **doc_template_info(meta),
        )
        try:
            doc.build(story, canvasmaker=canvas_class)
        except layout_error:
            continue
        return out.getvalue()
    raise ContentError("the CDA narrative cannot be laid out on A4 pages (a block is taller than a page)")
