"""TLS plumbing shared by the IMAP and SMTP drivers: the context, and the revocation check after the handshake."""

from __future__ import annotations

import builtins
import ssl
from dataclasses import dataclass

from mssante.credentials import ClientCertificate
from mssante.errors import CertificateError, ConnectError, TimeoutError
from mssante.trust import CABundle, CRLCache, check_peer_chain

from ._config import TrustSettings

__all__ = ["TLSClient", "map_connect_error"]


@dataclass(frozen=True, kw_only=True)
class TLSClient:
    """What a connection needs to upgrade to TLS and trust the result.

    Attributes:
        context: the client context (TLS ≥ 1.2, verification and host names on).
        bundle: the CA bundle to rebuild the chain for the revocation check; None = check off.
        crls: the CRL cache (shared by every connection of a mailbox).
    """

    context: ssl.SSLContext
    bundle: CABundle | None
    crls: CRLCache | None

    @classmethod
    def build(cls, trust: TrustSettings, certificate: ClientCertificate | None = None) -> TLSClient:
        """Build from the settings; the APP certificate, if any, is loaded for AUTH_CLI.

        Raises:
            ConfigError: a file cannot be read.
            UsageError: a loosened ``ssl_context``.
        """
        bundle = trust.chain_bundle()
        crls = None if bundle is None else (trust.crls if trust.crls is not None else CRLCache())
        return cls(context=trust.context(certificate), bundle=bundle, crls=crls)

    async def verify_peer(self, ssl_object: object) -> None:
        """Check the server chain against its CRLs, right after the handshake (ECO.1.1.6/7).

        The handshake itself already checked the chain, the dates (ECO.1.1.5) and the host name.

        Raises:
            CertificateError: no TLS object or no path to the bundle.
            RevocationError: revoked, or no valid CRL (fail closed).
        """
        if self.bundle is None or self.crls is None:
            return
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            raise CertificateError("no TLS session to check")
        await check_peer_chain(ssl_object, bundle=self.bundle, crls=self.crls)


def map_connect_error(exc: BaseException, host: str, port: int) -> Exception:
    """Map a failure to open a TCP connection to our error tree.

    Returns:
        :class:`~mssante.errors.TimeoutError` or :class:`~mssante.errors.ConnectError`.

    Raises:
        Nothing: the error is returned.
    """
    if isinstance(exc, builtins.TimeoutError):
        return TimeoutError(f"connecting to {host}:{port} timed out")
    return ConnectError(f"cannot connect to {host}:{port}: {exc}")
