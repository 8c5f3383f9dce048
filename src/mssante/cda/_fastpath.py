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

With a pruned element (the CDA body), the tree is not built there: expat feeds the C builder up to that
element's start tag, then two small Python handlers that only count the depth (and measure attribute
values in a document long enough to hold a long one) until it closes, then the C builder again
(:func:`_parse_phased`). On the ANS samples this halves the parse: the body is two thirds of a CDA.
"""

from __future__ import annotations

import functools
import importlib
import re
import xml.etree.ElementTree as ET
from itertools import chain
from typing import Any

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


def _prune(root: ET.Element, path: tuple[str, ...]) -> list[ET.Element]:
    """Drop the content of every element at ``path`` (expat names), as the exact parse never builds it;
    return those elements."""
    if not path or root.tag != path[0]:
        return []
    found = [root]
    for tag in path[1:]:
        found = [child for el in found for child in el if child.tag == tag]
    for el in found:
        del el[:]
        el.text = None
    return found


class _Abort(Exception):
    """Internal: the phased parse met something it does not decide; the exact parse will."""


@functools.lru_cache(maxsize=8)
def _start_tag(local: bytes) -> re.Pattern[bytes]:
    """The head of a start tag of ``local`` in any prefix (``<local``, ``<p:local``), then a space, ``/`` or
    ``>``."""
    return re.compile(rb"<(?:[^\s<>/!?:=\"']{1,200}:)?" + re.escape(local) + rb"[\s/>]")


def _cut(data: bytes, local: bytes) -> int:
    """The offset of the first ``<`` that looks like a start tag of ``local``, or -1. A candidate only (it may
    sit in a comment): the parse confirms it."""
    head = _start_tag(local)
    i = data.find(local)
    while i > 0:
        j = data.rfind(b"<", max(0, i - 202), i)
        if j >= 0 and head.fullmatch(data, j, i + len(local) + 1):
            return j
        i = data.find(local, i + 1)
    return -1


def _parse_phased(parser: Any, tb: ET.TreeBuilder, data: bytes, path: tuple[str, ...], limits: XMLLimits) -> Any:
    """Parse ``data`` into ``tb`` but do not build the first element at ``path``'s content: the C builder
    takes every event up to that element's start tag and after its end tag; in between, two small Python
    handlers only count the depth (and measure attribute values when the document is large enough to hold
    a long one). The element names, the element count and the DTD and entity rules are checked as in
    :func:`parse_fast`. Returns the element whose content was skipped, or None when no candidate start tag
    was found (then the whole document was built).

    The start tag is found by its bytes, a guess: the first element expat starts after the cut is the one
    skipped, if it has the expected name (else :class:`_Abort`). Whether it sits at ``path``, so that the
    exact parse would not build its content either, is for the caller to check on the finished tree."""
    at = _cut(data, path[-1].rpartition(" ")[2].encode())
    if at < 0:
        parser.Parse(data, True)
        return None
    target = path[-1]
    # The skipped element sits at depth len(path) once confirmed: its content may nest this much deeper.
    room = limits.max_depth - len(path) + 1
    max_value = limits.max_attribute_length
    check_values = len(data) > max_value  # a shorter document holds no longer attribute value
    depth = 0
    skipped: list[ET.Element] = []

    def enter(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        if name != target:  # not the element looked for (the cut was in a comment, say): give up early
            raise _Abort
        skipped.append(tb.start(name, attrs))
        depth = 1
        parser.ordered_attributes = True
        parser.StartElementHandler = inner_checked if check_values else inner
        parser.EndElementHandler = leave
        parser.CharacterDataHandler = None

    def inner(_name: str, _attrs: list[str]) -> None:
        nonlocal depth
        depth += 1
        if depth > room:
            raise _Abort

    def inner_checked(_name: str, attrs: list[str]) -> None:
        nonlocal depth
        depth += 1
        if depth > room or (attrs and max(map(len, attrs[1::2])) > max_value):
            raise _Abort

    def leave(name: str) -> None:
        nonlocal depth
        depth -= 1
        if not depth:
            parser.ordered_attributes = False
            parser.StartElementHandler = tb.start
            parser.EndElementHandler = tb.end
            parser.CharacterDataHandler = tb.data
            tb.end(name)

    view = memoryview(data)
    parser.Parse(view[:at], False)
    parser.StartElementHandler = enter
    parser.Parse(view[at:], True)
    return skipped[0] if skipped else None


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
    path = tuple(map(_expat_name, prune))
    try:
        if path:
            skipped = _parse_phased(parser, tb, data, path, limits)
        else:
            skipped = None
            parser.Parse(data, True)
    except (_Abort, *FAILURES):
        return None
    root = tb.close()
    if not isinstance(root, ET.Element) or not _within(root, names, len(data), limits):
        return None
    pruned = _prune(root, path)
    if skipped is not None and not any(el is skipped for el in pruned):
        return None  # the element skipped is not at ``path``: the exact parse would have built its content
    _rename(root, names)
    return root
