"""CDA narrative blocks (``section/text``) to a small, bounded document model.

The model keeps what a faithful transcription needs and drops styling:

* :class:`Para`: a run of inline pieces (text, line breaks, superscript, subscript);
* :class:`ListBlock`: ordered or unordered items, each a tuple of blocks;
* :class:`TableBlock`: rows of :class:`Cell` (header flag, ``colspan``/``rowspan``, nested blocks);
* :class:`Heading`: a section (or sub-section) title.

Inline elements (``content``, ``linkHtml``, ``footnote``, unknown elements) contribute their text;
``linkHtml`` targets are never followed, ``renderMultiMedia`` becomes a visible placeholder and
``footnoteRef`` is dropped. Every extracted character is counted against
:attr:`PdfLimits.max_narrative_chars`; nesting deeper than :attr:`PdfLimits.max_nesting` is flattened to
paragraphs (the text is kept).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from mssante.cda import XMLLimits
from mssante.errors import LimitError

__all__ = [
    "Block",
    "Cell",
    "Heading",
    "Inline",
    "ListBlock",
    "Para",
    "PdfLimits",
    "TableBlock",
    "body_blocks",
]

_N = "{urn:hl7-org:v3}"
_MULTIMEDIA = "[contenu multimédia non reproduit]"


@dataclass(frozen=True, slots=True)
class PdfLimits:
    """Bounds applied while turning an untrusted CDA document into a PDF.

    Attributes:
        max_narrative_chars: largest amount of narrative text (all sections together), in characters.
        max_blocks: largest number of paragraphs, list items, table cells and headings.
        max_pages: largest number of PDF pages.
        max_nesting: deepest nesting of sections, lists and tables kept as structure (deeper is flattened).
        max_columns: widest table kept as a grid (wider tables are written row by row).
        xml: size, depth and element-count bounds of the CDA XML itself.
    """

    max_narrative_chars: int = 500_000
    max_blocks: int = 50_000
    max_pages: int = 300
    max_nesting: int = 6
    max_columns: int = 16
    xml: XMLLimits = field(default_factory=XMLLimits)


@dataclass(frozen=True, slots=True)
class Inline:
    """A piece of paragraph text: ``kind`` is ``""`` (plain), ``"br"``, ``"sup"`` or ``"sub"``."""

    text: str
    kind: str = ""


@dataclass(frozen=True, slots=True)
class Para:
    """A paragraph; ``caption`` marks a ``caption`` element (rendered in italics)."""

    inlines: tuple[Inline, ...]
    caption: bool = False

    @property
    def plain(self) -> str:
        """The paragraph's text, line breaks as ``\\n``."""
        return "".join("\n" if i.kind == "br" else i.text for i in self.inlines)


@dataclass(frozen=True, slots=True)
class Heading:
    """A section title at ``level`` 1 (top section) or deeper."""

    text: str
    level: int


@dataclass(frozen=True, slots=True)
class ListBlock:
    """A ``list``: its items, each a tuple of blocks."""

    items: tuple[tuple[Block, ...], ...]
    ordered: bool = False


@dataclass(frozen=True, slots=True)
class Cell:
    """A ``td``/``th`` cell."""

    blocks: tuple[Block, ...]
    header: bool = False
    colspan: int = 1
    rowspan: int = 1


@dataclass(frozen=True, slots=True)
class TableBlock:
    """A ``table``: ``rows`` of cells, the first ``header_rows`` of which repeat on each page."""

    rows: tuple[tuple[Cell, ...], ...]
    header_rows: int = 0
    caption: Para | None = None


Block = Para | Heading | ListBlock | TableBlock


@dataclass
class _Budget:
    limits: PdfLimits
    chars: int = 0
    blocks: int = 0
    inlines: list[Inline] = field(default_factory=list)

    def count_chars(self, n: int) -> None:
        self.chars += n
        if self.chars > self.limits.max_narrative_chars:
            raise LimitError(
                f"CDA narrative longer than {self.limits.max_narrative_chars} characters; not rendered to PDF"
            )

    def count_block(self) -> None:
        self.blocks += 1
        if self.blocks > self.limits.max_blocks:
            raise LimitError(f"CDA narrative has more than {self.limits.max_blocks} blocks; not rendered to PDF")


