"""FHIR search parameters of the Annuaire Santé (FHIR R4 §3.1.1 "Search"): one model, parsed and encoded.

The sandbox's mock parses requests with :func:`parse_search`; the library builds them with
:meth:`SearchQuery.to_params`. Both sides share the table :data:`SEARCH_PARAMETERS`:

* ``Practitioner``: ``_id``, ``identifier`` (idNatPs, RPPS), ``name``, ``family``, ``given``, ``qualification-code``
  (profession TRE_G15 or savoir-faire TRE_R38), ``address-city``, ``mailbox-mss``, ``mailbox-mss-type``, ``active``;
* ``PractitionerRole``: ``_id``, ``identifier``, ``practitioner``, ``organization``, ``role`` (profession),
  ``specialty``, ``mailbox-mss``, ``mailbox-mss-type``, ``active``;
* ``Organization``: ``_id``, ``identifier`` (idNatStruct), ``name``, ``address-city``, ``address-postalcode``,
  ``mailbox-mss``, ``mailbox-mss-type``, ``active``;
* result parameters: ``_count`` (1 to :data:`MAX_COUNT`), ``_offset`` (the paging cursor of ``link next``),
  ``_include`` (``PractitionerRole:practitioner`` / ``PractitionerRole:organization``) and ``_format`` (JSON only).

``mailbox-mss`` and ``mailbox-mss-type`` are the IG's own search parameters (``as-sp-mailbox-mss``,
``as-sp-mailbox-mss-type``). Values follow FHIR's rules: a comma separates alternatives (OR), repeating a parameter
means AND, ``\\`` escapes ``,``, ``|``, ``$`` and itself; tokens are ``[system|]code``; strings match a prefix
ignoring case and accents, or exactly (``:exact``), or anywhere (``:contains``). The server is strict: an unknown
parameter or modifier is an error, never silently ignored (``Prefer: handling=strict``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from mssante.errors import UsageError

__all__ = [
    "MAX_COUNT",
    "MAX_OFFSET",
    "SEARCH_PARAMETERS",
    "Criterion",
    "SearchParameterError",
    "SearchQuery",
    "Token",
    "parse_search",
]

ParamType = Literal["string", "token", "reference"]
Resource = Literal["Practitioner", "PractitionerRole", "Organization"]

_COMMON: Final[dict[str, ParamType]] = {
    "_id": "token",
    "identifier": "token",
    "mailbox-mss": "string",
    "mailbox-mss-type": "token",
    "active": "token",
}
SEARCH_PARAMETERS: Final[dict[str, dict[str, ParamType]]] = {
    "Practitioner": {
        **_COMMON,
        "name": "string",
        "family": "string",
        "given": "string",
        "qualification-code": "token",
        "address-city": "string",
    },
    "PractitionerRole": {
        **_COMMON,
        "practitioner": "reference",
        "organization": "reference",
        "role": "token",
        "specialty": "token",
    },
    "Organization": {**_COMMON, "name": "string", "address-city": "string", "address-postalcode": "string"},
}
_MODIFIERS: Final[dict[ParamType, frozenset[str]]] = {
    "string": frozenset({"", "exact", "contains"}),
    "token": frozenset({""}),
    "reference": frozenset({""}),
}
_INCLUDES: Final[dict[str, frozenset[str]]] = {
    "PractitionerRole": frozenset({"PractitionerRole:practitioner", "PractitionerRole:organization"}),
}
_FORMATS: Final = frozenset({"json", "application/json", "application/fhir+json"})

#: The largest page a client may ask for; more is refused (400, ``too-costly``), never silently cut.
MAX_COUNT: Final = 100
DEFAULT_COUNT: Final = 20
#: The deepest offset served: deeper paging is refused like an oversized page.
MAX_OFFSET: Final = 10_000
_MAX_PARAMS: Final = 30
_MAX_VALUE: Final = 256
_MAX_ALTERNATIVES: Final = 10
_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,40}$")


class SearchParameterError(UsageError):
    """A search request the Annuaire refuses (HTTP 400 with an OperationOutcome).

    Attributes:
        issue: the FHIR ``OperationOutcome.issue.code``: ``invalid``, ``not-supported`` or ``too-costly``.
    """

    error: ClassVar[str] = "search_parameter"

    def __init__(self, message: str, *, issue: str = "invalid") -> None:
        super().__init__(message, requirement="FHIR R4 §3.1.1")
        self.issue = issue


@dataclass(frozen=True, slots=True)
class Token:
    """A token value: ``code`` alone (any system), ``|code`` (no system) or ``system|code``."""

    system: str | None
    code: str


@dataclass(frozen=True, slots=True)
class Criterion:
    """One search parameter occurrence: its values are alternatives (OR)."""

    name: str
    modifier: str
    values: tuple[str | Token, ...]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed or to-be-encoded search: criteria (AND), page size, offset and includes."""

    resource: str
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    offset: int = 0
    include: tuple[str, ...] = ()

    def to_params(self) -> list[tuple[str, str]]:
        """Encode as query parameters (FHIR escaping), in a stable order.

        Raises:
            SearchParameterError: the query would be refused by :func:`parse_search`.
        """
        params: list[tuple[str, str]] = []
        for c in self.criteria:
            key = f"{c.name}:{c.modifier}" if c.modifier else c.name
            params.append((key, ",".join(_encode_value(v) for v in c.values)))
        params.append(("_count", str(self.count)))
        if self.offset:
            params.append(("_offset", str(self.offset)))
        params.extend(("_include", i) for i in self.include)
        if parse_search(self.resource, params) != self:
            raise SearchParameterError("the search cannot be encoded unambiguously")
        return params


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def _encode_value(value: str | Token) -> str:
    if isinstance(value, Token):
        code = _escape(value.code)
        return code if value.system is None else f"{_escape(value.system)}|{code}"
    return _escape(value)


