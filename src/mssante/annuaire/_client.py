"""The async client of the Annuaire Santé FHIR API: one httpx2 pool, the API key, bounded answers.

Transport rules are the library's: ``https`` with certificate verification (plain ``http`` only towards a loopback
sandbox), TLS 1.2 or later through the caller's :class:`ssl.SSLContext` when given, no redirect followed, no proxy
from the environment unless asked. The API key travels in the ``ESANTE-API-KEY`` header, as the ANS gateway wants,
and only to the configured base URL: a ``link next`` that points anywhere else is refused rather than followed
with the key. The key is held in a :class:`~mssante.secret.Secret` and never logged nor shown in a repr.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlsplit

import httpx2

from mssante.annuaire._fhir import (
    IDNPS_SYSTEM,
    IDNST_SYSTEM,
    PROFESSION_SYSTEM,
    RPPS_SYSTEM,
    SPECIALTY_SYSTEM,
    Organization,
    Practitioner,
    organization_from_fhir,
    practitioner_from_fhir,
)
from mssante.annuaire._query import (
    DEFAULT_COUNT,
    Criterion,
    SearchParameterError,
    SearchQuery,
    Token,
)
from mssante.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    LimitError,
    RemoteProtocolError,
    TimeoutError,
    TransportError,
    UsageError,
)
from mssante.secret import Secret
from mssante.trust import client_ssl_context, map_ssl_error

__all__ = ["API_KEY_HEADER", "AnnuaireClient", "SearchPage"]

#: The header of the ANS API gateway that carries the API key.
API_KEY_HEADER: Final = "ESANTE-API-KEY"
_MAX_BODY: Final = 8 * 1024 * 1024
_FHIR_JSON: Final = "application/fhir+json"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SearchPage(Generic[T]):
    """One page of search results.

    Attributes:
        entries: the typed results of this page.
        total: the number of matches, when the server says.
        next_url: the ``link next`` of the Bundle (use :meth:`AnnuaireClient.next_page`), or None on the last page.
    """

    entries: tuple[T, ...]
    total: int | None
    next_url: str | None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _criteria(*wanted: tuple[str, str | None, str | None]) -> tuple[Criterion, ...]:
    """The criteria for the given values: ``(parameter, value, token system or None for a string)``."""
    out: list[Criterion] = []
    for name, value, system in wanted:
        if value:
            is_token = name in ("identifier", "qualification-code")
            out.append(Criterion(name, "", (_token(value, system) if is_token else value,)))
    return tuple(out)


def _token(value: str, system: str | None) -> Token:
    """``system|code`` given by the caller stays; a bare code gets ``system`` (or any system when None)."""
    if "|" in value:
        sys, _, code = value.partition("|")
        return Token(sys or None, code)
    return Token(system, value)


class AnnuaireClient:
    """Search the Annuaire Santé (FHIR R4): professionals and structures with their MSSanté addresses.

    Use as ``async with AnnuaireClient(base_url, api_key) as annuaire: ...``. For the sandbox's mock, build it
    with :meth:`from_sandbox` (its ``sandbox.json`` gives the base URL and the test API key).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret,
        *,
        ssl_context: ssl.SSLContext | None = None,
        ca_bundle: Path | None = None,
        timeout: float = 10.0,
        trust_env: bool = False,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """Check the settings; no connection is opened yet.

        Args:
            base_url: the FHIR base, e.g. ``https://gateway.api.esante.gouv.fr/fhir/v2``.
            api_key: the API key issued by the ANS gateway (sent as ``ESANTE-API-KEY``).
            ssl_context: a TLS context of the caller's; it must verify certificates and host names and refuse
                TLS below 1.2 (checked by :func:`mssante.trust.client_ssl_context`).
            ca_bundle: a PEM file of trust anchors instead of the system store (exclusive with ``ssl_context``).
            timeout: seconds for each request.
            trust_env: honour proxy environment variables.
            transport: an httpx2 transport, for tests.

        Raises:
            ConfigError: the URL is not ``https`` (nor ``http`` on loopback), the key is empty, or ``ca_bundle``
                cannot be read.
            UsageError: ``ssl_context`` is loosened (no verification, TLS below 1.2) or given with ``ca_bundle``.
        """
        try:
            parts = urlsplit(base_url)
        except ValueError:
            raise ConfigError(f"Annuaire base URL {base_url[:200]!r} is not a URL") from None
        host = parts.hostname or ""
        if not host or parts.query or parts.fragment:
            raise ConfigError(f"Annuaire base URL {base_url[:200]!r} must be absolute, without query")
        if not (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))):
            raise ConfigError(f"the Annuaire must be reached over https (plain http only on loopback): {base_url!r}")
        key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        if not key.reveal().strip() or any(not c.isprintable() for c in key.reveal()):
            raise ConfigError("the Annuaire API key is empty or holds control characters")
        self.base_url = base_url.rstrip("/")
        self._key = key
        if ssl_context is not None and ca_bundle is not None:
            raise UsageError("ssl_context and ca_bundle are exclusive")
        if ssl_context is not None:
            verify = client_ssl_context(ssl_context=ssl_context)
        else:  # a public web API: the system store (or the given anchors), TLS >= 1.2, OpenSSL's suites
            verify = client_ssl_context(ca_bundle=ca_bundle, ciphers=None)
        self._http = httpx2.AsyncClient(
            verify=verify, timeout=timeout, trust_env=trust_env, follow_redirects=False,
            headers={"Accept": _FHIR_JSON}, transport=transport,
        )

    @classmethod
    def from_sandbox(cls, info: Mapping[str, Any], **options: Any) -> AnnuaireClient:
        """Build a client for the sandbox's mock from the ``sandbox.json`` content (its ``annuaire`` entry).

        Raises:
            ConfigError: ``info`` has no usable ``annuaire`` entry.
        """
        entry = info.get("annuaire")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("base_url"), str):
            raise ConfigError("sandbox.json has no 'annuaire' entry: start a sandbox of this version")
        key = entry.get("api_key")
        if not isinstance(key, str):
            raise ConfigError("sandbox.json's 'annuaire' entry has no api_key")
        return cls(entry["base_url"], key, **options)

    def __repr__(self) -> str:
        return f"AnnuaireClient({self.base_url!r}, api_key=***)"

    async def __aenter__(self) -> AnnuaireClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (idempotent)."""
        await self._http.aclose()

    # ------------------------------------------------------------------ searches

    async def search_practitioners(
        self,
        *,
        name: str | None = None,
        identifier: str | None = None,
        profession: str | None = None,
        specialty: str | None = None,
        city: str | None = None,
        mailbox: str | None = None,
        count: int = DEFAULT_COUNT,
    ) -> SearchPage[Practitioner]:
        """Search health professionals; each criterion given must match (AND).

        Args:
            name: the start of a family or given name (case and accents ignored).
            identifier: an idNatPs (12 characters, ``8`` + RPPS) or an RPPS number (11 digits), or ``system|value``.
            profession: a TRE_G15 code (``10`` médecin, ``21`` pharmacien...).
            specialty: a TRE_R38 savoir-faire code (``SM54`` médecine générale...).
            city: the start of a city where the professional works.
            mailbox: the start of an MSSanté address.
            count: the page size (1 to 100).

        Raises:
            UsageError: no criterion, or a value the search syntax refuses (also ``count`` out of range).
            AuthError: the API key was refused (401/403).
            TimeoutError, ConnectError, TransportError: the network failed or the server is unavailable.
            CertificateError, TrustError: TLS with the server failed.
            RemoteProtocolError, LimitError: the answer is not a FHIR Bundle, or is too large.
        """
        system = None if identifier is None or "|" in identifier else (
            RPPS_SYSTEM if len(identifier) == 11 else IDNPS_SYSTEM)
        criteria = _criteria(
            ("name", name, None), ("identifier", identifier, system), ("qualification-code", profession,
            PROFESSION_SYSTEM), ("qualification-code", specialty, SPECIALTY_SYSTEM), ("address-city", city, None),
            ("mailbox-mss", mailbox, None),
        )
        bundle = await self._search(SearchQuery("Practitioner", criteria, count))
        return self._page(bundle, "Practitioner")

    async def search_organizations(
        self,
        *,
        name: str | None = None,
        identifier: str | None = None,
        city: str | None = None,
        mailbox: str | None = None,
        count: int = DEFAULT_COUNT,
    ) -> SearchPage[Organization]:
        """Search health structures; each criterion given must match (AND).

        Args:
            name: the start of the raison sociale (case and accents ignored).
            identifier: an idNatStruct (``1`` + FINESS, ``3`` + SIRET...) or ``system|value``.
            city: the start of the city.
            mailbox: the start of an MSSanté address.
            count: the page size (1 to 100).

        Raises:
            UsageError: no criterion, or a value the search syntax refuses (also ``count`` out of range).
            AuthError: the API key was refused (401/403).
            TimeoutError, ConnectError, TransportError: the network failed or the server is unavailable.
            CertificateError, TrustError: TLS with the server failed.
            RemoteProtocolError, LimitError: the answer is not a FHIR Bundle, or is too large.
        """
        criteria = _criteria(
            ("name", name, None), ("identifier", identifier, IDNST_SYSTEM), ("address-city", city, None),
            ("mailbox-mss", mailbox, None),
        )
        bundle = await self._search(SearchQuery("Organization", criteria, count))
        return self._page(bundle, "Organization")

    async def next_page(self, page: SearchPage[T]) -> SearchPage[T] | None:
        """Fetch the page after ``page`` (its ``link next``), or return None on the last page.

        Raises:
            RemoteProtocolError: the ``next`` link leaves the configured base URL (the key is not sent there).
            AuthError, TimeoutError, ConnectError, TransportError, TrustError, LimitError: as for the searches.
        """
        if page.next_url is None:
            return None
        url = page.next_url
        base = urlsplit(self.base_url)
        target = urlsplit(url)
        resource = target.path[len(base.path) :].strip("/")
        same_origin = (target.scheme, target.netloc) == (base.scheme, base.netloc)
        inside = target.path.startswith(base.path + "/") and resource in ("Practitioner", "Organization")
        if not same_origin or not inside:
            raise RemoteProtocolError("the Annuaire's 'next' link leaves its base URL; not followed with the API key")
        bundle = await self._get(url, None)
        return self._page(bundle, resource)

    # ------------------------------------------------------------------ plumbing

    async def _search(self, query: SearchQuery) -> Mapping[str, Any]:
        if not query.criteria:
            raise UsageError("an Annuaire search needs at least one criterion")
        try:
            params = query.to_params()
        except SearchParameterError as exc:
            raise UsageError(f"invalid Annuaire search: {exc.message}") from None
        return await self._get(f"{self.base_url}/{query.resource}", params)

    async def _get(self, url: str, params: list[tuple[str, str]] | None) -> Mapping[str, Any]:
        if self._http.is_closed:
            raise UsageError("this AnnuaireClient is closed")
        headers = {API_KEY_HEADER: self._key.reveal()}
        try:
            query = tuple(params) if params is not None else None
            async with self._http.stream("GET", url, params=query, headers=headers) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_BODY:
                        raise LimitError(f"the Annuaire answer is larger than {_MAX_BODY} bytes")
                status = response.status_code
        except httpx2.TransportError as exc:
            raise _map_transport(exc) from exc
        except httpx2.HTTPError as exc:
            raise TransportError(f"the Annuaire request failed: {type(exc).__name__}") from exc
        data = _json(bytes(body)) if body else {}
        if status in (401, 403):
            raise AuthError(f"the Annuaire refused the API key (HTTP {status})")
        if status == 400:
            raise UsageError(f"the Annuaire refused the search: {_diagnostics(data)}")
        if status >= 500 or status == 429:
            raise TransportError(f"the Annuaire is unavailable (HTTP {status})")
        if status != 200:
            raise RemoteProtocolError(f"the Annuaire answered HTTP {status} to a search")
        if data.get("resourceType") != "Bundle" or data.get("type") != "searchset":
            raise RemoteProtocolError("the Annuaire answer is not a FHIR searchset Bundle")
        return data

    def _page(self, bundle: Mapping[str, Any], resource: str) -> SearchPage[Any]:
        matches: list[Mapping[str, Any]] = []
        included: dict[str, Mapping[str, Any]] = {}
        entries = bundle.get("entry")
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                raise RemoteProtocolError("a Bundle entry without a resource")
            res = entry["resource"]
            mode = entry.get("search", {}).get("mode", "match") if isinstance(entry.get("search"), dict) else "match"
            if mode == "match" and res.get("resourceType") == resource:
                matches.append(res)
            elif isinstance(res.get("resourceType"), str) and isinstance(res.get("id"), str):
                included[f"{res['resourceType']}/{res['id']}"] = res
        if resource == "Practitioner":
            typed: list[Any] = [practitioner_from_fhir(m) for m in matches]
        else:
            typed = [organization_from_fhir(m) for m in matches]
        total = bundle.get("total")
        next_url = None
        links = bundle.get("link")
        for link in links if isinstance(links, list) else ():
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                next_url = link["url"]
        return SearchPage(tuple(typed), total if isinstance(total, int) else None, next_url)


def _json(body: bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise RemoteProtocolError("the Annuaire answer is not JSON") from None
    if not isinstance(data, dict):
        raise RemoteProtocolError("the Annuaire answer is not a JSON object")
    return data


def _diagnostics(outcome: Mapping[str, Any]) -> str:
    issues = outcome.get("issue")
    texts = []
    for issue in issues if isinstance(issues, list) else ():
        if isinstance(issue, dict) and isinstance(issue.get("diagnostics"), str):
            texts.append("".join(c for c in issue["diagnostics"][:200] if c.isprintable()))
    return "; ".join(texts) or "no diagnostics"


def _map_transport(exc: httpx2.TransportError) -> Exception:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return map_ssl_error(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx2.TimeoutException):
        return TimeoutError("the Annuaire did not answer in time")
    if isinstance(exc, httpx2.ConnectError):
        return ConnectError(f"cannot connect to the Annuaire: {type(exc).__name__}")
    return TransportError(f"the Annuaire request failed: {type(exc).__name__}")
