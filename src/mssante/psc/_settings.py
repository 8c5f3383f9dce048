"""Settings of a Pro Santé Connect relying party: issuer, client authentication, PSC's request values.

Presets (psc-igc.md §1.1): :meth:`PSCSettings.production`, :meth:`PSCSettings.bac_a_sable` and
:meth:`PSCSettings.from_sandbox` (the local sandbox's ``sandbox.json``).

Transport security is explicit: the issuer must be ``https``; plain ``http`` is accepted only
for a loopback issuer (``127.0.0.1``, ``::1``, ``localhost``), i.e. the local sandbox (RFC 8252
§8.3 reasoning; RFC 6749 §3.1 and §3.2 require TLS otherwise). Authlib 1.9 applies the same
loopback rule itself, so ``AUTHLIB_INSECURE_TRANSPORT`` is never set.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from mssante.errors import ConfigError
from mssante.secret import Secret
from mssante.trust import client_ssl_context

__all__ = [
    "BAC_A_SABLE_ISSUER",
    "PRODUCTION_ISSUER",
    "AuthMethod",
    "PSCSettings",
    "is_loopback_url",
    "mtls_context",
]

#: psc-igc.md §1.1 [C]: ANS-KC ``psc.properties``, OIDDICT provider list.
PRODUCTION_ISSUER: Final = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"
BAC_A_SABLE_ISSUER: Final = "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet"
#: PSC's non-standard discovery document name (psc-igc.md §1.1); the standard one is the fallback.
WALLET_DISCOVERY: Final = ".well-known/wallet-openid-configuration"
STANDARD_DISCOVERY: Final = ".well-known/openid-configuration"

AuthMethod = Literal["client_secret_basic", "client_secret_post", "tls_client_auth"]
_AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "tls_client_auth")
#: Signature algorithms an ID token may use. ``none`` is never accepted (RFC 8725 §3.1).
_KNOWN_ALGS: Final = frozenset({"RS256", "PS256", "ES256", "HS256"})
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


def is_loopback_url(url: str) -> bool:
    """Tell whether ``url`` is ``http(s)`` on a loopback address (127.0.0.0/8, ::1, localhost)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, loopback_ok: bool, what: str) -> None:
    """Require ``https``, or ``http`` on loopback when ``loopback_ok`` (the sandbox).

    Raises:
        ConfigError: ``url`` is not absolute, or not secure enough.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{what} {url!r} is not a URL") from exc
    if not parts.hostname:
        raise ConfigError(f"{what} {url!r} is not an absolute URL")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and loopback_ok and is_loopback_url(url):
        return
    raise ConfigError(f"{what} must use https (plain http only for a loopback sandbox): {url!r}")


def mtls_context(cert: Path, key: Path | None = None, *, ca_bundle: Path | None = None) -> ssl.SSLContext:
    """Build a TLS context presenting an IGC Santé ORG certificate to PSC (``tls_client_auth``).

    Verification and host names stay on, TLS ≥ 1.2 (see :func:`mssante.trust.client_ssl_context`);
    the API LPS cipher baseline is not imposed, since PSC is not an MSSanté operator.

    Args:
        cert: PEM certificate (and chain) of the structure, registered with the PSC client.
        key: its private key (unencrypted PEM), or None when ``cert`` holds it.
        ca_bundle: trust anchors for PSC's server certificate; None uses the system store.

    Raises:
        ConfigError: a file cannot be read or does not hold what it should.
    """
    return client_ssl_context(ca_bundle=ca_bundle, client_cert=cert, client_key=key, ciphers=None)


@dataclass(frozen=True, kw_only=True)
class PSCSettings:
    """How to reach Pro Santé Connect and authenticate this relying party.

    Attributes:
        issuer: the realm URL, exactly as PSC writes ``iss`` (no trailing slash).
        client_id: the client registered at PSC.
        client_secret: its secret, for ``client_secret_*`` (and HS256 ID tokens, see below).
        auth_method: ``client_secret_basic`` (default, as ANS documents for introspection and
            CIBA), ``client_secret_post``, or ``tls_client_auth`` (RFC 8705 §2.1.1: client_id in
            the form plus the structure's certificate in ``ssl_context``; psc-igc.md §1.4).
        ssl_context: TLS context for every PSC call: trust anchors, and the client certificate
            for ``tls_client_auth``. None verifies against the system store.
        scope: ``openid scope_all``, the only value PSC supports (psc-igc.md §1.3).
        acr_values: ``eidas1``, mandatory and the only level (psc-igc.md §1.3).
        id_token_algorithms: allow-list for ID token signatures. HS256 (keyed by the client
            secret, as real PSC may sign ID tokens, psc-igc.md §1.5) applies only when a secret
            is configured; RS256 uses the realm's JWKS.
        leeway: clock-skew tolerance in seconds for ``exp``/``iat``/``nbf``.
        timeout: seconds allowed for each HTTP call to PSC.
        discovery_ttl: seconds the discovery document and the JWKS are cached.
        refresh_margin: refresh an access token this many seconds before it expires (capped
            at half its lifetime, so short test lifetimes do not refresh on every call).
        ciba_slow_down_step: seconds added to the CIBA poll interval on ``slow_down``
            (CIBA Core §11 says "at least 5"; tests lower it).
        trust_env: honour ``HTTP(S)_PROXY``/``SSL_CERT_FILE`` from the environment.
    """

    issuer: str
    client_id: str
    client_secret: Secret | None = None
    auth_method: AuthMethod = "client_secret_basic"
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    scope: str = "openid scope_all"
    acr_values: str = "eidas1"
    id_token_algorithms: tuple[str, ...] = ("RS256", "HS256")
    leeway: int = 30
    timeout: float = 10.0
    discovery_ttl: float = 3600.0
    refresh_margin: float = 30.0
    ciba_slow_down_step: float = 5.0
    trust_env: bool = False

    def __post_init__(self) -> None:
        given: object = self.client_secret
        if isinstance(given, str):  # accepted for convenience, stored wrapped
            object.__setattr__(self, "client_secret", Secret(given))
        if not self.issuer or self.issuer.endswith("/") or urlsplit(self.issuer).query:
            raise ConfigError("issuer must be an absolute URL without query or trailing slash")
        check_url(self.issuer, loopback_ok=True, what="issuer")
        if not self.client_id:
            raise ConfigError("client_id is required")
        if self.auth_method not in _AUTH_METHODS:
            raise ConfigError(f"auth_method must be one of {', '.join(_AUTH_METHODS)}")
        if self.auth_method == "tls_client_auth":
            if self.ssl_context is None:
                raise ConfigError("tls_client_auth needs an ssl_context holding the client certificate")
            if not self.issuer.startswith("https://"):
                raise ConfigError("tls_client_auth needs an https issuer (RFC 8705 §2)")
        elif not self.client_secret:
            raise ConfigError(f"{self.auth_method} needs a client_secret")
        if self.ssl_context is not None and (
            self.ssl_context.verify_mode != ssl.CERT_REQUIRED or not self.ssl_context.check_hostname
        ):
            raise ConfigError("ssl_context must verify PSC's certificate and host name")
        if "openid" not in self.scope.split():
            raise ConfigError("scope must contain openid (OIDC Core §3.1.2.1)")
        algs = set(self.id_token_algorithms)
        if not algs or not algs <= _KNOWN_ALGS:
            raise ConfigError(f"id_token_algorithms must be a non-empty subset of {sorted(_KNOWN_ALGS)}")
        for name in ("leeway", "timeout", "discovery_ttl", "refresh_margin", "ciba_slow_down_step"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")

    # -- presets ---------------------------------------------------------------------------------
    @classmethod
    def production(cls, client_id: str, *, client_secret: str | Secret | None = None, **options: Any) -> PSCSettings:
        """Settings for production PSC (``auth.esw.esante.gouv.fr``).

        Raises:
            ConfigError: see the class checks.
        """
        return cls._preset(PRODUCTION_ISSUER, client_id, client_secret, options)

    @classmethod
    def bac_a_sable(
        cls, client_id: str, *, client_secret: str | Secret | None = None, **options: Any
    ) -> PSCSettings:
        """Settings for PSC's bac à sable (``auth.bas.psc.esante.gouv.fr``).

        Raises:
            ConfigError: see the class checks.
        """
        return cls._preset(BAC_A_SABLE_ISSUER, client_id, client_secret, options)

    @classmethod
    def from_sandbox(cls, info: Mapping[str, Any] | Path, **options: Any) -> PSCSettings:
        """Settings for the local sandbox, from ``sandbox.json`` (its path or its parsed content).

        Reads ``psc.issuer``, ``psc.client_id`` and ``psc.client_secret``.

        Raises:
            ConfigError: the file cannot be read, or lacks those keys.
        """
        if isinstance(info, Path):
            try:
                info = json.loads(info.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read the sandbox description {info}: {exc}") from exc
        psc = info.get("psc") if isinstance(info, Mapping) else None
        if not isinstance(psc, Mapping) or not all(isinstance(psc.get(k), str) for k in ("issuer", "client_id")):
            raise ConfigError("sandbox.json has no psc.issuer / psc.client_id")
        secret = psc.get("client_secret")
        return cls._preset(str(psc["issuer"]), str(psc["client_id"]), secret if isinstance(secret, str) else None,
                           options)

    @classmethod
    def _preset(cls, issuer: str, client_id: str, secret: str | Secret | None, options: dict[str, Any]) -> PSCSettings:
        wrapped = Secret(secret) if isinstance(secret, str) else secret
        try:
            return cls(issuer=issuer, client_id=client_id, client_secret=wrapped, **options)
        except TypeError as exc:
            raise ConfigError(f"unknown PSC setting: {exc}") from exc

    # -- derived values ----------------------------------------------------------------------------
    @property
    def loopback(self) -> bool:
        """True when the issuer is on loopback: plain http is then tolerated (sandbox only)."""
        return is_loopback_url(self.issuer)

    @property
    def discovery_urls(self) -> tuple[str, str]:
        """PSC's ``wallet-openid-configuration`` URL, then the standard one (OIDC Discovery §4)."""
        return f"{self.issuer}/{WALLET_DISCOVERY}", f"{self.issuer}/{STANDARD_DISCOVERY}"

    def with_changes(self, **changes: Any) -> PSCSettings:
        """Return a copy with some fields changed (checked again).

        Raises:
            ConfigError: the result is invalid.
        """
        return replace(self, **changes)
