"""Hypothesis fuzzing of the readers: only our typed errors or findings, never another exception."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.cda import parse_cda_header, parse_xml
from mssante.errors import ContentError, LimitError
from mssante.xdm import XDMLimits, read_metadata, validate_archive
from tests._hypothesis import examples
from tests.xdm._util import CRBIO_DOC, read_entry, rezip

META = "IHE_XDM/SUBSET01/METADATA.XML"
DOC1 = "IHE_XDM/SUBSET01/DOC0001.XML"
TYPED = (ContentError, LimitError)  # UnsafeContentError is a ContentError
FUZZ = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = XDMLimits(max_xml_depth=64)


@cache
def _good() -> bytes:
    from mssante.xdm import build_archive

    return build_archive([CRBIO_DOC], now=datetime(2024, 1, 1, tzinfo=UTC))


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, val in edits:
        buf[pos % len(buf)] = val
    return bytes(buf)


def _check(data: bytes) -> None:
    try:
        report = validate_archive(data, limits=SMALL)
    except TYPED:
        return
    assert isinstance(report.ok, bool)
    for f in report.findings:
        assert f.severity in ("error", "warning", "info") and f.rule and f.message


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _check(data)
    _check(b"PK\x03\x04" + data)


@FUZZ
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), min_size=1, max_size=8))
def test_mutated_archive(edits: list[tuple[int, int]]) -> None:
    _check(_mutate(_good(), edits))


@FUZZ
@given(
    st.sampled_from([META, DOC1]),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), min_size=1, max_size=6),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=400),
)
def test_mutated_xml_inside_a_valid_zip(target: str, edits: list[tuple[int, int]], cut: int, drop: int) -> None:
    raw = read_entry(_good(), target)
    mutated = _mutate(raw, edits)
    pos = cut % len(mutated)
    mutated = mutated[:pos] + mutated[pos + drop :]
    _check(rezip(_good(), replace={target: mutated}))


_XML_TOKENS = st.sampled_from(
    [
        "<a>",
        "</a>",
        "<ClinicalDocument xmlns='urn:hl7-org:v3'>",
        "</ClinicalDocument>",
        "<!DOCTYPE a>",
        "<!ENTITY e 'x'>",
        "&e;",
        "&amp;",
        "&#0;",
        "&#x10FFFF;",
        "<?pi x?>",
        "<!-- c -->",
        "<![CDATA[x]]>",
        "<id root='1' extension='2'/>",
        "<code code='11502-2'/>",
        " ",
        "é",
        "\x00",
        "]]>",
        "<",
        ">",
        "'",
        '"',
        "<recordTarget><patientRole><id root='1.2.250.1.213.1.4.8' extension='x'/>",
        "<rim:Slot xmlns:rim='urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0' name='hash'>",
    ]
)


@FUZZ
@given(st.lists(_XML_TOKENS, max_size=30))
def test_xml_token_soup(tokens: list[str]) -> None:
    data = "".join(tokens).encode("utf-8")
    for fn in (parse_xml, parse_cda_header, read_metadata):
        with contextlib.suppress(ContentError, LimitError):
            fn(data)
