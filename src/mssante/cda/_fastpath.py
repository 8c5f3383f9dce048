"""The fast path of :func:`~mssante.cda._xml.parse_pruned`: expat with C handlers only, then the limits.

The exact parse calls a Python handler for every element, which checks the limits before the element is
built. Here the C ``TreeBuilder`` is bound straight to expat (no Python call per element; the DTD, entity
and namespace-length checks of :func:`~mssante.cda._xml.safe_parser` stay on, as they must come first),
and the depth, name and attribute lengths are then checked on the tree and on expat's table of names, at C
speed where the standard library allows. The element count, and with it the tree's size while it is
built, is bounded beforehand: a document has no more elements than ``<`` bytes. Whenever something fails
or exceeds a limit, :func:`parse_fast` returns None and the caller parses again the exact way, so a
document is accepted or refused exactly as by :func:`~mssante.cda.parse_xml`, with the same error (the
first violation, in document order).
"""

from __future__ import annotations

import importlib
import re
import xml.etree.ElementTree as ET
from itertools import chain

from mssante.cda._xml import FAILURES, Names, XMLLimits, safe_parser

try:
    _C_TREE = ET.TreeBuilder is importlib.import_module("_elementtree").TreeBuilder
except ImportError:  # pragma: no cover - CPython always has the accelerator
    _C_TREE = False

__all__ = ["FAST_ELEMENTS", "parse_fast"]

#: Documents with more "<" than this take the exact path. The fast path checks the depth once the tree is
#: built: a hostile document nested 240,000 deep would cost 90 MiB before being refused, where the exact
#: parse stops at the limit. 50,000 elements (about 9 MiB) is over thirty times the ANS CDA samples.
FAST_ELEMENTS = 50_000

# Counting "<" bytes bounds the element count only where "<" is that byte: UTF-8 (the default: no
# declaration, or one naming no encoding), US-ASCII, ISO-8859-1. Other encodings take the exact path.
_BYTE_ENCODING = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:"
    rb"<\?xml(?:(?!encoding)[^>])*\?>"  # a declaration naming no encoding
    rb"|<\?xml\s[^>]*?encoding\s*=\s*([\"'])(?i:utf-8|us-ascii|iso-8859-1)\1"
    rb"|(?!<\?xml)\s*<[^\x00]"  # no declaration
    rb")"
)


def _expat_name(tag: str) -> str:
    """``{uri}local`` to expat's ``uri local``."""
    uri, sep, local = tag[1:].partition("}")
    return f"{uri} {local}" if tag.startswith("{") and sep else tag


def _within(root: ET.Element, names: dict[str, str], size: int, limits: XMLLimits) -> bool:
    """The exact parse's limits, checked on the built tree: ``names`` holds every element and attribute
    name expat reported (``uri local`` form, as the exact parse measures them), ``size`` is the document's
    length in bytes (a character takes at least one)."""
    names.pop(None, None)  # type: ignore[call-overload]  # an xmlns declaration without prefix
    if max(map(len, names), default=0) > limits.max_name_length:  # (namespace URIs and prefixes too: stricter)
        return False
    level, depth = [root], 0  # the element count is bounded by the "<" count, checked before parsing
    while level:
        depth += 1
        if depth > limits.max_depth:
            return False
        level = [child for el in level for child in el]
    if size <= limits.max_attribute_length:
        return True
    values = chain.from_iterable(el.attrib.values() for el in root.iter())
    return max(map(len, values), default=0) <= limits.max_attribute_length


def _prune(root: ET.Element, path: tuple[str, ...]) -> None:
    """Drop the content of every element at ``path`` (expat names), as the exact parse never builds it."""
    if not path or root.tag != path[0]:
        return
    found = [root]
    for tag in path[1:]:
        found = [child for el in found for child in el if child.tag == tag]
    for el in found:
        del el[:]
        el.text = None


#: Shared across documents (names repeat from one CDA to the next); Names stops growing at 10,000 entries.
_NAMES = Names()


def _rename(root: ET.Element, reported: dict[str, str]) -> None:
    """expat ``uri local`` names to ElementTree ``{uri}local`` ones, as the exact parse builds them.
    ``reported`` holds every name expat reported: attributes named without a namespace stay as they are."""
    names = _NAMES
    plain = {n for n in reported if " " not in n}
    for el in root.iter():
        el.tag = names[el.tag]
        attrs = el.attrib
        if attrs and not plain.issuperset(attrs):
            el.attrib = {names[k]: v for k, v in attrs.items()}


def parse_fast(data: bytes, prune: tuple[str, ...], limits: XMLLimits) -> ET.Element | None:
    """The tree :func:`~mssante.cda._xml.parse_pruned` builds, or None: then parse the exact way."""
    if not _C_TREE or not _BYTE_ENCODING.match(data) or data.count(b"<") > min(limits.max_elements, FAST_ELEMENTS):
        return None
    names: dict[str, str] = {}
    parser = safe_parser(limits, names)
    tb = ET.TreeBuilder()
    parser.StartElementHandler = tb.start
    parser.EndElementHandler = tb.end
    parser.CharacterDataHandler = tb.data
    try:
        parser.Parse(data, True)
    except FAILURES:
        return None
    root = tb.close()
    if not isinstance(root, ET.Element) or not _within(root, names, len(data), limits):
        return None
    _prune(root, tuple(map(_expat_name, prune)))
    _rename(root, names)
    return root
