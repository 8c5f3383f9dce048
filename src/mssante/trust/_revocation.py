"""Revocation check of a peer's chain, right after a verified TLS handshake (ECO.1.1.6)."""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Sequence

from cryptography import x509

from mssante.errors import CertificateError
from mssante.trust._crl import CRLCache, crl_urls
from mssante.trust._store import CABundle

__all__ = ["check_peer_chain"]

PeerCertificates = ssl.SSLObject | ssl.SSLSocket | bytes | Sequence[bytes]


def _peer_der(peer: PeerCertificates) -> tuple[bytes, list[bytes]]:
    if isinstance(peer, ssl.SSLObject | ssl.SSLSocket):
        der = peer.getpeercert(binary_form=True)
        if not der:
            raise CertificateError("the peer sent no certificate")
        return der, []
    if isinstance(peer, bytes):
        return peer, []
    if not peer:
        raise CertificateError("the peer sent no certificate")
    return peer[0], list(peer[1:])


def _load(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateError(f"the peer certificate is not valid DER: {exc}") from exc


async def check_peer_chain(
    peer: PeerCertificates,
    *,
    bundle: CABundle,
    crls: CRLCache,
    check_intermediates: bool = True,
) -> list[x509.Certificate]:
    """Check that the peer's certificate (and its intermediate CAs) are not revoked.

    Call it right after the handshake, which already verified the chain, dates and host
    name. Python 3.11 exposes only the leaf, so the chain is rebuilt from ``bundle`` (plus
    intermediates passed in ``peer``). The leaf must have a valid CRL (fail closed);
    each intermediate CA is checked against its issuer's CRL when it names a distribution
    point (IGC Santé roots publish one for their intermediates; roots themselves have none).

    Args:
        peer: the ``ssl_object`` of the connection, the leaf DER, or ``[leaf, *intermediates]`` DER.
        bundle: the CA bundle the handshake trusted.
        crls: the CRL cache.
        check_intermediates: also check intermediate CAs that name a CRL distribution point.

    Returns:
        The rebuilt chain, leaf first.

    Raises:
        CertificateError: no peer certificate, or no path to the bundle.
        RevocationError: a certificate is revoked, or no valid CRL is available (ECO.1.1.6,
            ECO.1.1.7).
    """
    leaf_der, extra_der = _peer_der(peer)
    leaf = _load(leaf_der)
    chain = bundle.chain(leaf, [_load(d) for d in extra_der])
    for position, (cert, issuer) in enumerate(itertools.pairwise(chain)):
        # The leaf always (fail closed); an intermediate when it names a CRL distribution point.
        if position == 0 or (check_intermediates and crl_urls(cert)):
            await crls.check(cert, issuer)
    return chain
