"""Trust: TLS client contexts for the API LPS, certificate revocation (CRL) and error mapping.

* :func:`client_ssl_context`: verification and host names on, TLS ≥ 1.2 (ECO.1.1.1), the
  cipher baseline (ECO.1.1.3), trust anchors from an IGC Santé bundle (ECO.1.1.10);
* :class:`CRLCache` and :func:`check_peer_chain`: revocation after the handshake (ECO.1.1.6),
  keeping the last valid CRL (ECO.1.1.7), failing closed without one;
* :func:`map_ssl_error`: ``ssl`` exceptions → :class:`~mssante.errors.CertificateError` etc.
"""

from mssante.trust._context import BASELINE_CIPHERS, client_ssl_context
from mssante.trust._crl import CRLCache, CRLFetcher, HTTPCRLFetcher, crl_urls
from mssante.trust._errors import map_ssl_error
from mssante.trust._revocation import check_peer_chain
from mssante.trust._store import CABundle

__all__ = [
    "BASELINE_CIPHERS",
    "CABundle",
    "CRLCache",
    "CRLFetcher",
    "HTTPCRLFetcher",
    "check_peer_chain",
    "client_ssl_context",
    "crl_urls",
    "map_ssl_error",
]
