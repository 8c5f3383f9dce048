"""A readable view of a CDA R2 document for the webmail: header facts and narrative sections.

No CDA stylesheet runs and no markup of the document reaches the page: the narrative block
(``section/text``, CDA R2 §4.3.5) is reduced to plain values — paragraphs, lists and tables of
strings — which the templates print with auto-escaping. Parsing goes through
:func:`mssante.cda.parse_xml` (no DTD, no entities, bounded).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Final

from mssante._i18n import N_, gettext
from mssante.cda import CDA_NS, INS_OIDS, Author, CDAHeader, Person, parse_xml
from mssante.errors import ContentError, LimitError

__all__ = ["Block", "CDAView", "Section", "format_hl7", "person_name", "read_cda"]

_N: Final = f"{{{CDA_NS}}}"
_MAX_SECTIONS: Final = 200
_MAX_DEPTH: Final = 6
_GENDER: Final = {"F": N_("Female"), "M": N_("Male"), "U": N_("Unknown")}


@dataclass(frozen=True, kw_only=True)
class Block:
    """One piece of narrative: ``paragraph`` (``text``), ``list`` (``items``) or ``table`` (``head``, ``rows``)."""

    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    caption: str = ""
    head: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Section:
    """A narrative section and its subsections."""

    title: str | None
    code: str | None
    blocks: tuple[Block, ...]
    sections: tuple[Section, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CDAView:
    """What the message page shows of one CDA document."""

    header: CDAHeader | None
    sections: tuple[Section, ...]
    non_xml_body: str | None = None
    error: str | None = None

    @property
    def ins_label(self) -> str | None:
        """``INS-NIR``, ``INS-NIA``, ``INS-NIR-TEST``... for the patient's INS OID."""
        patient = self.header.patient if self.header else None
        if patient is None or patient.ins is None:
            return None
        return INS_OIDS.get(patient.ins.oid, patient.ins.oid)

    @property
    def gender(self) -> str | None:
        """The patient's administrative sex (a catalogue id: ``Female``, ``Male``, ``Unknown``)."""
        patient = self.header.patient if self.header else None
        if patient is None or patient.gender is None:
            return None
        return _GENDER.get(patient.gender, patient.gender)


def _text(el: ET.Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _local(el: ET.Element) -> str:
    return el.tag.removeprefix(_N)


def _table(el: ET.Element) -> Block:
    head: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = []
    caption = el.find(_N + "caption")
    for tr in el.iter(_N + "tr"):
        cells = tuple(_text(c) for c in tr if _local(c) in ("th", "td"))
        if not head and cells and all(_local(c) == "th" for c in tr if _local(c) in ("th", "td")):
            head = cells
        else:
            rows.append(cells)
    return Block(kind="table", head=head, rows=tuple(rows), caption=_text(caption) if caption is not None else "")


def _blocks(text_el: ET.Element) -> tuple[Block, ...]:
    """The narrative block as paragraphs, lists and tables of plain strings (CDA R2 §4.3.5)."""
    out: list[Block] = []
    loose: list[str] = [text_el.text or ""]

    def flush() -> None:
        words = " ".join("".join(loose).split())
        if words:
            out.append(Block(kind="paragraph", text=words))
        loose.clear()

    for child in text_el:
        name = _local(child)
        if name == "table":
            flush()
            out.append(_table(child))
        elif name == "list":
            flush()
            out.append(Block(kind="list", items=tuple(_text(i) for i in child.findall(_N + "item"))))
        elif name == "paragraph":
            flush()
            out.append(Block(kind="paragraph", text=_text(child)))
        elif name == "br":
            flush()
        elif name not in ("renderMultiMedia", "footnote", "footnoteRef"):
            loose.append(" " + "".join(child.itertext()) + " ")
        loose.append(child.tail or "")
    flush()
    return tuple(out)


def _section(el: ET.Element, depth: int) -> Section:
    title = el.find(_N + "title")
    code = el.find(_N + "code")
    text = el.find(_N + "text")
    subs = () if depth >= _MAX_DEPTH else tuple(
        _section(s, depth + 1) for s in el.findall(f"{_N}component/{_N}section")[:_MAX_SECTIONS]
    )
    return Section(
        title=_text(title) if title is not None else None,
        code=code.get("code") if code is not None else None,
        blocks=_blocks(text) if text is not None else (),
        sections=subs,
    )


def read_cda(data: bytes | None, header: CDAHeader | None) -> CDAView:
    """Build the view of one document of an XDM archive; problems go to :attr:`CDAView.error`.

    Raises:
        Nothing: an unreadable document gives a view with ``error`` set.
    """
    if data is None:
        return CDAView(header=header, sections=(), error=gettext("The document is missing from the archive."))
    try:
        root = parse_xml(data, what="CDA")
    except (ContentError, LimitError) as exc:
        return CDAView(header=header, sections=(), error=exc.message)
    if root.tag != _N + "ClinicalDocument":
        return CDAView(header=header, sections=(), error=gettext("This file is not a CDA R2 document."))
    body = root.find(f"{_N}component/{_N}structuredBody")
    if body is None:
        media = root.find(f"{_N}component/{_N}nonXMLBody/{_N}text")
        return CDAView(header=header, sections=(),
                       non_xml_body=(media.get("mediaType") or gettext("unknown")) if media is not None else None)
    sections = tuple(_section(s, 1) for s in body.findall(f"{_N}component/{_N}section")[:_MAX_SECTIONS])
    return CDAView(header=header, sections=sections)


def format_hl7(value: str | None) -> str:
    """An HL7 TS (``YYYYMMDD[HHMM[SS]][+ZZZZ]``) as text in the language in use: ``28/03/1979`` or
    ``05/02/2025 à 10:30 (UTC+01:00)`` (English: ``03/28/1979``, ``02/05/2025 at 10:30 (UTC+01:00)``).

    Raises:
        Nothing: an unreadable value is returned as written.
    """
    if not value:
        return ""
    raw = value.strip()
    core, offset = raw, None
    for sign in ("+", "-"):
        if sign in raw[8:]:
            idx = raw.index(sign, 8)
            core, offset = raw[:idx], raw[idx:]
    core = core.split(".")[0]
    try:
        day = date(int(core[:4]), int(core[4:6]), int(core[6:8]))
    except (ValueError, IndexError):
        return raw
    if len(core) < 12:
        return day.strftime(gettext("%m/%d/%Y"))
    try:
        moment = datetime(day.year, day.month, day.day, int(core[8:10]), int(core[10:12]))
    except ValueError:
        return raw
    text = moment.strftime(gettext("%m/%d/%Y at %H:%M"))
    if offset and len(offset) == 5 and offset[1:].isdigit():
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        delta = timedelta(hours=hours, minutes=minutes) * (1 if offset[0] == "+" else -1)
        text += f" (UTC{timezone(delta).tzname(None)[3:] or '+00:00'})"
    return text


def person_name(person: Person | None) -> str:
    """``Dr Jean DUPONT`` from a CDA person (prefix, given, family)."""
    if person is None:
        return ""
    return " ".join(p for p in (person.prefix, person.given, person.family, person.suffix) if p)


def author_label(author: Author) -> str:
    """The author's name, specialty and organisation on one line."""
    parts = [person_name(author.person) or (author.device or "")]
    if author.specialty is not None and author.specialty.display_name:
        parts.append(author.specialty.display_name)
    if author.organization is not None and author.organization.name:
        parts.append(author.organization.name)
    return " — ".join(p for p in parts if p)
