"""Provider metadata (OIDC Discovery 1.0, RFC 8414) and the realm's JWKS, cached in memory.

PSC publishes ``.well-known/wallet-openid-configuration`` (psc-igc.md §1.1); the standard
``openid-configuration`` is tried when the first answers 404. The document's ``issuer`` must
equal the configured issuer exactly (OIDC Discovery §4.3), and every endpoint must be https
(loopback http only for a loopback issuer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mssante.errors import ConfigError, PSCError
from mssante.psc._http import HTTP
from mssante.psc._settings import check_url

__all__ = ["Discovery", "ProviderMetadata"]

_ENDPOINTS: Final = (
    "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "introspection_endpoint",
    "revocation_endpoint", "end_session_endpoint", "backchannel_authentication_endpoint",
)
_REQUIRED: Final = ("authorization_endpoint", "token_endpoint", "jwks_uri")
#: An unknown ``kid`` triggers a JWKS reload (key rotation), at most this often (seconds).
_JWKS_RELOAD_SPACING: Final = 10.0


@dataclass(frozen=True)
class ProviderMetadata:
    """The checked discovery document.

    Attributes:
        issuer: equal to the configured issuer.
        raw: the whole document, for fields not modelled here.
    """

    issuer: str
    raw: Mapping[str, Any] = field(repr=False)

    def endpoint(self, name: str) -> str:
        """Return an endpoint URL such as ``token_endpoint`` or ``backchannel_authentication_endpoint``.

        Raises:
            PSCError: (``oauth_error="invalid_discovery"``) the provider does not advertise it.
        """
        value = self.raw.get(name)
        if not isinstance(value, str) or not value:
            raise PSCError(f"PSC's discovery document has no {name}", oauth_error="invalid_discovery")
        return value

    def has(self, name: str) -> bool:
        """Tell whether the document advertises the endpoint ``name``."""
        return isinstance(self.raw.get(name), str) and bool(self.raw.get(name))


def check_metadata(doc: Mapping[str, Any], *, issuer: str, loopback_ok: bool) -> ProviderMetadata:
    """Check a discovery document against the configured issuer.

    Raises:
        PSCError: ``invalid_issuer`` when ``issuer`` differs (OIDC Discovery §4.3, mix-up
            defence); ``invalid_discovery`` when a required endpoint is missing or insecure.
    """
    if doc.get("issuer") != issuer:
        raise PSCError("PSC's discovery document names another issuer than the configured one",
                       oauth_error="invalid_issuer", requirement="OIDC Discovery §4.3")
    for name in _ENDPOINTS:
        value = doc.get(name)
        if value is None and name not in _REQUIRED:
            continue
        if not isinstance(value, str):
            raise PSCError(f"PSC's discovery document has no valid {name}", oauth_error="invalid_discovery")
        try:
            check_url(value, loopback_ok=loopback_ok, what=name)
        except ConfigError as exc:
            raise PSCError(exc.message, oauth_error="invalid_discovery") from exc
    return ProviderMetadata(issuer=issuer, raw=dict(doc))


class Discovery:
    """Fetches and caches the provider metadata and the JWKS; concurrent callers share one fetch."""

    def __init__(self, http: HTTP, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._http = http
        self._settings = http.settings
        self._clock = clock
        self._lock = asyncio.Lock()
        self._metadata: tuple[ProviderMetadata, float] | None = None
        self._keys: tuple[KeySet, float] | None = None

    async def metadata(self, *, refresh: bool = False) -> ProviderMetadata:
        """Return the cached metadata, fetching it when absent, stale or ``refresh``.

        Raises:
            PSCError: ``invalid_issuer`` / ``invalid_discovery`` (see :func:`check_metadata`),
                or neither document could be found.
            AuthUnavailable: PSC answered 5xx.
            TransportError, TrustError: the network or TLS failed.
        """
        async with self._lock:
            now = self._clock()
            if self._metadata is not None and not refresh and now < self._metadata[1]:
                return self._metadata[0]
            doc = await self._fetch_document()
            meta = check_metadata(doc, issuer=self._settings.issuer, loopback_ok=self._settings.loopback)
            self._metadata = (meta, now + self._settings.discovery_ttl)
            return meta

    async def _fetch_document(self) -> dict[str, Any]:
        wallet, standard = self._settings.discovery_urls
        response = await self._http.send("GET", wallet, "discovery request")
        if response.status_code == 404:  # not PSC's naming: try OIDC Discovery §4's well-known name
            response = await self._http.send("GET", standard, "discovery request")
        return self._http.json(response, "discovery request")

    async def key_set(self, *, kid: str | None = None) -> KeySet:
        """Return the realm's public keys; reload them when ``kid`` is unknown (key rotation).

        Raises:
            PSCError: (``invalid_discovery``) the JWKS is not a valid JWK Set.
            AuthUnavailable, TransportError, TrustError: as :meth:`metadata`.
        """
        meta = await self.metadata()
        async with self._lock:
            now = self._clock()
            cached = self._keys
            if cached is not None and now < cached[1]:
                known = kid is None or any(k.kid == kid for k in cached[0].keys)
                recent = now - (cached[1] - self._settings.discovery_ttl) < _JWKS_RELOAD_SPACING
                if known or recent:
                    return cached[0]
            response = await self._http.send("GET", meta.endpoint("jwks_uri"), "JWKS request")
            body = self._http.json(response, "JWKS request")
            try:
                keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise PSCError("PSC's JWKS is not a valid JWK Set", oauth_error="invalid_discovery") from exc
            self._keys = (keys, now + self._settings.discovery_ttl)
            return keys
