"""Issue 13, messages, CDA and XDM: fuzzing findings stay fixed, parse costs stay bounded."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.cda import XMLLimits, hl7_to_utc, parse_cda_header, parse_xml
from mssante.errors import ContentError, LimitError, MssanteError
from mssante.message import ReadSettings, check_message, parse_message
from mssante.xdm import read_archive, validate_archive
from tests._hypothesis import examples
from tests.hardening import _samples

HEAD = b"From: a@b.mssante.fr\r\nTo: c@d.mssante.fr\r\nMessage-ID: <a@b>\r\nSubject: x\r\n"


def peak_mib(call: Callable[[], object]) -> float:
    """Peak Python memory (MiB) allocated while ``call`` runs, whatever it raises."""
    tracemalloc.start()
    try:
        call()
    except MssanteError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


# -- Date overflow (issue 13: OverflowError from parse_message and check_message) ---------------
@pytest.mark.parametrize("date", [b"2147483648 Jan 2 0:00", b"1 Jan 5 4294967296:0", b"1 Jan 99999999999 0:00"])
def test_an_overflowing_date_is_no_date(date: bytes) -> None:
    data = b"Date:" + date + b"\r\n" + HEAD + b"\r\nhi\r\n"
    assert parse_message(data).date is None
    report = check_message(data)
    assert "RFC 5322 §3.3" in report.rules("error")


# -- RFC 2231 parameters (issue 13: 4,000 took over 5 s) ------------------------------------------
def _params(count: int) -> bytes:
    return b"".join(b";\r\n p%d*0*=utf-8''x" % i for i in range(count))


def test_too_many_content_type_parameters_are_refused_before_parsing() -> None:
    data = HEAD + b"Content-Type: text/plain" + _params(4000) + b"\r\n\r\nhi\r\n"
    for call in (parse_message, check_message):
        with pytest.raises(LimitError, match="4000 parameters") as info:
            call(data)
        assert info.value.requirement == "RFC 2231 §3"


def test_parameters_in_a_nested_part_are_counted_too() -> None:
    data = (
        HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Disposition: attachment" + _params(100) + b"\r\n\r\nx\r\n--b--\r\n"
    )
    with pytest.raises(LimitError, match="Content-Disposition has 100 parameters"):
        parse_message(data)


def test_parameters_up_to_the_cap_are_read() -> None:
    cap = ReadSettings().max_header_params
    data = HEAD + b'Content-Type: text/plain; charset="a;b;c"' + _params(cap - 1) + b"\r\n\r\nhi\r\n"
    assert parse_message(data).text is not None
    with pytest.raises(LimitError):
        parse_message(data.replace(b"text/plain;", b"text/plain; q=1;"), settings=ReadSettings(max_header_params=8))


# -- RFC 2047 encoded words (issue 13: 6,000 in a Subject cost +296 MiB) -------------------------
def _words(count: int) -> bytes:
    return b" ".join(b"=?utf-8?q?a?=" for _ in range(count))


def test_too_many_encoded_words_are_refused_cheaply() -> None:
    data = b"From: a@b.mssante.fr\r\nSubject: " + _words(6000) + b"\r\n\r\nhi\r\n"
    with pytest.raises(LimitError, match="Subject has 6000 encoded words"):
        parse_message(data)
    assert peak_mib(lambda: check_message(data)) < 16


def test_encoded_words_up_to_the_cap_are_decoded() -> None:
    cap = ReadSettings().max_encoded_words
    parsed = parse_message(b"From: a@b.mssante.fr\r\nSubject: " + _words(cap) + b"\r\n\r\nhi\r\n")
    assert parsed.subject == "a" * cap


def test_check_reports_an_unread_header_instead_of_decoding_it() -> None:
    data = HEAD + b"X-Note: " + _words(600) + b"\r\n\r\nhi\r\n"
    report = check_message(data)
    assert any(f.rule == "RFC 2047 §2" and "X-Note" in f.message for f in report.errors)


@settings(max_examples=examples(150), deadline=None)
@given(st.integers(min_value=0, max_value=80), st.integers(min_value=0, max_value=700), st.booleans())
def test_header_caps_refuse_exactly_what_is_beyond(params: int, words: int, quoted: bool) -> None:
    limits = ReadSettings(max_header_params=32, max_encoded_words=300)
    extra = b'; q="x;y;z"' if quoted else b""  # semicolons inside quotes are no parameters
    data = (
        b"From: a@b.mssante.fr\r\nSubject: " + _words(words) + b"\r\n"
        b"Content-Type: text/plain" + extra + _params(params) + b"\r\n\r\nhi\r\n"
    )
    expected_ok = params + (1 if quoted else 0) <= 32 and words <= 300
    try:
        parse_message(data, settings=limits)
    except LimitError:
        assert not expected_ok
    else:
        assert expected_ok


# -- HL7 TS out of range (issue 13: OverflowError) ------------------------------------------------
@pytest.mark.parametrize("value", ["999912312359-1400", "000101010000+1400", "99991231235959.123-0100"])
def test_an_hl7_ts_out_of_range_in_utc_is_a_content_error(value: str) -> None:
    with pytest.raises(ContentError, match="out of range"):
        hl7_to_utc(value)


def test_a_ts_just_in_range_converts() -> None:
    assert hl7_to_utc("999912311000-1300") == "999912312300"


@settings(max_examples=examples(300), deadline=None)
@given(st.from_regex(r"\A[0-9]{4,14}(\.[0-9]{1,4})?([+-][0-9]{4})?\Z"))
def test_hl7_to_utc_raises_only_content_errors(value: str) -> None:
    try:
        out = hl7_to_utc(value)
    except ContentError:
        return
    assert out.isdigit()


def _archive_with_effective_time(value: bytes) -> bytes:
    cda = _samples.cda_documents()
    first = cda[0].replace(b'<effectiveTime value="20240430160527+0200"/>', b'<effectiveTime value="' + value + b'"/>')
    assert first != cda[0]
    return _samples.replace_entry(_samples.archive(cda), _samples.CDA_PATH, first)


def test_an_archive_with_an_out_of_range_effective_time_is_validated() -> None:
    data = _archive_with_effective_time(b"999912312359-1400")
    report = validate_archive(data)
    assert any("effectiveTime is not an HL7 TS" in f.message for f in report.findings)
    report = check_message(_samples.message(data))
    assert any("effectiveTime" in f.message for f in report.findings)


# -- XML namespace and attribute sizes (issue 13: a 1 MB default namespace cost +184 MiB) -------
def _cda_with_namespace(uri: str, elements: int = 200) -> bytes:
    body = "".join(f"<a{i} v='1'/>" for i in range(elements))
    return f"<?xml version='1.0'?><ClinicalDocument xmlns='{uri}'>{body}</ClinicalDocument>".encode()


def test_a_huge_namespace_is_refused_at_its_declaration() -> None:
    data = _cda_with_namespace("urn:" + "x" * 1_000_000)
    with pytest.raises(LimitError, match="namespace URI longer than 1024"):
        parse_cda_header(data)
    assert peak_mib(lambda: parse_cda_header(data)) < 16


def test_a_huge_prefixed_namespace_in_a_child_is_refused() -> None:
    data = f"<r><c xmlns:p='urn:{'y' * 5000}'><p:x/></c></r>".encode()
    with pytest.raises(LimitError, match="namespace URI"):
        parse_xml(data)


def test_huge_names_and_attribute_values_are_refused() -> None:
    with pytest.raises(LimitError, match="name longer"):
        parse_xml(f"<r><{'n' * 3000}/></r>".encode())
    with pytest.raises(LimitError, match="name longer"):
        parse_xml(f"<r {'n' * 3000}='1'/>".encode())
    with pytest.raises(LimitError, match="attribute value longer"):
        parse_xml(f"<r a='{'v' * 70_000}'/>".encode())
    assert parse_xml(b"<r a='v'/>", limits=XMLLimits(max_attribute_length=1)).get("a") == "v"


def test_the_no_dtd_rule_still_comes_first() -> None:
    from mssante.errors import UnsafeContentError

    data = b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY e 'x'>]><r xmlns='" + b"u" * 5000 + b"'>&e;</r>"
    with pytest.raises(UnsafeContentError):
        parse_xml(data)


def test_a_cda_with_a_huge_namespace_inside_an_archive_is_refused_as_a_limit() -> None:
    data = _samples.replace_entry(_samples.archive(), _samples.CDA_PATH, _cda_with_namespace("urn:" + "x" * 100_000))
    with pytest.raises(LimitError, match=r"DOC0001\.XML: XML namespace URI"):
        read_archive(data)
    report = check_message(_samples.message_carrying(data))
    assert any(f.rule == "ECO.2.1.1" and "namespace URI" in f.message for f in report.errors)


# -- structured header length (benchmarks/fuzz.py, seed 13: a 23 KB Content-Type took 2.6 s) ----
@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"Content-Type", b'multipart/alternative;\r\n boundary="===8389027' + b'"===8389027' * 2000),
        (b"To", b"(x)" * 5500),  # comments: 16 KiB took 3 s in the stdlib grammar
        (b"Cc", b'"x' * 8192),  # unbalanced quotes
    ],
)
def test_a_structured_field_beyond_the_cap_is_refused_before_the_stdlib_parses_it(name: bytes, value: bytes) -> None:
    data = HEAD + name + b": " + value + b"\r\n\r\nhi\r\n"
    for call in (parse_message, check_message):
        with pytest.raises(LimitError, match="structured field"):
            call(data)


def test_two_hundred_recipients_fit_the_structured_cap() -> None:
    to = b", ".join(b'"Dr %d" <dr%d@hopital-test.mssante.fr>' % (i, i) for i in range(200))
    assert len(to) < ReadSettings().max_structured_header_length
    parsed = parse_message(b"From: a@b.mssante.fr\r\nTo: " + to + b"\r\n\r\nhi\r\n")
    assert len(parsed.to) == 200


# -- the MIME reader is fed in chunks (half the memory of one parsebytes) --------------------------
@settings(max_examples=examples(60), deadline=None)
@given(st.integers(min_value=1, max_value=700), st.binary(max_size=30), st.integers(min_value=0, max_value=10_000))
def test_feeding_in_chunks_builds_the_same_tree(chunk: int, noise: bytes, at: int) -> None:
    import email.policy
    from email.parser import BytesParser

    from mssante.message import _parse

    data = bytearray(_samples.message())
    data[at % len(data) : at % len(data)] = noise  # CR/LF and 8-bit octets land on chunk edges too
    policy = _parse._BoundedPolicy(read_settings=ReadSettings())
    original = _parse._FEED_CHUNK
    try:
        _parse._FEED_CHUNK = chunk
        fed = _parse._feed(bytes(data), policy)
    finally:
        _parse._FEED_CHUNK = original
    whole = BytesParser(policy=email.policy.default).parsebytes(bytes(data))

    def tree(msg: object) -> list[object]:  # raw headers, and raw payloads of the leaves
        parts = msg.walk()  # type: ignore[attr-defined]
        return [(list(p.raw_items()), None if p.is_multipart() else p.get_payload(), p.defects) for p in parts]

    assert repr(tree(fed)) == repr(tree(whole))


def test_parsing_a_large_message_costs_less_than_one_parsebytes() -> None:
    import email.policy
    from email.parser import BytesParser

    body = (b"QUJD" * 19 + b"\r\n") * (8 * 1024 * 1024 // 78)  # 8 MiB of base64 in 76-character lines
    data = HEAD + b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body
    from mssante.message import _parse

    policy = _parse._BoundedPolicy(read_settings=ReadSettings())
    whole = peak_mib(lambda: BytesParser(policy=email.policy.default).parsebytes(data))
    fed = peak_mib(lambda: _parse._feed(data, policy))
    assert fed < whole * 0.6, (fed, whole)


def test_an_element_flood_is_refused_before_it_costs_hundreds_of_megabytes() -> None:
    flood = b"<r>" + b"<a/>" * 600_000 + b"</r>"  # 2.3 MB; 2,000,000 such elements took +179 MB
    def refused() -> None:  # one parse, traced (a traced parse is slow): refused, and how much it cost
        with pytest.raises(LimitError, match="more than 500000 elements"):
            parse_xml(flood)

    assert peak_mib(refused) < 80
    for cda in _samples.cda_documents():
        assert parse_cda_header(cda).code is not None
