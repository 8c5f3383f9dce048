"""The fast path of :func:`~mssante.cda._xml.parse_pruned`: expat with C handlers only, then a proof.

The header is built by the C ``TreeBuilder`` bound straight to expat (no Python call per element) and the
pruned element's content by nothing at all; the DTD, entity and namespace-length checks of
:func:`~mssante.cda._xml.safe_parser` stay on. The limits that a handler per element would check (depth,
name and attribute lengths, element count) are then proved from the bytes (:mod:`mssante.cda._bodyscan`)
and by counting ``<``. Whenever something fails or cannot be proved, :func:`parse_fast` returns None and the
caller parses again the exact way: a document is accepted or refused exactly as by
:func:`~mssante.cda.parse_xml`, with the same error.
"""

from __future__ import annotations

import functools
import importlib
import re
import xml.etree.ElementTree as ET

from mssante.cda._bodyscan import within_limits
from mssante.cda._xml import FAILURES, Names, XMLLimits, safe_parser

try:
    #: The C TreeBuilder returns its root from close() even with elements left open (the pruned body's
    #: ancestors never get their end events); the pure-Python one would assert.
    _C_TREE = ET.TreeBuilder is importlib.import_module("_elementtree").TreeBuilder
except ImportError:  # pragma: no cover - CPython always has the accelerator
    _C_TREE = False

__all__ = ["parse_fast"]

# The byte-level proof needs an encoding where "<", ">" and "/" are those bytes and a character takes at
# least one byte: UTF-8 (the default: no declaration, or one naming no encoding), US-ASCII, ISO-8859-1.
# Anything else (UTF-16, a BOM other than UTF-8's, another declared encoding) is parsed the exact way.
_BYTE_ENCODING = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:"
    rb"<\?xml(?:(?!encoding)[^>])*\?>"  # a declaration naming no encoding
    rb"|<\?xml\s[^>]*?encoding\s*=\s*([\"'])(?i:utf-8|us-ascii|iso-8859-1)\1"
    rb"|(?!<\?xml)\s*<[^\x00]"  # no declaration
    rb")"
)


@functools.cache
def _start_tag(local: str) -> re.Pattern[bytes]:
    return re.compile(rb"<(?:[^\s<>/:]+:)?" + re.escape(local.encode()) + rb"[\s/>]")


def _expat_name(tag: str) -> str:
    """``{uri}local`` to expat's ``uri local``."""
    uri, sep, local = tag[1:].partition("}")
    return f"{uri} {local}" if tag.startswith("{") and sep else tag


def _is_last_and_empty(root: ET.Element, path: tuple[str, ...]) -> bool:
    """True when the last element started is at ``path`` (expat names) and has no child yet."""
    el = root
    if el.tag != path[0]:
        return False
    for tag in path[1:]:
        if not len(el):
            return False
        el = el[-1]
        if el.tag != tag:
            return False
    return not len(el)


def _rename(root: ET.Element) -> None:
    """expat ``uri local`` names to ElementTree ``{uri}local`` ones, as the exact path builds them."""
    names = Names()
    for el in root.iter():
        el.tag = names[el.tag]
        attrs = el.attrib
        if attrs and any(" " in k for k in attrs):
            el.attrib = {names[k]: v for k, v in attrs.items()}


def parse_fast(data: bytes, prune: tuple[str, ...], limits: XMLLimits) -> ET.Element | None:
    """The tree :func:`~mssante.cda._xml.parse_pruned` would build, or None when not proved the same."""
    if not _C_TREE or not _BYTE_ENCODING.match(data) or data.count(b"<") > limits.max_elements:
        return None
    found = _start_tag(prune[-1].rpartition("}")[2]).search(data)
    cut = len(data) if found is None else data.find(b">", found.end() - 1) + 1
    if cut == 0:
        return None
    parser = safe_parser(limits)
    tb = ET.TreeBuilder()
    parser.StartElementHandler = tb.start
    parser.EndElementHandler = tb.end
    parser.CharacterDataHandler = tb.data
    try:
        if found is None:
            parser.Parse(data, True)
            root = tb.close()
            head, body = data, b""
        else:
            parser.Parse(data[:cut], False)
            root = tb.close()
            if not isinstance(root, ET.Element) or not _is_last_and_empty(root, tuple(map(_expat_name, prune))):
                return None
            parser.StartElementHandler = parser.EndElementHandler = parser.CharacterDataHandler = None
            parser.Parse(data[cut:], True)
            head, body = data[: found.start()], data[found.start() :]
    except FAILURES:
        return None
    if not isinstance(root, ET.Element) or not within_limits(head, body, len(prune), limits):
        return None
    _rename(root)
    return root
