"""OCSP (RFC 6960): ask the responder a certificate names whether it is revoked (ECO.1.1.6).

IGC Santé leaves carry an AIA OCSP URL (``http://ocsp.esante.gouv.fr``). Responses travel over
plain HTTP: their integrity comes from the signature, checked here (RFC 6960 §3.2), by the
issuer itself or by a responder the issuer delegated with id-kp-OCSPSigning (§4.2.2.2).
A verified response is cached in memory until its nextUpdate. Whoever calls
:meth:`OCSPClient.status` gets either a verified answer or a :class:`RevocationError`; the
policy (fall back to CRLs) lives in :func:`~mssante.trust.check_peer_chain`.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol
from urllib.parse import urlsplit

import httpx2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from mssante.errors import RevocationError, TransportError, UsageError
from mssante.trust._http import bounded_fetch

__all__ = ["HTTPOCSPFetcher", "OCSPClient", "OCSPFetcher", "OCSPResult", "OCSPStatus", "ocsp_urls"]

log = logging.getLogger(__name__)

#: A basic OCSP response is a few kB (with a delegated responder certificate); 64 KiB is plenty.
MAX_OCSP_BYTES: Final = 64 * 1024
_CACHE_LIMIT: Final = 4096


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OCSPStatus(enum.Enum):
    """The certStatus of a verified single response (RFC 6960 §2.2)."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OCSPResult:
    """A verified answer about one certificate.

    Attributes:
        status: good, revoked or unknown.
        this_update: when the responder knew the status to be correct.
        next_update: when newer information will be available (None: at any time).
        revocation_time: for a revoked certificate.
        url: the responder that answered.
    """

    status: OCSPStatus
    this_update: datetime
    next_update: datetime | None
    revocation_time: datetime | None
    url: str


class OCSPFetcher(Protocol):
    """Sends a DER OCSP request to a responder URL and returns the DER response."""

    async def __call__(self, url: str, request: bytes) -> bytes:
        """POST ``request`` to ``url`` (RFC 6960 Appendix A.1) and return the response body.

        Raises:
            TransportError: the exchange failed.
        """
        ...


