"""Revocation check of a peer's chain, right after a verified TLS handshake (ECO.1.1.6).

Policy, per certificate, with ``revocation_methods=("ocsp", "crl")`` (the default): when the
certificate names an OCSP responder, ask it first (RFC 6960); a verified *good* or *revoked*
is final. When OCSP gives no verified answer (network, error status, bad or forged
signature, stale response) or answers *unknown* (RFC 6960 §2.2), the CRL path decides, which
keeps the last valid CRL and fails closed (ECO.1.1.7). A forged OCSP "good" therefore never
overrides a CRL "revoked": it fails verification and the CRL is consulted.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Sequence
from typing import Final, Literal, cast

from cryptography import x509

from mssante.errors import CertificateError, RevocationError, UsageError
from mssante.trust._crl import CRLCache, crl_urls, revoked_error
from mssante.trust._ocsp import OCSPClient, OCSPStatus, ocsp_urls, verdict
from mssante.trust._store import CABundle

__all__ = ["RevocationMethod", "check_peer_chain", "check_revocation"]

PeerCertificates = ssl.SSLObject | ssl.SSLSocket | bytes | Sequence[bytes]
RevocationMethod = Literal["ocsp", "crl"]
DEFAULT_METHODS: Final[tuple[RevocationMethod, ...]] = ("ocsp", "crl")

_shared_ocsp: OCSPClient | None = None


def _default_ocsp() -> OCSPClient:
    """One process-wide OCSP client, so that callers passing none still share its cache."""
    global _shared_ocsp
    if _shared_ocsp is None:
        _shared_ocsp = OCSPClient()
    return _shared_ocsp


def _methods(methods: Sequence[str]) -> tuple[RevocationMethod, ...]:
    chosen = cast(tuple[RevocationMethod, ...], tuple(methods))
    if not chosen or any(m not in ("ocsp", "crl") for m in chosen) or len(set(chosen)) != len(chosen):
        raise UsageError(f"revocation_methods must be a non-empty ordering of 'ocsp' and 'crl', not {chosen!r}")
    return chosen


async def check_revocation(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    crls: CRLCache,
    ocsp: OCSPClient | None = None,
    revocation_methods: Sequence[RevocationMethod] = DEFAULT_METHODS,
) -> None:
    """Check one certificate with the configured methods, in order (see the module docstring).

    OCSP applies only when the certificate names a responder (AIA, RFC 6960 §3.1). A verified
    OCSP good/revoked, or a valid CRL listing or not listing the certificate, is final; anything
    else (no answer, unverifiable, OCSP "unknown", no valid CRL) moves on to the next method. The
    last failure is raised: nothing is accepted without a verified answer (fail closed).

    Args:
        cert: the certificate to check.
        issuer: the CA that signed it.
        crls: the CRL cache.
        ocsp: the OCSP client (default: one shared by the process).
        revocation_methods: ``("ocsp", "crl")``, ``("crl",)`` to disable OCSP, ``("ocsp",)`` or
            ``("crl", "ocsp")``.

    Raises:
        UsageError: ``revocation_methods`` is empty or names an unknown method.
        RevocationError: revoked (ECO.1.1.6), or no method gave a verified answer (ECO.1.1.7).
    """
    last: RevocationError | None = None
    for method in _methods(revocation_methods):
        if method == "crl":
            try:
                listed = await crls.lookup(cert, issuer)
            except RevocationError as exc:
                last = last if last is not None and not crl_urls(cert) else exc  # keep the most telling
                continue
            if listed is not None:
                raise revoked_error(cert, listed)  # revoked (ECO.1.1.6): final
            return  # not listed in a valid CRL: final
        if not ocsp_urls(cert):
            continue
        client = ocsp if ocsp is not None else _default_ocsp()
        try:
            result = await client.status(cert, issuer)
        except RevocationError as exc:
            last = exc
            continue
        error = verdict(cert, result)
        if result.status is OCSPStatus.UNKNOWN:
            last = error  # not definitive (RFC 6960 §2.2): the next method decides
            continue
        if error is not None:
            raise error  # revoked: final
        return  # good: final
    if last is None:
        last = RevocationError(
            f"{cert.subject.rfc4514_string()} names no OCSP responder nor HTTP CRL distribution point; "
            "revocation cannot be checked",
            requirement="ECO.1.1.6",
        )
    raise last


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
    ocsp: OCSPClient | None = None,
    revocation_methods: Sequence[RevocationMethod] = DEFAULT_METHODS,
) -> list[x509.Certificate]:
    """Check that the peer's certificate (and its intermediate CAs) are not revoked.

    Call it right after the handshake, which already verified the chain, dates and host
    name. Python 3.11 exposes only the leaf, so the chain is rebuilt from ``bundle`` (plus
    intermediates passed in ``peer``). The leaf is always checked (fail closed); each
    intermediate CA is checked when it names a CRL distribution point (IGC Santé roots publish
    one for their intermediates; roots themselves have none). Each check asks the OCSP
    responder the certificate names first, then falls back to CRLs: see :func:`check_revocation`.

    Args:
        peer: the ``ssl_object`` of the connection, the leaf DER, or ``[leaf, *intermediates]`` DER.
        bundle: the CA bundle the handshake trusted.
        crls: the CRL cache.
        check_intermediates: also check intermediate CAs that name a CRL distribution point.
        ocsp: the OCSP client (default: one shared by the process, caching until nextUpdate).
        revocation_methods: the methods in order; ``("crl",)`` disables OCSP.

    Returns:
        The rebuilt chain, leaf first.

    Raises:
        CertificateError: no peer certificate, or no path to the bundle.
        RevocationError: a certificate is revoked, or no verified OCSP answer and no valid CRL
            is available (ECO.1.1.6, ECO.1.1.7).
        UsageError: ``revocation_methods`` is empty or names an unknown method.
    """
    methods = _methods(revocation_methods)
    leaf_der, extra_der = _peer_der(peer)
    leaf = _load(leaf_der)
    chain = bundle.chain(leaf, [_load(d) for d in extra_der])
    for position, (cert, issuer) in enumerate(itertools.pairwise(chain)):
        # The leaf always (fail closed); an intermediate when it names a CRL distribution point.
        if position == 0 or (check_intermediates and crl_urls(cert)):
            await check_revocation(cert, issuer, crls=crls, ocsp=ocsp, revocation_methods=methods)
    return chain