def _local(el: ET.Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag[len(_N) :] if tag.startswith(_N) else ""


def _squash(text: str) -> str:
    """Collapse XML white space like HTML does (keeps one leading/trailing space)."""
    if not text:
        return ""
    core = " ".join(text.split())
    if not core:
        return " "
    return (" " if text[0].isspace() else "") + core + (" " if text[-1].isspace() else "")


def _span(el: ET.Element, name: str, default: int = 1) -> int:
    raw = (el.get(name) or "").strip()
    return max(1, min(int(raw), 1000)) if raw.isdigit() else default


class _Walker:
    def __init__(self, limits: PdfLimits) -> None:
        self.limits = limits
        self.budget = _Budget(limits)

    def _add_text(self, out: list[Inline], text: str | None, kind: str = "") -> None:
        squashed = _squash(text or "")
        if squashed:
            self.budget.count_chars(len(squashed))
            out.append(Inline(squashed, kind))

    def inline(self, el: ET.Element, out: list[Inline], kind: str = "") -> None:
        """Append the inline content of ``el`` (its text and children, not its tail)."""
        self._add_text(out, el.text, kind)
        for child in el:
            self.inline_child(child, out, kind)
            self._add_text(out, child.tail, kind)

    def inline_child(self, child: ET.Element, out: list[Inline], kind: str = "") -> None:
        """Append one inline element (without its tail)."""
        name = _local(child)
        if name == "br":
            out.append(Inline("", "br"))
        elif name == "renderMultiMedia":
            out.append(Inline(_MULTIMEDIA))
        elif name in ("sup", "sub"):
            self.inline(child, out, name)
        elif name == "footnote":
            out.append(Inline(" [note : "))
            self.inline(child, out, kind)
            out.append(Inline("]"))
        elif name != "footnoteRef":  # content, linkHtml, unknown elements: keep the text
            self.inline(child, out, kind)

    def _para(self, inlines: list[Inline], caption: bool = False) -> Para | None:
        while inlines and inlines[0].kind != "br" and not inlines[0].text.strip():
            inlines.pop(0)
        if not any(i.text.strip() for i in inlines):
            return None
        self.budget.count_block()
        return Para(tuple(inlines), caption)

    def blocks(self, el: ET.Element, depth: int) -> list[Block]:
        """Turn the mixed content of ``el`` (``text``, ``item``, ``td``...) into blocks."""
        out: list[Block] = []
        pending: list[Inline] = []

        def flush() -> None:
            para = self._para(pending[:])
            pending.clear()
            if para is not None:
                out.append(para)

        self._add_text(pending, el.text)
        for child in el:
            name = _local(child)
            if name in ("paragraph", "list", "table") and depth >= self.limits.max_nesting:
                flush()
                flat: list[Inline] = []
                self.inline(child, flat)
                para = self._para(flat)
                if para is not None:
                    out.append(para)
            elif name == "paragraph":
                flush()
                out.extend(self._captioned(child, depth))
            elif name == "list":
                flush()
                out.extend(self._list(child, depth + 1))
            elif name == "table":
                flush()
                out.extend(self._table(child, depth + 1))
            elif name == "caption":
                flush()
                cap: list[Inline] = []
                self.inline(child, cap)
                para = self._para(cap, caption=True)
                if para is not None:
                    out.append(para)
            elif name == "br":
                pending.append(Inline("", "br"))
            else:
                self.inline_child(child, pending)
            self._add_text(pending, child.tail)
        flush()
        return out

    def _captioned(self, el: ET.Element, depth: int) -> list[Block]:
        inlines: list[Inline] = []
        self._add_text(inlines, el.text)
        blocks: list[Block] = []
        for child in el:
            if _local(child) == "caption":
                cap: list[Inline] = []
                self.inline(child, cap)
                para = self._para(cap, caption=True)
                if para is not None:
                    blocks.append(para)
            else:
                self.inline_child(child, inlines)
            self._add_text(inlines, child.tail)
        para = self._para(inlines)
        return [*blocks, *([para] if para is not None else [])]

    def _caption_of(self, el: ET.Element) -> Para | None:
        cap_el = el.find(_N + "caption")
        if cap_el is None:
            return None
        cap: list[Inline] = []
        self.inline(cap_el, cap)
        return self._para(cap, caption=True)

    def _list(self, el: ET.Element, depth: int) -> list[Block]:
        items: list[tuple[Block, ...]] = []
        for item in el.findall(_N + "item"):
            self.budget.count_block()
            items.append(tuple(self.blocks(item, depth)))
        caption = self._caption_of(el)
        ordered = (el.get("listType") or "").strip() == "ordered"
        return [*([caption] if caption else []), ListBlock(tuple(items), ordered)]

    def _table(self, el: ET.Element, depth: int) -> list[Block]:
        rows: list[tuple[Cell, ...]] = []
        header_rows = 0
        groups: list[tuple[str, ET.Element]] = []
        for child in el:
            name = _local(child)
            if name in ("thead", "tbody", "tfoot"):
                groups.extend((name, tr) for tr in child.findall(_N + "tr"))
            elif name == "tr":
                groups.append(("tbody", child))
        ordered = [g for g in groups if g[0] == "thead"] + [g for g in groups if g[0] == "tbody"]
        ordered += [g for g in groups if g[0] == "tfoot"]
        for group, tr in ordered:
            cells: list[Cell] = []
            for td in tr:
                name = _local(td)
                if name not in ("td", "th"):
                    continue
                self.budget.count_block()
                cells.append(
                    Cell(tuple(self.blocks(td, depth)), name == "th", _span(td, "colspan"), _span(td, "rowspan"))
                )
            if group == "thead" and len(rows) == header_rows:
                header_rows += 1
            rows.append(tuple(cells))
        return [TableBlock(tuple(rows), header_rows, self._caption_of(el))]

    def section(self, el: ET.Element, level: int, out: list[Block]) -> None:
        """Append the blocks of ``section`` ``el`` and of its sub-sections."""
        title_el = el.find(_N + "title")
        if title_el is not None:
            title: list[Inline] = []
            self.inline(title_el, title)
            text = "".join(i.text for i in title).strip()
            if text:
                self.budget.count_block()
                out.append(Heading(text, min(level, 3)))
        text_el = el.find(_N + "text")
        if text_el is not None:
            out.extend(self.blocks(text_el, min(level, self.limits.max_nesting)))
        for comp in el.findall(_N + "component"):
            sub = comp.find(_N + "section")
            if sub is not None:
                self.section(sub, level + 1, out)


def body_blocks(structured_body: ET.Element, limits: PdfLimits) -> list[Block]:
    """Return the blocks of every ``component/section`` of a ``structuredBody``, in document order.

    Raises:
        LimitError: the narrative is longer than ``limits.max_narrative_chars`` or has more than
            ``limits.max_blocks`` blocks.
    """
    walker = _Walker(limits)
    out: list[Block] = []
    for comp in structured_body.findall(_N + "component"):
        sec = comp.find(_N + "section")
        if sec is not None:
            walker.section(sec, 1, out)
    return out
