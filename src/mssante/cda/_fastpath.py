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
(:func:`_parse_phased`). The body is two thirds of the ANS samples' elements.

expat reports names as ``uri local``; the names already met are handed to it converted (its ``intern``
table, :data:`_SEED`), so that it reports them as ElementTree's ``{uri}local`` and only new ones are
renamed on the finished tree.
"""

from __future__ import annotations

import functools
import importlib
import re
import xml.etree.ElementTree as ET
from itertools import chain, islice
from typing import Any

from mssante.cda._xml import FAILURES, Names, XMLLimits, safe_parser

try:
    _C_TREE = ET.TreeBuilder is importlib.import_module("_elementtree").TreeBuilder
except ImportError:  # pragma: no cover - CPython always has the accelerator
    _C_TREE = False

__all__ = ["FAST_ELEMENTS", "fast_parser", "parse_fast"]

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
    """Drop the content of every element at ``path``, as the exact parse never builds it; return those
    elements."""
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
    """Parse ``data`` with ``parser`` from :func:`fast_parser` (``path``'s names seeded) into ``tb``, but
    do not build the first element at ``path``'s content: the C builder
    takes every event up to that element's start tag and after its end tag; in between, two small Python
    handlers only count the depth (and measure attribute values when the document is large enough to hold
    a long one). The element names, the element count and the DTD and entity rules are checked as in
    :func:`parse_fast`. Returns the element whose content was skipped, or None when no candidate start tag
    was found (then the whole document was built).

    The start tag is found by its bytes, a guess: the first element expat starts after the cut is the one
    skipped, if it has the expected name (else :class:`_Abort`). Whether it sits at ``path``, so that the
    exact parse would not build its content either, is for the caller to check on the finished tree."""
    at = _cut(data, path[-1].rpartition("}")[2].encode())
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

#: expat names already converted to ElementTree ones, handed to expat as its ``intern`` table: expat then
#: reports these names in the ``{uri}local`` form straight away (pyexpat returns the table's value for a name
#: it holds). Learnt from the documents parsed, bounded; only names whose URI has no space nor brace (then
#: ``{uri}local`` never contains a space and ``uri local`` never starts with a brace: the two forms cannot
#: be mistaken for one another).
_SEED: dict[str, str] = {}
_SEED_SIZE = 2000
_SEED_NAME = 256
_seed_longest = 0
_PLAIN_URI = re.compile(r"[^\s{}]+ [^\s{}]+")


def _learn(raw: str, name: str) -> None:
    global _seed_longest
    if len(_SEED) < _SEED_SIZE and len(raw) <= _SEED_NAME and _PLAIN_URI.fullmatch(raw):
        _SEED[raw] = name
        _seed_longest = max(_seed_longest, len(raw))


def _rename(root: ET.Element, fresh: list[str]) -> None:
    """The names expat reported in the ``uri local`` form (``fresh``: not in the seed) to the
    ``{uri}local`` form the exact parse builds; every other name is already in that form. A fresh name holds
    a space, a seeded one in its new form none, a name without namespace neither a space nor a brace:
    each element's tag is renamed or left alone without doubt."""
    conv = {raw: _NAMES[raw] for raw in fresh}
    for raw, name in conv.items():
        _learn(raw, name)
    for el in root.iter():
        tag = conv.get(el.tag)
        if tag is not None:
            el.tag = tag
        attrs = el.attrib
        if attrs and not conv.keys().isdisjoint(attrs):
            el.attrib = {conv.get(k, k): v for k, v in attrs.items()}


def fast_parser(prune: tuple[str, ...], limits: XMLLimits) -> tuple[Any, ET.TreeBuilder, dict[str, str]]:
    """A safe expat parser bound to a C tree builder, and its ``intern`` table, seeded: the names of
    ``prune`` and of :data:`_SEED` are reported in the ``{uri}local`` form, the others in expat's."""
    # The seed's names count in the name-length check of ``_within``: with limits tighter than the longest
    # of them, go without (its names are then renamed after the parse, as new ones are).
    names = dict(_SEED) if _seed_longest <= limits.max_name_length else {}
    for tag in prune:  # always seeded: the phased parse compares them as reported
        names[_expat_name(tag)] = tag
    parser = safe_parser(limits, names)
    tb = ET.TreeBuilder()
    parser.StartElementHandler = tb.start
    parser.EndElementHandler = tb.end
    parser.CharacterDataHandler = tb.data
    return parser, tb, names


def parse_fast(data: bytes, prune: tuple[str, ...], limits: XMLLimits) -> ET.Element | None:
    """The tree :func:`~mssante.cda._xml.parse_pruned` builds, or None: then parse the exact way."""
    if not _C_TREE or not _BYTE_ENCODING.match(data) or data.count(b"<") > min(limits.max_elements, FAST_ELEMENTS):
        return None
    parser, tb, names = fast_parser(prune, limits)
    seeded = len(names)
    try:
        if prune:
            skipped = _parse_phased(parser, tb, data, prune, limits)
        else:
            skipped = None
            parser.Parse(data, True)
    except (_Abort, *FAILURES):
        return None
    root = tb.close()
    if not isinstance(root, ET.Element) or not _within(root, names, len(data), limits):
        return None
    pruned = _prune(root, prune)
    if skipped is not None and not any(el is skipped for el in pruned):
        return None  # the element skipped is not at ``path``: the exact parse would have built its content
    fresh = [raw for raw in islice(names, seeded, None) if " " in raw]
    if fresh:
        _rename(root, fresh)
    return root
