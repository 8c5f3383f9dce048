"""Certificate revocation lists: download, verify, cache, and keep the last valid one.

ECO.1.1.6: the client checks that the operator's certificate is not revoked (CRL or OCSP).
ECO.1.1.7: it keeps the last non-expired CRL so checks still run when a download fails.
When no valid CRL is available at all, the check fails closed (:class:`RevocationError`).

CRLs are public, signed objects: fetching them over plain HTTP and storing them on disk is
fine; their integrity comes from the issuer's signature, checked here (RFC 5280 §6.3.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

import httpx2
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mssante.errors import ConfigError, RevocationError, TransportError, UsageError
from mssante.trust._http import bounded_fetch

__all__ = ["CRLCache", "CRLFetcher", "HTTPCRLFetcher", "crl_urls"]

log = logging.getLogger(__name__)

#: An IGC Santé CRL is a few hundred kB; 20 MiB bounds a hostile or broken server.
MAX_CRL_BYTES: Final = 20 * 1024 * 1024
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CRLFetcher(Protocol):
    """Downloads the bytes published at a CRL distribution point URL."""

    async def __call__(self, url: str) -> bytes:
        """Return the CRL bytes (DER or PEM).

        Raises:
            TransportError: the download failed.
        """
        ...


class HTTPCRLFetcher:
    """Fetch CRLs over HTTP(S) with httpx2, with a timeout and a size bound."""

    def __init__(
        self, *, timeout: float = 10.0, max_bytes: int = MAX_CRL_BYTES, client: httpx2.AsyncClient | None = None
    ) -> None:
        """Use ``client`` when given (its lifetime stays the caller's), else one client per fetch."""
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._client = client

    async def __call__(self, url: str) -> bytes:
        """Download ``url``.

        Raises:
            UsageError: the URL is not http(s).
            TimeoutError: the server did not answer in time.
            TransportError: connection failure, a non-200 status, or a body over ``max_bytes``.
        """
        return await bounded_fetch(
            url, what="CRL download", http_timeout=self._timeout, max_bytes=self._max_bytes, client=self._client
        )


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The HTTP(S) URLs of ``cert``'s CRL distribution points (RFC 5280 §4.2.1.13).

    Points with a ``cRLIssuer`` (indirect CRLs) or restricted ``reasons`` are skipped: a full
    CRL from the certificate's issuer is required. LDAP URLs are skipped.

    Raises:
        Nothing: a certificate without distribution points gives ``[]``.
    """
    try:
        ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    urls: list[str] = []
    for point in ext:
        if point.crl_issuer or point.reasons or not point.full_name:
            continue
        for name in point.full_name:
            if isinstance(name, x509.UniformResourceIdentifier) and urlsplit(name.value).scheme in ("http", "https"):
                urls.append(name.value)
    return urls


def revoked_error(cert: x509.Certificate, entry: x509.RevokedCertificate) -> RevocationError:
    """The error for ``cert`` listed as ``entry`` in a valid CRL (ECO.1.1.6).

    Raises:
        Nothing: the error is returned.
    """
    return RevocationError(
        f"certificate {cert.subject.rfc4514_string()} (serial {cert.serial_number:x}) "
        f"was revoked on {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC",
        requirement="ECO.1.1.6",
    )


@dataclass(frozen=True)
class _Entry:
    crl: x509.CertificateRevocationList
    fetched_at: datetime

    @property
    def next_update(self) -> datetime:
        nxt = self.crl.next_update_utc
        assert nxt is not None  # _validate refuses CRLs without nextUpdate
        return nxt


def _parse(data: bytes) -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise RevocationError(f"not a CRL: {exc}") from exc


class CRLCache:
    """Verified CRLs per (URL, issuer), in memory and optionally in a directory.

    A CRL is used while it is *current* (``now <= nextUpdate``) and refreshed after
    ``refresh_after``. When a refresh fails, the last valid CRL keeps serving until
    ``nextUpdate + grace`` (ECO.1.1.7); after that, or with no CRL at all, checks fail closed.
    A downloaded CRL older than the cached one (by thisUpdate) is refused (no rollback).
    """

    def __init__(
        self,
        *,
        fetcher: CRLFetcher | None = None,
        directory: Path | None = None,
        grace: timedelta = timedelta(0),
        refresh_after: timedelta = timedelta(hours=2),
        max_clock_skew: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Configure the cache.

        Args:
            fetcher: downloads CRLs (default: :class:`HTTPCRLFetcher`).
            directory: where to keep CRLs across runs (created if missing); None: memory only.
            grace: how long after its nextUpdate a stale CRL is still used when downloads fail.
            refresh_after: how often a current CRL is downloaded again (DevBox refreshes every 2 h).
            max_clock_skew: tolerance for a thisUpdate slightly in the future.
            clock: returns the current aware UTC time (injected in tests).

        Raises:
            ConfigError: ``directory`` cannot be created.
        """
        self._fetch: CRLFetcher = fetcher if fetcher is not None else HTTPCRLFetcher()
        self._dir = directory
        self._grace = grace
        self._refresh_after = refresh_after
        self._skew = max_clock_skew
        self._clock = clock
        self._entries: dict[tuple[str, bytes], _Entry] = {}
        self._locks: dict[tuple[str, bytes], asyncio.Lock] = {}
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the CRL cache directory {directory}: {exc.strerror}") from exc

    # -- validation (RFC 5280 §6.3.3) --

    def _validate(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate, now: datetime) -> None:
        if crl.issuer != issuer.subject:
            raise RevocationError("CRL issuer does not match the certificate's issuer")
        try:
            usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.crl_sign:
            raise RevocationError("the CRL issuer may not sign CRLs (keyUsage without cRLSign)")
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise RevocationError("CRL signature does not verify", requirement="ECO.1.1.6")
        try:
            crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        except x509.ExtensionNotFound:
            pass
        else:
            raise RevocationError("a delta CRL is not a full CRL")
        if crl.next_update_utc is None:
            raise RevocationError("CRL has no nextUpdate")
        if crl.last_update_utc > now + self._skew:
            raise RevocationError("CRL thisUpdate is in the future")

    def _usable(self, entry: _Entry, now: datetime) -> bool:
        return now <= entry.next_update + self._grace

    # -- disk --

    def _path(self, key: tuple[str, bytes]) -> Path | None:
        if self._dir is None:
            return None
        digest = hashlib.sha256(key[0].encode() + b"\0" + key[1]).hexdigest()[:40]
        return self._dir / f"{digest}.crl"

    def _read_disk(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read cached CRL %s: %s", path, exc.strerror)
            return None

    def _write_disk(self, path: Path, data: bytes) -> None:
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".crl-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)  # atomic on POSIX: readers see the old or the new file
        except OSError as exc:
            if tmp is not None:  # a failed write or replace leaves no temporary file behind
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            log.warning("cannot store CRL in %s: %s", path.parent, exc.strerror)

    async def _load_cached(self, key: tuple[str, bytes], issuer: x509.Certificate, now: datetime) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        path = self._path(key)
        if path is None:
            return None
        data = await asyncio.to_thread(self._read_disk, path)
        if data is None:
            return None
        try:
            crl = _parse(data)
            self._validate(crl, issuer, now)
        except RevocationError as exc:
            log.warning("ignoring cached CRL %s: %s", path, exc.message)
            return None
        entry = _Entry(crl, _EPOCH)  # from disk: try a refresh first, fall back to it
        self._entries[key] = entry
        return entry

    # -- public API --

    async def get(self, url: str, issuer: x509.Certificate) -> x509.CertificateRevocationList:
        """Return a valid CRL of ``issuer`` published at ``url``.

        Raises:
            RevocationError: no valid CRL: the download failed or was invalid (bad signature,
                wrong issuer, expired) and no cached CRL is within ``nextUpdate + grace``
                (fail closed, ECO.1.1.7).
        """
        key = (url, issuer.fingerprint(hashes.SHA256()))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            now = self._clock()
            cached = await self._load_cached(key, issuer, now)
            if cached is not None and now <= cached.next_update and now - cached.fetched_at < self._refresh_after:
                return cached.crl
            try:
                data = await self._fetch(url)
                crl = _parse(data)
                self._validate(crl, issuer, now)
                if now > crl.next_update_utc:  # type: ignore[operator]
                    raise RevocationError("the published CRL is expired (nextUpdate passed)", requirement="ECO.1.1.7")
                if cached is not None and crl.last_update_utc < cached.crl.last_update_utc:
                    raise RevocationError("the published CRL is older than the cached one")
            except (TransportError, UsageError, RevocationError) as exc:
                if cached is not None and self._usable(cached, now):
                    log.warning("CRL refresh failed for %s (%s); keeping the last valid CRL", url, exc.message)
                    return cached.crl
                raise RevocationError(f"no valid CRL from {url}: {exc.message}", requirement="ECO.1.1.7") from exc
            self._entries[key] = _Entry(crl, now)
            path = self._path(key)
            if path is not None:
                await asyncio.to_thread(self._write_disk, path, data)
            return crl

    async def check(self, cert: x509.Certificate, issuer: x509.Certificate) -> None:
        """Check that ``cert`` (issued by ``issuer``) is not revoked, from its CRL distribution points.

        Raises:
            RevocationError: revoked (ECO.1.1.6), no HTTP CRL distribution point, or no valid
                CRL from any of them (fail closed, ECO.1.1.7).
        """
        revoked = await self.lookup(cert, issuer)
        if revoked is not None:
            raise revoked_error(cert, revoked)

    async def lookup(self, cert: x509.Certificate, issuer: x509.Certificate) -> x509.RevokedCertificate | None:
        """Return ``cert``'s entry in a valid CRL of ``issuer``, or None when it is not listed.

        Raises:
            RevocationError: no HTTP CRL distribution point (ECO.1.1.6), or no valid CRL from
                any of them (fail closed, ECO.1.1.7).
        """
        urls = crl_urls(cert)
        if not urls:
            raise RevocationError(
                f"{cert.subject.rfc4514_string()} names no HTTP CRL distribution point; revocation cannot be checked",
                requirement="ECO.1.1.6",
            )
        crl = await self._first_valid(urls, issuer)
        return crl.get_revoked_certificate_by_serial_number(cert.serial_number)

    async def _first_valid(self, urls: Sequence[str], issuer: x509.Certificate) -> x509.CertificateRevocationList:
        last: RevocationError | None = None
        for url in urls:
            try:
                return await self.get(url, issuer)
            except RevocationError as exc:
                last = exc
        assert last is not None
        raise last
