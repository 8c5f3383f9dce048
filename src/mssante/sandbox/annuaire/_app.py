"""The mock Annuaire Santé: a FHIR R4 JSON API over the sandbox's directory, behind an API key.

Routes, under the mount point (``/annuaire/fhir`` in the sandbox):

* ``GET /metadata``: the CapabilityStatement (resources and search parameters served);
* ``GET /<Resource>?...``: search ``Practitioner``, ``PractitionerRole`` or ``Organization`` with the parameters of
  :mod:`mssante.annuaire._query`; a ``searchset`` Bundle with ``total``, ``link`` ``self`` and ``next`` (paging by
  ``_count`` and ``_offset``) and ``_include``-d resources in ``search.mode = include``;
* ``GET /<Resource>/<id>``: read one resource.

As the ANS gateway does, every request needs the ``ESANTE-API-KEY`` header: missing or wrong, the answer is 401.
A bad search parameter, modifier or value, or a page above 100 entries, is a 400 with an ``OperationOutcome``; an
unknown resource or id a 404; anything but GET a 405. Every answer is FHIR JSON and nothing here raises: the mock
never answers 500. Each request is kept in a bounded access log (:attr:`AnnuaireMock.access_log`), without the key,
so that a conformance case can see whether an LPS looked a recipient up before writing (ECO.3.1.4).
"""

from __future__ import annotations

import hmac
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mssante.annuaire._client import API_KEY_HEADER
from mssante.annuaire._query import SEARCH_PARAMETERS, Criterion, SearchParameterError, SearchQuery, Token, parse_search
from mssante.sandbox.annuaire._data import Directory, Indexed, fold
from mssante.sandbox.config import SandboxConfig

__all__ = ["ANNUAIRE_PATH", "SANDBOX_API_KEY", "AccessRecord", "AnnuaireMock", "annuaire_info"]

