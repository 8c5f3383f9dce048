"""Tiny adapters from the sandbox's mock PSC and test PKI to the fronts' check protocols.

:class:`~mssante.sandbox.fronts.authz.AccessDecider` takes a
:class:`~mssante.sandbox.fronts.authz.TokenVerifier` and a
:class:`~mssante.sandbox.fronts.authz.CertificateChecker`; the sandbox wires them with these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mssante.sandbox.fronts.authz import CertificateIdentity

__all__ = ["PKICertificateChecker", "PSCTokenVerifier"]


class _LocalValidator(Protocol):
    def validate_access_token(self, token: str) -> dict[str, Any]: ...


class _ClientCertChecker(Protocol):
    def check_client_certificate(self, der: bytes) -> Any: ...


class PSCTokenVerifier:
    """Checks access tokens with :meth:`MockPSC.validate_access_token` (local JWKS validation)."""

    def __init__(self, psc: _LocalValidator) -> None:
        """Wrap ``psc`` (a :class:`~mssante.sandbox.psc.MockPSC` or anything with the same method)."""
        self._psc = psc

    async def verify(self, token: str) -> Mapping[str, Any]:
        """Return the token's claims.

        Raises:
            TokenRejected: expired, revoked, forged or otherwise invalid token.
            AuthUnavailable: the mock PSC is switched off.
        """
        return self._psc.validate_access_token(token)


class PKICertificateChecker:
    """Checks client certificates with :meth:`TestPKI.check_client_certificate` (chain, CRL, EKU)."""

    def __init__(self, pki: _ClientCertChecker) -> None:
        """Wrap ``pki`` (a :class:`~mssante.sandbox.pki.TestPKI` or anything with the same method)."""
        self._pki = pki

    def check(self, der: bytes) -> CertificateIdentity:
        """Return the certificate's identity (``structure_id`` = OU, ``subject``).

        Raises:
            CertificateError: bad chain, dates, key usage or subject.
            RevocationError: revoked, or the CRL is unusable.
            ConfigError: the PKI state cannot be read.
        """
        identity: CertificateIdentity = self._pki.check_client_certificate(der)
        return identity
