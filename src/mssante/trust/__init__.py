"""Trust: TLS client contexts for the API LPS, certificate revocation (CRL) and error mapping.

* :func:`client_ssl_context`: verification and host names on, TLS ≥ 1.2 (ECO.1.1.1), the
  cipher baseline (ECO.1.1.3), trust anchors from an IGC Santé bundle (ECO.1.1.10);
* :class:`CRLCache`, :class:`OCSPClient` and :func:`check_peer_chain`: revocation after the
  handshake (ECO.1.1.6): OCSP first where the certificate names a responder (RFC 6960), then
  CRLs, keeping the last valid CRL (ECO.1.1.7), failing closed without a verified answer;
* :func:`map_ssl_error`: ``ssl`` exceptions → :class:`~mssante.errors.CertificateError` etc.
"""

from mssante.trust._context import BASELINE_CIPHERS, client_ssl_context
from mssante.trust._crl import CRLCache, CRLFetcher, HTTPCRLFetcher, crl_urls
from mssante.trust._errors import map_ssl_error
from mssante.trust._ocsp import HTTPOCSPFetcher, OCSPClient, OCSPFetcher, OCSPResult, OCSPStatus, ocsp_urls
from mssante.trust._revocation import RevocationMethod, check_peer_chain, check_revocation
from mssante.trust._store import CABundle

__all__ = [
    "BASELINE_CIPHERS",
    "CABundle",
    "CRLCache",
    "CRLFetcher",
    "HTTPCRLFetcher",
    "HTTPOCSPFetcher",
    "OCSPClient",
    "OCSPFetcher",
    "OCSPResult",
    "OCSPStatus",
    "RevocationMethod",
    "check_peer_chain",
    "check_revocation",
    "client_ssl_context",
    "crl_urls",
    "map_ssl_error",
    "ocsp_urls",
]
