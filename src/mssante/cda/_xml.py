"""Safe, size-bounded XML parsing on top of the stdlib expat binding.

Every XML document mssante reads from the outside (CDA documents, XDM ``METADATA.XML``) goes through
:func:`parse_xml`. The rules:

* no DTD at all: a ``<!DOCTYPE`` declaration is refused before any entity can be declared, which blocks
  external entities (XXE), parameter entities and entity expansion bombs ("billion laughs");
* entity declarations, unparsed entities and external entity references are refused too (defence in depth,
  should a DOCTYPE ever slip through);
* the input size, the element depth and the element count are bounded, and so are the length of a
  namespace URI, of an element or attribute name and of an attribute value, checked as expat reports
  them: a 1 MB default namespace would otherwise be copied into every element name (+184 MiB seen).

The tree is built with :class:`xml.etree.ElementTree.TreeBuilder`; names use the ``{namespace}local`` form.

Two ways give the same result. The exact parse calls a Python handler per element that checks the limits
before building it. :mod:`mssante.cda._fastpath` binds the C ``TreeBuilder`` straight to expat (the DTD,
entity and namespace checks stay on), then checks the limits on the finished tree; on any failure or excess
it hands over to the exact parse, which decides (same error, first violation in document order). The fast
way is tried first: it is two to three times faster on CDA documents and METADATA.XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn
from xml.parsers import expat

from mssante.errors import ContentError, LimitError, UnsafeContentError

__all__ = ["FAILURES", "Names", "XMLLimits", "parse_pruned", "parse_xml", "safe_parser"]


@dataclass(frozen=True, slots=True)
class XMLLimits:
    """Bounds applied while parsing one XML document.

    Attributes:
        max_bytes: largest accepted document, in bytes.
        max_depth: deepest accepted element nesting (the root is depth 1).
        max_elements: largest accepted number of elements (each costs about 90 bytes once built:
            500,000 ``<a/>`` elements, a 2 MB document, take +45 MB; a large CDA has tens of thousands).
        max_namespace_length: longest accepted namespace URI (HL7 and ebXML ones are under 60
            characters).
        max_name_length: longest accepted element or attribute name, namespace URI included.
        max_attribute_length: longest accepted attribute value (CDA and XDM attributes hold codes,
            OIDs and identifiers; large content is element text).
    """

    max_bytes: int = 32 * 1024 * 1024
    max_depth: int = 256
    max_elements: int = 500_000
    max_namespace_length: int = 1024
    max_name_length: int = 2048
    max_attribute_length: int = 64 * 1024


class _Unsafe(Exception):
    """Internal: raised from an expat handler, turned into UnsafeContentError."""


class _Limit(Exception):
    """Internal: raised from an expat handler, turned into LimitError."""


def _refuse(what: str) -> NoReturn:
    raise _Unsafe(what)


class Names(dict[str, str]):
    """expat ``"uri local"`` names to ElementTree ``"{uri}local"`` ones, memoised: names repeat a lot.
    At most 10,000 names of up to 256 characters are kept (the fast path shares one table across
    documents)."""

    __slots__ = ()

    def __missing__(self, raw: str) -> str:
        uri, sep, local = raw.rpartition(" ")
        name = f"{{{uri}}}{local}" if sep else raw
        if len(self) < _MEMO and len(raw) <= _MEMO_NAME:
            self[raw] = name
        return name


_MEMO = 10_000
_MEMO_NAME = 256


class _Builder:
    """The expat handlers: every element is checked against the limits; elements are built into a tree
    except the descendants of the element at ``prune`` (a path of tags from the root), which are checked
    and dropped (no tree, no text): :func:`parse_cda_header` prunes the CDA body this way."""

    def __init__(self, parser: Any, limits: XMLLimits, prune: tuple[str, ...]) -> None:
        self.parser = parser
        self.tb = ET.TreeBuilder()
        self.limits = limits
        self.depth = 0
        self.count = 0
        self.names = Names()
        self.plain: set[str] = set()  # attribute names without a namespace: used as they are
        self.prune = prune
        self.on_path = 0  # how many of the open elements, from the root, match ``prune``
        self.max_depth = limits.max_depth
        self.max_count = limits.max_elements
        self.max_len = min(limits.max_name_length, limits.max_attribute_length)

    def limit(self, name: str, names: Iterable[str], values: Iterable[str]) -> None:
        """The limits, exactly and in order, once the element was counted (``depth``, ``count``)."""
        lim = self.limits
        if self.depth > lim.max_depth:
            raise _Limit(f"XML nesting deeper than {lim.max_depth}")
        if self.count > lim.max_elements:
            raise _Limit(f"XML has more than {lim.max_elements} elements")
        if len(name) > lim.max_name_length or max(map(len, names), default=0) > lim.max_name_length:
            raise _Limit(f"XML element or attribute name longer than {lim.max_name_length} characters")
        if max(map(len, values), default=0) > lim.max_attribute_length:
            raise _Limit(f"XML attribute value longer than {lim.max_attribute_length} characters")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        # The same cheap test as ``skip_start``, written out in both: these run once per element, and a
        # shared helper would cost a Python call each time.
        self.depth += 1
        self.count += 1
        if (
            self.depth > self.max_depth
            or self.count > self.max_count
            or len(name) > self.max_len
            or (attrs and (max(map(len, attrs)) > self.max_len or max(map(len, attrs.values())) > self.max_len))
        ):
            self.limit(name, attrs, attrs.values())
        if attrs and not self.plain.issuperset(attrs):
            attrs = self._attrs(attrs)
        tag = self.names[name]
        self.tb.start(tag, attrs)
        depth = self.depth
        if depth == self.on_path + 1 and depth <= len(self.prune) and tag == self.prune[depth - 1]:
            self.on_path = depth
            if depth == len(self.prune):
                p = self.parser
                p.ordered_attributes = True
                p.StartElementHandler = self.skip_start
                p.EndElementHandler = self.skip_end
                p.CharacterDataHandler = None

    def _attrs(self, attrs: dict[str, str]) -> dict[str, str]:
        names, plain = self.names, self.plain
        for k in attrs:
            if " " not in k and len(plain) < _MEMO:
                plain.add(k)
        return {names[k]: v for k, v in attrs.items()}

    def end(self, name: str) -> None:
        if self.depth == self.on_path:
            self.on_path -= 1
        self.depth -= 1
        self.tb.end(self.names[name])

    def skip_start(self, name: str, attrs: list[str]) -> None:
        # ``ordered_attributes`` is on while pruning: ``attrs`` is [name, value, name, value...]. One cheap
        # test against the smallest bound; the exact checks, in order, only when it trips.
        self.depth += 1
        self.count += 1
        if (
            self.depth > self.max_depth
            or self.count > self.max_count
            or len(name) > self.max_len
            or (attrs and max(map(len, attrs)) > self.max_len)
        ):
            self.limit(name, attrs[0::2], attrs[1::2])

    def skip_end(self, name: str) -> None:
        if self.depth == self.on_path:  # the pruned element itself closes: build again
            p = self.parser
            p.ordered_attributes = False
            p.StartElementHandler = self.start
            p.EndElementHandler = self.end
            p.CharacterDataHandler = self.tb.data
            self.end(name)
        else:
            self.depth -= 1


def parse_xml(data: bytes, *, limits: XMLLimits | None = None, what: str = "XML document") -> ET.Element:
    """Parse ``data`` into an element tree, refusing DTDs and entities and enforcing ``limits``.

    Args:
        data: the raw document bytes (the XML declaration's encoding is honoured by expat).
        limits: size/depth/count bounds; defaults to :class:`XMLLimits` ().
        what: a short label used in error messages (``"METADATA.XML"``, ``"CDA DOC0001.XML"``).

    Returns:
        The root element.

    Raises:
        LimitError: the document is larger, deeper or has more elements than ``limits`` allow, or a
            namespace URI, a name or an attribute value is longer than they allow.
        UnsafeContentError: the document has a DOCTYPE, an entity declaration or an external entity reference.
        ContentError: the document is not well-formed XML (or uses an unknown encoding).
    """
    return parse_pruned(data, limits=limits, what=what)


def parse_pruned(
    data: bytes, *, prune: tuple[str, ...] = (), limits: XMLLimits | None = None, what: str = "XML document"
) -> ET.Element:
    """:func:`parse_xml`, but the descendants of the element at ``prune`` (tags from the root, e.g.
    ``ClinicalDocument/component/structuredBody``) are checked against the same rules and limits and not
    built: the document is accepted or refused exactly as by :func:`parse_xml`, with the same error, and
    the tree is the same outside the pruned element (which is kept, without children nor text).

    Raises:
        LimitError: as :func:`parse_xml`.
        UnsafeContentError: as :func:`parse_xml`.
        ContentError: as :func:`parse_xml`.
    """
    lim = limits or XMLLimits()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ContentError(f"{what}: expected bytes, got {type(data).__name__}")
    if len(data) > lim.max_bytes:
        raise LimitError(f"{what}: {len(data)} bytes exceeds the limit of {lim.max_bytes} bytes")
    raw = bytes(data)
    from mssante.cda._fastpath import parse_fast  # a cycle: the fast path builds on this module

    root = parse_fast(raw, prune, lim)
    if root is not None:
        return root
    return _parse_exact(raw, prune, lim, what)


def safe_parser(limits: XMLLimits, names: dict[str, str] | None = None) -> Any:
    """An expat parser (namespaces reported as ``"uri local"``) that refuses DTDs and entities and
    checks namespace URI lengths; the element and text handlers are the caller's. ``names`` receives every
    element and attribute name reported (expat's ``intern`` dictionary)."""
    parser = expat.ParserCreate(namespace_separator=" ", intern={} if names is None else names)
    # Never read external DTD subsets nor parameter entities (XXE defence); then refuse any DTD at all.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = lambda *_a: _refuse("a DOCTYPE declaration")
    parser.EntityDeclHandler = lambda *_a: _refuse("an entity declaration")
    parser.UnparsedEntityDeclHandler = lambda *_a: _refuse("an unparsed entity declaration")
    parser.ExternalEntityRefHandler = lambda *_a: _refuse("an external entity reference")
    max_ns = limits.max_namespace_length

    def namespace(_prefix: str | None, uri: str | None) -> None:
        # Called for each xmlns declaration, before the element that carries it is reported.
        if uri is not None and len(uri) > max_ns:
            raise _Limit(f"XML namespace URI longer than {max_ns} characters")

    parser.StartNamespaceDeclHandler = namespace
    parser.buffer_text = True
    return parser


_UNREADABLE = (ValueError, LookupError, UnicodeError, AssertionError)
#: What a parse with the safe parser can raise: the fast path catches these and lets the exact one decide.
FAILURES = (_Unsafe, _Limit, expat.ExpatError, *_UNREADABLE)


def _parse_exact(data: bytes, prune: tuple[str, ...], lim: XMLLimits, what: str) -> ET.Element:
    parser = safe_parser(lim)
    builder = _Builder(parser, lim, prune)
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.tb.data
    try:
        parser.Parse(data, True)
        root = builder.tb.close()
    except _Unsafe as exc:
        raise UnsafeContentError(
            f"{what}: refused {exc} (no DTD or entity allowed)", requirement="XDM-XML-SAFE"
        ) from None
    except _Limit as exc:
        raise LimitError(f"{what}: {exc}") from None
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code)
        raise ContentError(f"{what}: not well-formed XML ({reason} at line {exc.lineno})") from None
    except _UNREADABLE as exc:
        raise ContentError(f"{what}: unreadable XML ({type(exc).__name__})") from None
    if not isinstance(root, ET.Element):  # pragma: no cover - TreeBuilder always returns an Element
        raise ContentError(f"{what}: empty XML document")
    return root
