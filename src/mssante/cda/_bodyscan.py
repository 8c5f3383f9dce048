"""Prove, from the bytes alone, that a well-formed XML fragment stays within :class:`XMLLimits`.

:func:`~mssante.cda.parse_cda_header` lets expat run through the CDA body with no Python handler at all
(well-formedness, DTD and namespace checks stay on), then calls :func:`within_limits` on the body's bytes. It
answers True only when the body certainly stays within the depth, name and attribute limits and holds no
element after the body's end; on False (or any doubt) the caller parses again with a handler per element,
so a document is accepted or refused exactly as by :func:`~mssante.cda.parse_xml`.

Why the byte reasoning holds (the caller guarantees: expat accepted the whole document, and its encoding is
UTF-8, US-ASCII or ISO-8859-1, so ``<``, ``>`` and ``/`` are those bytes and a character takes at least one
byte):

* a raw ``<`` opens markup only: text and attribute values cannot hold one (XML 1.0 §2.4, §3.1). Scanning
  from a tag boundary, the leftmost ``<!--``, ``<![CDATA[`` or ``<?`` is therefore a real comment, CDATA
  section or processing instruction, which ends at its first ``-->``, ``]]>`` or ``?>``: removing them
  leaves tags and text only;
* then, when there are as many ``>`` as ``<``, every ``>`` ends a tag (none in text or attribute values),
  so ``</`` starts an end tag, ``/>`` ends an empty-element tag, and any other ``<`` starts a start tag:
  one marker byte per event gives the nesting, measured by removing leaf elements level by level;
* a name or an attribute value is inside its tag, so a tag of at most ``K`` bytes bounds both by ``K``
  characters (a name's namespace URI is checked exactly, when it is declared).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mssante.cda._xml import XMLLimits

__all__ = ["within_limits"]

_OTHER_MARKUP = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.DOTALL)
# Markers: "<" opens an element, \x03 closes one ("</" or "/>"): a control byte cannot occur raw in a
# document expat accepted.
_DROP = bytes(b for b in range(256) if b not in (0x3C, 0x03))


@functools.cache
def _long_tag(bound: int) -> re.Pattern[bytes]:
    return re.compile(rb"<[^>]{%d}" % (bound + 1))


def _markers(fragment: bytes, long_tag: re.Pattern[bytes]) -> bytes | None:
    """One byte per tag event ("<" start, \x03 end), or None when the tags cannot be told apart or one of
    them is longer than ``long_tag`` allows."""
    if b"<!" in fragment or b"<?" in fragment:
        fragment = _OTHER_MARKUP.sub(b"", fragment)
        if b"<!" in fragment or b"<?" in fragment:
            return None  # another "<!" form, or a construct left open
    if fragment.count(b">") != fragment.count(b"<"):
        return None  # a raw ">" in text or in an attribute value: the markers would be ambiguous
    if long_tag.search(fragment):
        return None
    return fragment.replace(b"/>", b"\x03").replace(b"</", b"\x03").translate(None, _DROP)


def _reduce(markers: bytes, passes: int) -> tuple[bytes, int]:
    """Remove, ``passes`` times at most, every element without child elements ("<" then \x03): what is left
    (empty for a balanced sequence) and how many passes it took (its nesting depth). ``bytes.replace`` does
    not rescan what it produced, so one pass removes exactly one level."""
    for done in range(passes):
        reduced = markers.replace(b"<\x03", b"")
        if reduced == markers:
            return markers, done
        markers = reduced
    return markers, passes


def within_limits(head: bytes, body: bytes, depth: int, limits: XMLLimits) -> bool:
    """True when a document expat accepted certainly stays within ``limits`` (element count aside), and no
    element starts after the element that begins ``body``.

    Args:
        head: the document's bytes before the pruned element's ``<`` (the whole document if none).
        body: the bytes from that ``<`` to the end (empty if none).
        depth: the pruned element's depth (its ancestors' end tags close ``body``).
        limits: the limits to prove.
    """
    bound = min(limits.max_name_length - limits.max_namespace_length - 1, limits.max_attribute_length)
    if bound < 1:
        return False
    head_markers, body_markers = _markers(head, _long_tag(bound)), _markers(body, _long_tag(bound))
    if head_markers is None or body_markers is None:
        return False
    left, height = _reduce(head_markers + body_markers, limits.max_depth + 1)
    if left or height > limits.max_depth:
        return False
    if not body_markers:
        return True
    # The body is the pruned element, then its ancestors' end tags, and nothing else: without those end
    # tags it is one element, so its content (first and last markers dropped) is balanced on its own.
    ancestors = depth - 1
    inner = body_markers[1 : len(body_markers) - ancestors - 1]
    if len(body_markers) < ancestors + 2 or not body_markers.endswith(b"\x03" * (ancestors + 1)):
        return False
    return not _reduce(inner, limits.max_depth + 1)[0]
