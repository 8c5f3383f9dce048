"""The search parameter parser shared by the mock and the client: hypothesis properties and the refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.annuaire import MAX_COUNT, SearchParameterError, SearchQuery, parse_search
from mssante.annuaire._query import SEARCH_PARAMETERS, Criterion, Token
from mssante.errors import UsageError

RESOURCES = sorted(SEARCH_PARAMETERS)
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_printable = st.builds(lambda a, b: a + b, st.sampled_from("aZé0,|\\$"), st.text(max_size=8))
_ident = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@st.composite
def queries(draw: st.DrawFn) -> SearchQuery:
    resource = draw(st.sampled_from(RESOURCES))
    table = SEARCH_PARAMETERS[resource]
    criteria = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(table)))
        kind = table[name]
        if kind == "token":
            system = draw(st.none() | st.just("") | _text)
            values: list[str | Token] = draw(st.lists(st.builds(Token, st.just(system), _text), min_size=1, max_size=2))
            modifier = ""
        elif kind == "reference":
            prefix = st.sampled_from(["", "Practitioner/", "Organization/"])
            values = draw(st.lists(st.builds(lambda p, i: p + i, prefix, _ident), min_size=1, max_size=2))
            modifier = ""
        else:
            values = draw(st.lists(_printable, min_size=1, max_size=2))
            modifier = draw(st.sampled_from(["", "exact", "contains"]))
        criteria.append(Criterion(name, modifier, tuple(values)))
    include: tuple[str, ...] = ()
    if resource == "PractitionerRole":
        include = tuple(draw(st.lists(st.sampled_from(["PractitionerRole:practitioner",
                                                       "PractitionerRole:organization"]), unique=True)))
    return SearchQuery(resource, tuple(criteria), draw(st.integers(1, MAX_COUNT)), draw(st.integers(0, 10_000)),
                       include)


@given(queries())
def test_encoding_then_parsing_gives_the_same_query(query: SearchQuery) -> None:
    assert parse_search(query.resource, query.to_params()) == query


@given(st.sampled_from([*RESOURCES, "Patient", ""]),
       st.lists(st.tuples(st.text(max_size=70), st.text(max_size=300)), max_size=35))
def test_any_input_parses_or_is_a_typed_refusal(resource: str, items: list[tuple[str, str]]) -> None:
    try:
        query = parse_search(resource, items)
    except SearchParameterError as exc:
        assert isinstance(exc, UsageError) and exc.issue in ("invalid", "not-supported", "too-costly")
        assert exc.message
    else:
        assert 1 <= query.count <= MAX_COUNT and query.resource == resource
        assert all(c.values for c in query.criteria)


@given(st.lists(st.sampled_from(["a", ",", "|", "\\", "$", "é"]), min_size=1, max_size=12).map("".join))
def test_escaped_strings_survive_the_round_trip(value: str) -> None:
    query = SearchQuery("Organization", (Criterion("name", "", (value,)),))
    if not value.strip():
        with pytest.raises(SearchParameterError):
            query.to_params()
        return
    assert parse_search("Organization", query.to_params()).criteria[0].values == (value,)


@pytest.mark.parametrize(
    ("items", "issue"),
    [
        ([("_count", str(MAX_COUNT + 1))], "too-costly"),
        ([("_count", "0")], "invalid"),
        ([("_count", "dix")], "invalid"),
        ([("_count", "10"), ("_count", "20")], "invalid"),
        ([("_offset", "10001")], "too-costly"),
        ([("birthdate", "1970")], "not-supported"),
        ([("name:missing", "x")], "not-supported"),
        ([("identifier:exact", "x")], "not-supported"),
        ([("name", "")], "invalid"),
        ([("name", "  ")], "invalid"),
        ([("name", "a\\b")], "invalid"),
        ([("identifier", "a|b|c")], "invalid"),
        ([("identifier", "sys|")], "invalid"),
        ([("_include", "Practitioner:organization")], "not-supported"),
        ([("_format", "xml")], "not-supported"),
        ([("name", "x" * 300)], "too-costly"),
        ([("name", ",".join("abcdefghijk"))], "too-costly"),
        ([("name", "x")] * 31, "too-costly"),
    ],
)
def test_refusals_name_their_fhir_issue(items: list[tuple[str, str]], issue: str) -> None:
    with pytest.raises(SearchParameterError) as caught:
        parse_search("Practitioner", items)
    assert caught.value.issue == issue


def test_values_and_modifiers() -> None:
    query = parse_search("Practitioner", [
        ("name:contains", "uri,ast\\,eur"), ("identifier", "urn:oid:1.2.250.1.71.4.2.1|899700000001"),
        ("qualification-code", "|10"), ("_count", "5"), ("_offset", "10"),
    ])
    assert query.criteria == (
        Criterion("name", "contains", ("uri", "ast,eur")),
        Criterion("identifier", "", (Token("urn:oid:1.2.250.1.71.4.2.1", "899700000001"),)),
        Criterion("qualification-code", "", (Token("", "10"),)),
    )
    assert (query.count, query.offset) == (5, 10)