#: Where the sandbox's HTTP server mounts the mock.
ANNUAIRE_PATH: Final = "/annuaire/fhir"
#: The API key of the mock: a public test credential (it protects a loopback test service only).
SANDBOX_API_KEY: Final = "sandbox-annuaire-key-not-for-production"
_FHIR_JSON: Final = "application/fhir+json; charset=utf-8"
_LOG_SIZE: Final = 1000


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One request seen by the mock (never the API key).

    Attributes:
        time: seconds since the epoch (the mock's clock).
        method, path: the request line (path below the mount point).
        query: the raw query string (at most 500 characters).
        status: the HTTP status answered.
        matches: the number of matching resources for a search, else 0.
    """

    time: float
    method: str
    path: str
    query: str
    status: int
    matches: int


def annuaire_info(base_url: str) -> dict[str, str]:
    """The ``annuaire`` entry of ``sandbox.json`` for a sandbox HTTP server at ``base_url``.

    Raises:
        MssanteError: none on purpose.
    """
    return {"base_url": base_url + ANNUAIRE_PATH, "api_key": SANDBOX_API_KEY, "api_key_header": API_KEY_HEADER}


def _outcome(status: int, code: str, diagnostics: str, *, severity: str = "error") -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
    return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type=_FHIR_JSON)


def _fhir(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), media_type=_FHIR_JSON)


def _string_match(values: list[str], criterion: Criterion) -> bool:
    for q in criterion.values:
        text = str(q)
        if criterion.modifier == "exact":
            if text in values:
                return True
        elif criterion.modifier == "contains":
            if any(fold(text) in fold(v) for v in values):
                return True
        elif any(fold(v).startswith(fold(text)) for v in values):
            return True
    return False


def _token_match(values: list[tuple[str | None, str]], criterion: Criterion) -> bool:
    for q in criterion.values:
        assert isinstance(q, Token)
        for system, code in values:
            if code == q.code and (q.system is None or q.system == (system or "")):
                return True
    return False


def _reference_match(values: list[tuple[str | None, str]], criterion: Criterion) -> bool:
    wanted = {str(q) for q in criterion.values}
    return any(f"{kind}/{ident}" in wanted or ident in wanted for kind, ident in values)


def _matches(item: Indexed, query: SearchQuery) -> bool:
    kinds = SEARCH_PARAMETERS[query.resource]
    for c in query.criteria:
        kind = kinds[c.name]
        if kind == "string":
            ok = _string_match(item.strings.get(c.name, []), c)
        elif kind == "token":
            ok = _token_match(item.tokens.get(c.name, []), c)
        else:
            ok = _reference_match(item.tokens.get(c.name, []), c)
        if not ok:
            return False
    return True


class AnnuaireMock:
    """The ASGI application of the mock directory for one sandbox configuration."""

    def __init__(
        self, config: SandboxConfig, *, api_key: str = SANDBOX_API_KEY, clock: Callable[[], float] = time.time
    ) -> None:
        """Build the directory from ``config``; :attr:`app` serves it."""
        self.directory = Directory(config)
        self._key = api_key.encode()
        self._clock = clock
        self.access_log: deque[AccessRecord] = deque(maxlen=_LOG_SIZE)
        self.app = Starlette(routes=[
            Route("/metadata", self._metadata, methods=["GET"]),
            Route("/{resource}", self._search, methods=["GET"]),
            Route("/{resource}/{ident}", self._read, methods=["GET"]),
            Route("/{rest:path}", self._elsewhere,
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        ])

    # ------------------------------------------------------------------ plumbing

    def _log(self, request: Request, status: int, matches: int = 0) -> None:
        self.access_log.append(AccessRecord(
            time=self._clock(), method=request.method, path=request.url.path[:200],
            query=request.url.query[:500], status=status, matches=matches,
        ))

    def _refused(self, request: Request) -> Response | None:
        """The 401 answer when the API key is missing or wrong, else None."""
        given = request.headers.get(API_KEY_HEADER)
        if given is None:
            return _outcome(401, "login", f"missing {API_KEY_HEADER} header")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self._key):
            return _outcome(401, "security", f"invalid {API_KEY_HEADER}")
        return None

    # ------------------------------------------------------------------ routes

    async def _elsewhere(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            response = self._refused(request) or _outcome(404, "not-found", "no such FHIR endpoint")
        else:
            response = _outcome(405, "not-supported", f"{request.method} is not supported: this directory is read-only")
        self._log(request, response.status_code)
        return response

    async def _metadata(self, request: Request) -> Response:
        response = self._refused(request) or _fhir({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "json"],
            "software": {"name": "mssante sandbox Annuaire Santé"},
            "rest": [{
                "mode": "server",
                "resource": [
                    {"type": name, "interaction": [{"code": "read"}, {"code": "search-type"}],
                     "searchParam": [{"name": p, "type": t} for p, t in params.items()]}
                    for name, params in SEARCH_PARAMETERS.items()
                ],
            }],
        })
        self._log(request, response.status_code)
        return response

    async def _read(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            self._log(request, 401)
            return refused
        resource, ident = request.path_params["resource"], request.path_params["ident"]
        item = self.directory.by_key.get(f"{resource}/{ident}") if resource in SEARCH_PARAMETERS else None
        if item is None:
            self._log(request, 404)
            return _outcome(404, "not-found", f"{resource[:40]}/{ident[:64]} is unknown")
        self._log(request, 200, 1)
        return _fhir(item.resource)

    async def _search(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            self._log(request, 401)
            return refused
        resource = request.path_params["resource"]
        if resource not in SEARCH_PARAMETERS:
            self._log(request, 404)
            return _outcome(404, "not-supported", f"unknown resource type {resource[:40]!r}")
        try:
            query = parse_search(resource, request.query_params.multi_items())
        except SearchParameterError as exc:
            self._log(request, 400)
            return _outcome(400, exc.issue, exc.message)
        found = [item for item in self.directory.resources[resource] if _matches(item, query)]
        page = found[query.offset : query.offset + query.count]
        entries: list[dict[str, Any]] = [self._entry(request, item, "match") for item in page]
        seen = {item.key for item in page}
        for include in query.include:
            field = include.split(":", 1)[1]
            for item in page:
                ref = item.resource.get(field, {}).get("reference")
                target = self.directory.by_key.get(ref) if isinstance(ref, str) else None
                if target is not None and target.key not in seen:
                    seen.add(target.key)
                    entries.append(self._entry(request, target, "include"))
        links = [{"relation": "self", "url": self._url(request, query)}]
        if query.offset + query.count < len(found):
            after = SearchQuery(resource, query.criteria, query.count, query.offset + query.count, query.include)
            links.append({"relation": "next", "url": self._url(request, after)})
        self._log(request, 200, len(found))
        return _fhir({"resourceType": "Bundle", "type": "searchset", "total": len(found), "link": links,
                      "entry": entries})

    def _url(self, request: Request, query: SearchQuery) -> str:
        return f"{_base(request)}/{query.resource}?{urlencode(query.to_params())}"

    def _entry(self, request: Request, item: Indexed, mode: str) -> dict[str, Any]:
        return {"fullUrl": f"{_base(request)}/{item.key}", "resource": item.resource, "search": {"mode": mode}}


def _base(request: Request) -> str:
    """The mock's base URL from the listening socket and the mount point, never from the ``Host`` header."""
    scheme = request.scope.get("scheme", "http")
    server = request.scope.get("server") or ("127.0.0.1", 80)
    host, port = str(server[0]), int(server[1] or 80)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{request.scope.get('root_path', '')}"
