"""The CDA fast path (:func:`parse_cda_header`, body pruned) against the full safe parser.

:func:`parse_cda_header` parses the whole document once and checks every element, but builds no tree for
``component/structuredBody``. These properties hold it to the full parser (:func:`parse_xml` then
:func:`header_from_element`): the same header for every generated CDA, and the same refusal — same error
class, same message — for every hostile edit, wherever it lands (header, body, after the body).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.cda import (
    CDAHeader,
    SampleAuthor,
    SamplePatient,
    XMLLimits,
    generate_cr_bio,
    generate_vsm,
    parse_cda_header,
    parse_xml,
)
from mssante.cda._fastpath import _SEED, FAST_ELEMENTS, _parse_phased, fast_parser, parse_fast
from mssante.cda._header import BODY, header_from_element
from mssante.cda._xml import _parse_exact, parse_pruned
from mssante.errors import ContentError, LimitError, MssanteError, UnsafeContentError
from tests._hypothesis import examples
from tests.hardening.test_content_limits import peak_mib
from tests.xdm._util import CRBIO_DOC, CRBIO_SAMPLE, VSM_DOC, VSM_SAMPLE, ans_sample

# Printable text without the characters XML 1.0 forbids (the generator escapes &, < and quotes itself).
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"), min_size=1, max_size=24
)
_DIGITS = st.text("0123456789", min_size=1, max_size=15)


@st.composite
def _cda(draw: st.DrawFn) -> bytes:
    patient = SamplePatient(
        ins=draw(st.text("0123456789AB", min_size=13, max_size=15)),
        ins_oid=draw(st.sampled_from(["1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.10", "1.2.3"])),
        birth_family=draw(_TEXT),
        given_names=draw(_TEXT),
        gender=draw(st.sampled_from("FMU")),
        birth_date=draw(st.dates(date(1900, 1, 1), date(2030, 1, 1))),
        birthplace_code=draw(_DIGITS),
        ipp=draw(st.none() | _DIGITS),
    )
    author = SampleAuthor(
        idnat_ps=draw(_DIGITS), family=draw(_TEXT), given=draw(_TEXT), org_name=draw(_TEXT), org_idnat=draw(_DIGITS)
    )
    when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 10**8)))
    if draw(st.booleans()):
        return generate_vsm(
            effective_time=when, patient=patient, author=author, problems=draw(st.lists(_TEXT, max_size=5))
        )
    return generate_cr_bio(effective_time=when, patient=patient, author=author)


def _full(data: bytes, limits: XMLLimits | None = None) -> CDAHeader | tuple[type, str]:
    """The reference: the exact parse (a Python handler per element, every element built), then the header."""
    try:
        return header_from_element(_parse_exact(data, (), limits or XMLLimits(), "CDA document"))
    except MssanteError as exc:
        return type(exc), exc.message


def _tree(parse: Callable[[], ET.Element]) -> bytes | tuple[type, str]:
    try:
        return ET.tostring(parse())
    except MssanteError as exc:
        return type(exc), exc.message


def _fast(data: bytes, limits: XMLLimits | None = None) -> CDAHeader | tuple[type, str]:
    try:
        return parse_cda_header(data, limits=limits)
    except MssanteError as exc:
        return type(exc), exc.message


@settings(max_examples=examples(60))
@given(_cda())
def test_the_fast_path_reads_the_header_the_full_parser_reads(doc: bytes) -> None:
    fast = _fast(doc)
    assert isinstance(fast, CDAHeader)
    assert fast == _full(doc)


# Hostile edits, each inserted at a chosen tag boundary of a real document. Small limits keep them cheap;
# the parser applies them exactly as the defaults.
_LIMITS = XMLLimits(
    max_depth=40, max_elements=400, max_namespace_length=64, max_name_length=96, max_attribute_length=80
)
_EDITS = {
    "doctype": b'<!DOCTYPE ClinicalDocument [<!ENTITY e "x">]>',
    "entity reference": b"<x>&e;</x>",
    "char reference": b"<x a='&#65;'>&#66;&lt;</x>",
    "long element name": b"<" + b"n" * 97 + b"/>",
    "long attribute name": b"<x " + b"a" * 97 + b"='1'/>",
    "long namespaced name": b"<p:" + b"n" * 40 + b" xmlns:p='urn:" + b"u" * 56 + b"'/>",
    "long attribute value": b"<x a='" + b"v" * 81 + b"'/>",
    "attribute value at the bound": b"<x a='" + b"v" * 80 + b"'/>",
    "long namespace": b"<x xmlns='urn:" + b"u" * 61 + b"'/>",
    "deep nesting": b"<d>" * 40 + b"</d>" * 40,
    "many elements": b"<e/>" * 400,
    "comment and PI": b"<!-- <a> --><?pi x?><![CDATA[<b>]]>",
    "namespaced attribute": b"<x xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xsi:type='CD' code='1'/>",
    "unclosed": b"<x>",
    "stray end tag": b"</x>",
    "bad byte": b"\xff",
    "second body": b"<component><structuredBody><x/></structuredBody></component>",
    "header after the body": b"<title>late</title>",
    # Markup the fast path (src/mssante/cda/_fastpath.py) must treat as the exact parse does:
    "raw > in text": b"<x>a > b</x>",
    "/> in text": b"<x>a/>b</x>",
    "> in an attribute": b"<x a='b>c'/>",
    "> in a long attribute": b"<x a='b>" + b"v" * 81 + b"'/>",
    "tags in a comment": b"<!-- <a><b><c> </x> -->",
    "end tags in CDATA": b"<x><![CDATA[</x></x></component>]]></x>",
    "empty body then a header": b"<component><structuredBody/></component><author/>",
    "prefixed body": b"<c:component xmlns:c='urn:hl7-org:v3'><c:structuredBody><c:x/></c:structuredBody></c:component>",
    "body name in a comment": b"<!-- <structuredBody> -->",
    "long tag": b"<x " + b" ".join(b"a%d='1'" % i for i in range(20)) + b"/>",
    # Where the phased parse (body skipped between two C-built parts) must find its cut or give up:
    "nested body": b"<structuredBody><structuredBody><x/></structuredBody></structuredBody>",
    "body in another namespace": b"<o:structuredBody xmlns:o='urn:other'><x>t</x></o:structuredBody>",
    "body-like name": b"<structuredBodyX><x/></structuredBodyX>",
    "self-closing body": b"<component><structuredBody/></component>",
    "body name in text": b"<x>structuredBody</x><y>&lt;structuredBody></y>",
    "deep body content": b"<d>" * 37 + b"</d>" * 37,
    # Names the fast path learns (expat reports them in ElementTree's form once seen) or must not:
    "new namespace": b"<q:x xmlns:q='urn:new'><q:y q:a='1' b='2'/></q:x>",
    "brace namespace": b"<x xmlns='{urn:a}b'><y/></x>",
    "spaced namespace": b"<p:x xmlns:p='urn:a b'><p:y p:z='1'/></p:x>",
}


def test_the_fast_path_and_other_encodings() -> None:
    latin = CRBIO_DOC.decode().replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("latin-1")
    utf16 = CRBIO_DOC.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    for doc in (latin, utf16, b"\xef\xbb\xbf" + CRBIO_DOC, CRBIO_DOC.split(b"?>", 1)[1]):
        header = _fast(doc)
        assert isinstance(header, CDAHeader) and header == _full(doc)
        assert header.title == "Compte rendu d'examens biologiques"


def _boundaries(doc: bytes) -> list[int]:
    return [i + 1 for i, c in enumerate(doc) if c == ord(">")]


# The same, sized for the default limits, under which the byte-level proof of the fast path applies.
_DEFAULT_EDITS = {
    "name over the proof's bound": b"<" + b"n" * 1100 + b"/>",
    "long element name": b"<" + b"n" * 2049 + b"/>",
    "long attribute name": b"<x " + b"a" * 2049 + b"='1'/>",
    "attribute value over the proof's bound": b"<x a='" + b"v" * 1100 + b"'/>",
    "long attribute value": b"<x a='" + b"v" * 65537 + b"'/>",
    "> in a long attribute value": b"<x a='b>" + b"v" * 65537 + b"'/>",
    "> in a long attribute name": b"<x a='b>' " + b"n" * 2100 + b"='1'/>",
    "long namespace": b"<x xmlns='urn:" + b"u" * 1021 + b"'/>",
    "namespace at the bound": b"<x xmlns='urn:" + b"u" * 1020 + b"'/>",
    "deep nesting": b"<d>" * 250 + b"</d>" * 250,
    "deep nesting at the bound": b"<d>" * 240 + b"</d>" * 240,
    **{k: v for k, v in _EDITS.items() if k not in ("deep nesting", "many elements", "long namespace")},
}


@settings(max_examples=examples(200))
@given(st.sampled_from([CRBIO_DOC, VSM_DOC]), st.sampled_from(sorted(_EDITS)), st.data())
def test_the_fast_path_refuses_exactly_what_the_full_parser_refuses(doc: bytes, edit: str, data: st.DataObject) -> None:
    cut = data.draw(st.sampled_from([0, *_boundaries(doc)]))
    hostile = doc[:cut] + _EDITS[edit] + doc[cut:]
    assert _fast(hostile, _LIMITS) == _full(hostile, _LIMITS)


@settings(max_examples=examples(200))
@given(st.sampled_from([CRBIO_DOC, VSM_DOC]), st.sampled_from(sorted(_DEFAULT_EDITS)), st.data())
def test_the_fast_path_agrees_under_the_default_limits(doc: bytes, edit: str, data: st.DataObject) -> None:
    cut = data.draw(st.sampled_from([0, *_boundaries(doc)]))
    hostile = doc[:cut] + _DEFAULT_EDITS[edit] + doc[cut:]
    assert _fast(hostile) == _full(hostile)


@settings(max_examples=examples(200))
@given(st.sampled_from([CRBIO_DOC, VSM_DOC]), st.sampled_from(sorted(_EDITS)), st.data(), st.booleans())
def test_parse_xml_builds_and_refuses_as_the_exact_parse(
    doc: bytes, edit: str, data: st.DataObject, small: bool
) -> None:
    cut = data.draw(st.sampled_from([0, *_boundaries(doc)]))
    hostile = doc[:cut] + _EDITS[edit] + doc[cut:]
    limits = _LIMITS if small else XMLLimits()
    assert _tree(lambda: parse_xml(hostile, limits=limits, what="x")) == _tree(
        lambda: _parse_exact(hostile, (), limits, "x")
    )
    assert _tree(lambda: parse_pruned(hostile, prune=BODY, limits=limits, what="x")) == _tree(
        lambda: _parse_exact(hostile, BODY, limits, "x")
    )


_ANCHORS = (
    b"<ClinicalDocument", b"<component><structuredBody>", b"<structuredBody>", b"</structuredBody>", b"</component>"
)
_MARKUP = b"<>/=\"' :&;!-?x\xc3"


@settings(max_examples=examples(200))
@given(
    st.sampled_from([CRBIO_DOC, VSM_DOC]),
    st.lists(
        st.tuples(st.sampled_from(_ANCHORS), st.integers(-24, 40), st.sampled_from("rid"), st.sampled_from(_MARKUP)),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_byte_edits_around_the_body_cut_give_the_exact_tree_or_error(
    doc: bytes, edits: list[tuple[bytes, int, str, int]], small: bool
) -> None:
    # The phased parse cuts the document where the body starts and hands back where it ends: bytes
    # replaced (r), inserted (i) or deleted (d) around those places, and the fast path must still build
    # the exact parse's tree or raise its error (falling back when in doubt).
    data = bytearray(doc)
    for anchor, offset, op, byte in edits:
        at = min(max(bytes(data).find(anchor), 0) + offset, len(data) - 1)
        at = max(at, 0)
        if op == "r":
            data[at] = byte
        elif op == "i":
            data[at:at] = bytes([byte])
        else:
            del data[at]
    hostile = bytes(data)
    limits = _LIMITS if small else XMLLimits()
    assert _tree(lambda: parse_pruned(hostile, prune=BODY, limits=limits, what="x")) == _tree(
        lambda: _parse_exact(hostile, BODY, limits, "x")
    )


def test_the_fast_path_is_taken_and_builds_the_exact_tree() -> None:
    for doc in (CRBIO_DOC, VSM_DOC):
        fast, exact = parse_fast(doc, BODY, XMLLimits()), _parse_exact(doc, BODY, XMLLimits(), "CDA")
        assert fast is not None
        assert ET.tostring(fast) == ET.tostring(exact)


@pytest.mark.parametrize("name", ["CR-BIO", "VSM", "ANS CR-BIO", "ANS VSM"])
def test_the_phased_parse_skips_the_body_and_builds_the_exact_tree(name: str) -> None:
    doc = {"CR-BIO": CRBIO_DOC, "VSM": VSM_DOC}.get(name) or ans_sample(
        CRBIO_SAMPLE if name == "ANS CR-BIO" else VSM_SAMPLE
    )
    limits = XMLLimits()
    parser, tb, _names = fast_parser(BODY, limits)
    skipped = _parse_phased(parser, tb, doc, BODY, limits)
    assert skipped is not None and skipped.tag == BODY[-1]
    assert len(skipped) == 0 and not skipped.text  # its content was checked, not built
    fast = parse_fast(doc, BODY, limits)
    assert fast is not None and ET.tostring(fast) == ET.tostring(_parse_exact(doc, BODY, limits, "CDA"))


def test_names_learnt_from_one_document_give_the_same_tree_in_the_next() -> None:
    # The first parse meets urn:learnt names and seeds expat's name table with them; the second gets them
    # in the {uri}local form from expat itself. Both build the exact parse's tree.
    doc = CRBIO_DOC.replace(b"<title>", b"<l:t xmlns:l='urn:learnt' l:a='1'><l:u/></l:t><title>", 1)
    exact = ET.tostring(_parse_exact(doc, BODY, XMLLimits(), "CDA"))
    for _ in range(2):
        fast = parse_fast(doc, BODY, XMLLimits())
        assert fast is not None and ET.tostring(fast) == exact
        assert fast.find(".//{urn:learnt}t").get("{urn:learnt}a") == "1"  # type: ignore[union-attr]
    assert _SEED.get("urn:learnt u") == "{urn:learnt}u"


def test_the_fast_path_refuses_dtd_entities_and_oversized_names_in_the_body() -> None:
    body = CRBIO_DOC.index(b"<structuredBody>") + len(b"<structuredBody>")
    for edit, error in (
        (b"<x>&e;</x>", ContentError),
        (b"<" + b"n" * 3000 + b"/>", LimitError),
        (b"<x " + b"a" * 3000 + b"='1'/>", LimitError),
        (b"<x a='" + b"v" * 70_000 + b"'/>", LimitError),
        (b"<x xmlns='urn:" + b"u" * 2000 + b"'/>", LimitError),
        (b"<d>" * 300 + b"</d>" * 300, LimitError),
    ):
        hostile = CRBIO_DOC[:body] + edit + CRBIO_DOC[body:]
        fast, full = _fast(hostile), _full(hostile)
        assert fast == full and isinstance(fast, tuple) and fast[0] is error, edit[:40]
    doctype = CRBIO_DOC.replace(b"<ClinicalDocument ", b"<!DOCTYPE d [<!ENTITY e 'x'>]><ClinicalDocument ", 1)
    assert _fast(doctype) == _full(doctype) and _fast(doctype)[0] is UnsafeContentError  # type: ignore[index]


def test_the_body_is_not_built_but_a_non_xml_body_is() -> None:
    pdf = CRBIO_DOC[: CRBIO_DOC.index(b"<component><structuredBody>")] + (
        b'<component><nonXMLBody><text mediaType="application/pdf" representation="B64">JVBERi0=</text>'
        b"</nonXMLBody></component></ClinicalDocument>"
    )
    assert parse_cda_header(pdf).non_xml_media_type == "application/pdf" == _full(pdf).non_xml_media_type  # type: ignore[union-attr]
    root = parse_pruned(CRBIO_DOC, prune=BODY)
    body = root.find("/".join(BODY[1:]))
    assert body is not None and len(body) == 0 and not body.text
    full = parse_xml(CRBIO_DOC).find("/".join(BODY[1:]))
    assert full is not None and len(full) > 0


@pytest.mark.parametrize("elements", [FAST_ELEMENTS // 2 - 10, 240_000])
def test_a_deep_bomb_is_refused_without_building_much(elements: int) -> None:
    # The fast path measures the depth once the tree is built: it only takes documents of at most
    # FAST_ELEMENTS "<", so a deep bomb costs little before the exact parse refuses it at depth 257.
    bomb = b"<a>" * elements + b"</a>" * elements
    with pytest.raises(LimitError, match="nesting deeper than 256"):
        parse_xml(bomb)
    assert peak_mib(lambda: parse_xml(bomb)) < 24