def _split(text: str, sep: str) -> list[str]:
    """Split on unescaped ``sep``; keep escapes (they are removed by :func:`_unescape`)."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\,|$":
                raise SearchParameterError("a backslash escapes only \\, comma, | or $ (FHIR R4 §3.1.1.5.7)")
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _value(kind: ParamType, raw: str, name: str) -> str | Token:
    if kind == "token":
        pieces = _split(raw, "|")
        if len(pieces) > 2:
            raise SearchParameterError(f"{name}: a token is [system|]code")
        code = _unescape(pieces[-1])
        system = _unescape(pieces[0]) if len(pieces) == 2 else None
        if not code:
            raise SearchParameterError(f"{name}: empty code")
        return Token(system, code)
    value = _unescape(raw)
    if not value.strip():
        raise SearchParameterError(f"{name}: empty value")
    if kind == "reference" and not re.fullmatch(r"(?:[A-Za-z]+/)?[A-Za-z0-9.-]{1,64}", value):
        raise SearchParameterError(f"{name}: a reference is [Type/]id")
    return value


def _integer(name: str, raw: str, high: int, low: int) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", raw):
        raise SearchParameterError(f"{name} must be a whole number")
    value = int(raw)
    if value > high:
        raise SearchParameterError(f"{name}={value} is more than {high}", issue="too-costly")
    if value < low:
        raise SearchParameterError(f"{name} must be at least {low}")
    return value


def parse_search(resource: str, items: Sequence[tuple[str, str]]) -> SearchQuery:
    """Parse the query parameters of ``GET [base]/<resource>?...``.

    Raises:
        SearchParameterError: unknown resource, parameter or modifier; malformed, empty or too long value;
            ``_count`` above :data:`MAX_COUNT` or ``_offset`` above :data:`MAX_OFFSET` (issue ``too-costly``);
            more than 30 parameters or 10 alternatives.
    """
    table = SEARCH_PARAMETERS.get(resource)
    if table is None:
        raise SearchParameterError(f"unknown resource type {resource[:40]!r}", issue="not-supported")
    if len(items) > _MAX_PARAMS:
        raise SearchParameterError(f"more than {_MAX_PARAMS} search parameters", issue="too-costly")
    criteria: list[Criterion] = []
    count, offset, include = DEFAULT_COUNT, 0, []
    seen_result: set[str] = set()
    for key, raw in items:
        if len(raw) > _MAX_VALUE or len(key) > 60:
            raise SearchParameterError(f"a value longer than {_MAX_VALUE} characters", issue="too-costly")
        name, _, modifier = key.partition(":")
        if not _NAME.match(name) or (modifier and not re.fullmatch(r"[a-z-]{1,20}", modifier)):
            raise SearchParameterError(f"malformed parameter name {key[:60]!r}")
        if name in ("_count", "_offset", "_format"):
            if name in seen_result or modifier:
                raise SearchParameterError(f"{name} given twice or with a modifier")
            seen_result.add(name)
            if name == "_count":
                count = _integer(name, raw, MAX_COUNT, 1)
            elif name == "_offset":
                offset = _integer(name, raw, MAX_OFFSET, 0)
            elif raw not in _FORMATS:
                raise SearchParameterError("only JSON is served (_format=json)", issue="not-supported")
            continue
        if name == "_include":
            if modifier or raw not in _INCLUDES.get(resource, frozenset()):
                raise SearchParameterError(
                    f"_include={raw[:60]!r} is not supported on {resource}", issue="not-supported"
                )
            if raw not in include:
                include.append(raw)
            continue
        kind = table.get(name)
        if kind is None:
            raise SearchParameterError(f"unknown search parameter {name!r} on {resource}", issue="not-supported")
        if modifier not in _MODIFIERS[kind]:
            raise SearchParameterError(f"modifier :{modifier} is not supported on {name}", issue="not-supported")
        alternatives = _split(raw, ",")
        if len(alternatives) > _MAX_ALTERNATIVES:
            raise SearchParameterError(f"{name}: more than {_MAX_ALTERNATIVES} alternatives", issue="too-costly")
        criteria.append(Criterion(name, modifier, tuple(_value(kind, a, name) for a in alternatives)))
    return SearchQuery(resource, tuple(criteria), count, offset, tuple(include))