class HTTPOCSPFetcher:
    """POST OCSP requests with httpx2 (RFC 6960 Appendix A.1), with a timeout and a size bound."""

    def __init__(
        self, *, timeout: float = 5.0, max_bytes: int = MAX_OCSP_BYTES, client: httpx2.AsyncClient | None = None
    ) -> None:
        """Use ``client`` when given (its lifetime stays the caller's), else one client per request."""
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._client = client

    async def __call__(self, url: str, request: bytes) -> bytes:
        """POST ``request`` as ``application/ocsp-request`` to ``url``.

        Raises:
            UsageError: the URL is not http(s).
            TimeoutError: the responder did not answer in time.
            TransportError: connection failure, a non-200 status, or a body over ``max_bytes``.
        """
        headers = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
        return await bounded_fetch(
            url, what="OCSP request", http_timeout=self._timeout, max_bytes=self._max_bytes, client=self._client,
            content=request, headers=headers,
        )


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The HTTP(S) OCSP responder URLs named in ``cert``'s AIA extension (RFC 5280 §4.2.2.1).

    Raises:
        Nothing: a certificate without AIA (or without an OCSP access method) gives ``[]``.
    """
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        desc.access_location.value
        for desc in aia
        if desc.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(desc.access_location, x509.UniformResourceIdentifier)
        and urlsplit(desc.access_location.value).scheme in ("http", "https")
    ]


def verdict(cert: x509.Certificate, result: OCSPResult) -> RevocationError | None:
    """The error a verified answer means for ``cert``: None when good.

    Raises:
        Nothing: the error (revoked, ECO.1.1.6; unknown, RFC 6960 §2.2) is returned.
    """
    subject = cert.subject.rfc4514_string()
    if result.status is OCSPStatus.REVOKED:
        when = f" on {result.revocation_time:%Y-%m-%d %H:%M} UTC" if result.revocation_time else ""
        return RevocationError(
            f"certificate {subject} (serial {cert.serial_number:x}) was revoked{when} (OCSP {result.url})",
            requirement="ECO.1.1.6",
        )
    if result.status is OCSPStatus.UNKNOWN:
        return RevocationError(f"OCSP responder {result.url} does not know {subject}", requirement="RFC 6960 §2.2")
    return None


def _cert_id(cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, ...]:
    """(issuerNameHash, issuerKeyHash, serial) of the CertID with ``algorithm`` (RFC 6960 §4.1.1)."""
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    return req.issuer_name_hash, req.issuer_key_hash, req.serial_number.to_bytes(64, "big", signed=True)


def _verify_signature(resp: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    """Check the BasicOCSPResponse signature over tbsResponseData (RFC 6960 §4.2.1)."""
    key = signer.public_key()
    try:
        algorithm = resp.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) and algorithm is None:
            key.verify(resp.signature, resp.tbs_response_bytes)
        else:
            raise RevocationError("OCSP response signed with an unsupported algorithm", requirement="RFC 6960 §4.2.1")
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        raise RevocationError("OCSP response signature does not verify", requirement="RFC 6960 §3.2") from exc


def _names_responder(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """Whether ``cert`` is the one the ResponderID names (byName or byKey, RFC 6960 §4.2.1)."""
    if resp.responder_name is not None:
        return resp.responder_name == cert.subject
    key_hash = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return resp.responder_key_hash == key_hash


class OCSPClient:
    """Query, verify and cache OCSP responses (RFC 6960).

    Requests carry a SHA-1 CertID (what most responders index, RFC 6960 §4.1.1; the
    response may use another hash, which is recomputed) and, optionally, a nonce (§4.4.1).
    A response is accepted only when it is signed by the issuer, or by a responder
    certificate that the issuer signed directly and that carries id-kp-OCSPSigning
    (§4.2.2.2), names our CertID, and is current: ``thisUpdate <= now + skew`` and
    ``now <= nextUpdate + skew`` (§4.2.2.1). Without nextUpdate it must be younger than
    ``max_age`` and is not cached. Delegated responder certificates are not themselves
    checked for revocation (§4.2.2.2.1 leaves it to the CA, usually via id-pkix-ocsp-nocheck).
    """

    def __init__(
        self,
        *,
        fetcher: OCSPFetcher | None = None,
        nonce: bool = False,
        max_clock_skew: timedelta = timedelta(minutes=5),
        max_age: timedelta = timedelta(hours=1),
        retry_after: timedelta = timedelta(minutes=1),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Configure the client.

        Args:
            fetcher: sends requests (default: :class:`HTTPOCSPFetcher`).
            nonce: add a random nonce to requests; the response must then echo it (§4.4.1).
            max_clock_skew: tolerance on thisUpdate/nextUpdate and the responder certificate dates.
            max_age: how old a response without nextUpdate may be.
            retry_after: after a responder fails to answer, skip it for this long (the caller
                falls back to CRLs without waiting on the timeout at every connection).
            clock: returns the current aware UTC time (injected in tests).
        """
        self._fetch: OCSPFetcher = fetcher if fetcher is not None else HTTPOCSPFetcher()
        self._nonce = nonce
        self._skew = max_clock_skew
        self._max_age = max_age
        self._retry_after = retry_after
        self._clock = clock
        self._cache: dict[tuple[bytes, ...], OCSPResult] = {}
        self._down_until: dict[str, datetime] = {}

    async def status(self, cert: x509.Certificate, issuer: x509.Certificate) -> OCSPResult:
        """Return a verified answer about ``cert`` (issued by ``issuer``) from its responders.

        Each AIA OCSP URL is tried in order; a cached answer is used until its nextUpdate.

        Raises:
            RevocationError: the certificate names no OCSP responder, or no responder gave a
                verifiable answer (transport failure, error status, bad signature or signer,
                wrong CertID, stale or future dates, nonce mismatch).
        """
        urls = ocsp_urls(cert)
        if not urls:
            raise RevocationError(
                f"{cert.subject.rfc4514_string()} names no OCSP responder", requirement="RFC 6960 §3.1"
            )
        now = self._clock()
        key = _cert_id(cert, issuer, hashes.SHA1())  # noqa: S303 - CertID hash, RFC 6960 §4.1.1
        cached = self._cache.get(key)
        if cached is not None and cached.next_update is not None and now <= cached.next_update:
            return cached
        last: RevocationError | None = None
        for url in urls:
            down = self._down_until.get(url)
            if down is not None and now < down:
                last = RevocationError(f"OCSP responder {url} failed recently", requirement="ECO.1.1.6")
                continue
            try:
                result = await self._query(url, cert, issuer, now)
            except RevocationError as exc:
                log.warning("OCSP check of %s at %s failed: %s", cert.subject.rfc4514_string(), url, exc.message)
                last = exc
                continue
            self._down_until.pop(url, None)
            if result.next_update is not None:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = result
            return result
        assert last is not None
        raise last

    async def check(self, cert: x509.Certificate, issuer: x509.Certificate) -> None:
        """Check by OCSP alone that ``cert`` is not revoked.

        Raises:
            RevocationError: revoked (ECO.1.1.6), unknown to the responder (RFC 6960 §2.2),
                or no verifiable answer (see :meth:`status`).
        """
        error = verdict(cert, await self.status(cert, issuer))
        if error is not None:
            raise error

    # -- one exchange --

    async def _query(self, url: str, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> OCSPResult:
        builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303
        nonce = os.urandom(16) if self._nonce else None
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        request = builder.build().public_bytes(Encoding.DER)
        try:
            data = await self._fetch(url, request)
        except (TransportError, UsageError) as exc:
            self._down_until[url] = now + self._retry_after
            raise RevocationError(f"no OCSP answer from {url}: {exc.message}", requirement="ECO.1.1.6") from exc
        try:
            resp = ocsp.load_der_ocsp_response(data)
        except ValueError as exc:
            raise RevocationError(f"not an OCSP response: {exc}", requirement="RFC 6960 §4.2.1") from exc
        if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RevocationError(
                f"OCSP responder {url} answered {resp.response_status.name}", requirement="RFC 6960 §2.3"
            )
        try:
            self._verify_signer(resp, issuer, now)
            if nonce is not None:
                self._check_nonce(resp, nonce)
            return self._single(resp, url, cert, issuer, now)
        except (ValueError, UnsupportedAlgorithm) as exc:  # a malformed field, parsed lazily
            raise RevocationError(f"malformed OCSP response: {exc}", requirement="RFC 6960 §4.2.1") from exc

    def _verify_signer(self, resp: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> None:
        """The issuer signed it, or a responder it authorised (RFC 6960 §4.2.2.2)."""
        if _names_responder(resp, issuer):
            _verify_signature(resp, issuer)
            return
        for candidate in resp.certificates:
            if not _names_responder(resp, candidate):
                continue
            if candidate.issuer != issuer.subject:
                raise RevocationError(
                    "OCSP responder certificate not issued by the CA", requirement="RFC 6960 §4.2.2.2"
                )
            try:
                candidate.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise RevocationError(
                    "OCSP responder certificate not signed by the CA", requirement="RFC 6960 §4.2.2.2"
                ) from exc
            try:
                eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                eku = None
            if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                raise RevocationError(
                    "OCSP responder certificate lacks id-kp-OCSPSigning", requirement="RFC 6960 §4.2.2.2"
                )
            if not (candidate.not_valid_before_utc - self._skew <= now <= candidate.not_valid_after_utc + self._skew):
                raise RevocationError("OCSP responder certificate is not valid now", requirement="RFC 6960 §3.2")
            _verify_signature(resp, candidate)
            return
        raise RevocationError("OCSP response signed by an unauthorised responder", requirement="RFC 6960 §3.2")

    @staticmethod
    def _check_nonce(resp: ocsp.OCSPResponse, nonce: bytes) -> None:
        try:
            echoed = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != nonce:
            raise RevocationError("OCSP response does not echo our nonce", requirement="RFC 6960 §4.4.1")

    def _single(
        self, resp: ocsp.OCSPResponse, url: str, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> OCSPResult:
        """Pick the SingleResponse for our CertID and check its dates (RFC 6960 §3.2, §4.2.2.1)."""
        for single in resp.responses:
            try:
                expected = _cert_id(cert, issuer, single.hash_algorithm)
            except (ValueError, UnsupportedAlgorithm):
                continue
            got = (
                single.issuer_name_hash,
                single.issuer_key_hash,
                single.serial_number.to_bytes(64, "big", signed=True),
            )
            if got == expected:
                break
        else:
            raise RevocationError("OCSP response is about another certificate", requirement="RFC 6960 §3.2")
        this_update, next_update = single.this_update_utc, single.next_update_utc
        if this_update > now + self._skew:
            raise RevocationError("OCSP response thisUpdate is in the future", requirement="RFC 6960 §3.2")
        if next_update is not None and now > next_update + self._skew:
            raise RevocationError("OCSP response is expired (nextUpdate passed)", requirement="RFC 6960 §3.2")
        if next_update is None and now - this_update > self._max_age:
            raise RevocationError("OCSP response without nextUpdate is too old", requirement="RFC 6960 §4.2.2.1")
        status = OCSPStatus(single.certificate_status.name.lower())  # GOOD → "good", …
        return OCSPResult(status, this_update, next_update, single.revocation_time_utc, url)
