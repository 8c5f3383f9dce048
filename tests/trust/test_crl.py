"""CRLCache: last valid CRL kept when downloads fail (ECO.1.1.7), grace, disk cache, fail closed."""

from __future__ import annotations

import ssl
from datetime import datetime, timedelta
from pathlib import Path

import httpx2
import pytest

from mssante.errors import (
    CertificateError,
    ConfigError,
    RevocationError,
    TimeoutError,
    TransportError,
    UsageError,
)
from mssante.trust import CABundle, CRLCache, HTTPCRLFetcher, check_peer_chain, client_ssl_context, crl_urls
from tests.trust._pki import NOW, CRLServer, MiniPKI


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_download_failure_keeps_the_last_valid_crl(pki: MiniPKI, published: CRLServer) -> None:
    leaf = pki.leaf("keep-last")
    url = pki.crl_url("org")
    published.publish(url, pki.crl(pki.org, next_update=NOW + timedelta(hours=6)))
    clock = Clock(NOW)
    cache = CRLCache(clock=clock, grace=timedelta(hours=1), refresh_after=timedelta(minutes=10))
    await cache.check(leaf.cert, pki.org.cert)
    published.unpublish(url)  # the CRL server now answers 404

    clock.now = NOW + timedelta(minutes=30)  # refresh due, download fails: last CRL serves
    await cache.check(leaf.cert, pki.org.cert)
    clock.now = NOW + timedelta(hours=6, minutes=30)  # past nextUpdate, within grace
    await cache.check(leaf.cert, pki.org.cert)
    clock.now = NOW + timedelta(hours=7, minutes=1)  # past nextUpdate + grace: fail closed
    with pytest.raises(RevocationError, match="no valid CRL") as info:
        await cache.check(leaf.cert, pki.org.cert)
    assert info.value.requirement == "ECO.1.1.7"
    assert isinstance(info.value.__cause__, TransportError)


async def test_a_current_crl_is_not_downloaded_again(pki: MiniPKI, published: CRLServer) -> None:
    leaf = pki.leaf("no-refetch")
    clock = Clock(NOW)
    cache = CRLCache(clock=clock, refresh_after=timedelta(hours=2))
    for _ in range(3):
        await cache.check(leaf.cert, pki.org.cert)
    assert len(published.hits) == 1
    clock.now = NOW + timedelta(hours=3)
    await cache.check(leaf.cert, pki.org.cert)
    assert len(published.hits) == 2


async def test_revocation_published_later_is_seen_after_refresh(pki: MiniPKI, published: CRLServer) -> None:
    leaf = pki.leaf("revoked-later")
    clock = Clock(NOW)
    cache = CRLCache(clock=clock, refresh_after=timedelta(minutes=5))
    await cache.check(leaf.cert, pki.org.cert)
    published.publish(pki.crl_url("org"), pki.crl(pki.org, [leaf.cert], this_update=NOW))
    clock.now = NOW + timedelta(minutes=6)
    with pytest.raises(RevocationError, match="revoked"):
        await cache.check(leaf.cert, pki.org.cert)


async def test_an_older_crl_does_not_replace_a_newer_one(pki: MiniPKI, published: CRLServer) -> None:
    leaf = pki.leaf("rollback")
    url = pki.crl_url("org")
    published.publish(url, pki.crl(pki.org, [leaf.cert], this_update=NOW - timedelta(minutes=1)))
    clock = Clock(NOW)
    cache = CRLCache(clock=clock, refresh_after=timedelta(minutes=5))
    with pytest.raises(RevocationError, match="revoked"):
        await cache.check(leaf.cert, pki.org.cert)
    # A replayed older CRL without the revocation must not "unrevoke" the certificate.
    published.publish(url, pki.crl(pki.org, this_update=NOW - timedelta(hours=5)))
    clock.now = NOW + timedelta(minutes=10)
    with pytest.raises(RevocationError, match="revoked"):
        await cache.check(leaf.cert, pki.org.cert)


async def test_expired_crl_is_refused(pki: MiniPKI, published: CRLServer) -> None:
    published.publish(
        pki.crl_url("org"), pki.crl(pki.org, this_update=NOW - timedelta(days=8), next_update=NOW - timedelta(days=1))
    )
    with pytest.raises(RevocationError, match="expired"):
        await CRLCache().check(pki.leaf("old-crl").cert, pki.org.cert)


async def test_crl_of_another_issuer_is_refused(pki: MiniPKI, published: CRLServer) -> None:
    published.publish(pki.crl_url("org"), pki.crl(pki.root))
    with pytest.raises(RevocationError, match="issuer"):
        await CRLCache().check(pki.leaf("wrong-issuer").cert, pki.org.cert)


async def test_garbage_is_not_a_crl(pki: MiniPKI, published: CRLServer) -> None:
    published.publish(pki.crl_url("org"), b"<html>not a crl</html>")
    with pytest.raises(RevocationError, match="not a CRL"):
        await CRLCache().check(pki.leaf("garbage").cert, pki.org.cert)


async def test_disk_cache_survives_a_restart_and_serves_when_offline(
    pki: MiniPKI, published: CRLServer, tmp_path: Path
) -> None:
    leaf = pki.leaf("disk")
    await CRLCache(directory=tmp_path / "crls").check(leaf.cert, pki.org.cert)
    assert len(list((tmp_path / "crls").glob("*.crl"))) == 1

    async def offline(url: str) -> bytes:
        raise TransportError("offline")

    restarted = CRLCache(directory=tmp_path / "crls", fetcher=offline)
    await restarted.check(leaf.cert, pki.org.cert)  # from disk, after a failed refresh

    # A corrupted file on disk is ignored (and then there is nothing: fail closed).
    for path in (tmp_path / "crls").glob("*.crl"):
        path.write_bytes(b"corrupt")
    with pytest.raises(RevocationError):
        await CRLCache(directory=tmp_path / "crls", fetcher=offline).check(leaf.cert, pki.org.cert)


def test_unusable_cache_directory_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ConfigError):
        CRLCache(directory=blocker / "sub")


async def test_http_fetcher_maps_failures(crl_server: CRLServer) -> None:
    fetch = HTTPCRLFetcher(timeout=2)
    with pytest.raises(TransportError, match="HTTP 404"):
        await fetch(crl_server.base_url + "/missing.crl")
    with pytest.raises(UsageError):
        await fetch("ldap://annuaire-igc.esante.gouv.fr/cn=x")
    crl_server.routes["/big.crl"] = b"x" * 5000
    with pytest.raises(TransportError, match="larger than"):
        await HTTPCRLFetcher(max_bytes=1000)(crl_server.base_url + "/big.crl")
    crl_server.routes.clear()

    def hang(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("slow", request=request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(hang)) as client:
        with pytest.raises(TimeoutError):
            await HTTPCRLFetcher(client=client)("http://127.0.0.1/x.crl")


def test_crl_urls_skips_ldap_and_indirect_points(pki: MiniPKI) -> None:
    assert crl_urls(pki.leaf("urls").cert) == [pki.crl_url("org")]
    assert crl_urls(pki.root.cert) == []


async def test_chain_rebuild_needs_the_bundle(pki: MiniPKI, published: CRLServer, tmp_path: Path) -> None:
    leaf = pki.leaf("rebuild")
    only_root = CABundle.from_file(pki.bundle(pki.root, name="root-only.pem"))
    with pytest.raises(CertificateError, match="no issuer"):
        await check_peer_chain(leaf.der, bundle=only_root, crls=CRLCache())
    # The peer may send the intermediate; it is used, the chain still ends at the bundle.
    chain = await check_peer_chain([leaf.der, pki.org.der], bundle=only_root, crls=CRLCache())
    assert len(chain) == 3
    with pytest.raises(CertificateError):
        await check_peer_chain([], bundle=only_root, crls=CRLCache())
    with pytest.raises(ConfigError):
        CABundle.from_pem(b"nothing")
    with pytest.raises(ConfigError):
        CABundle.from_file(tmp_path / "missing.pem")


def test_client_context_defaults_and_refusals(pki: MiniPKI, tmp_path: Path) -> None:
    ctx = client_ssl_context(ca_bundle=pki.bundle())
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-RSA-AES128-SHA256",
    }
    assert any(c["protocol"] == "TLSv1.3" for c in ctx.get_ciphers())
    assert client_ssl_context(ca_bundle=pki.bundle(), min_version=ssl.TLSVersion.TLSv1_3).minimum_version == (
        ssl.TLSVersion.TLSv1_3
    )
    client = pki.leaf("client-ctx", client=True)
    client_ssl_context(ca_bundle=pki.bundle(), client_cert=client.cert_path, client_key=client.key_path)

    with pytest.raises(UsageError):
        client_ssl_context(ca_bundle=pki.bundle(), min_version=ssl.TLSVersion.TLSv1_1)
    with pytest.raises(UsageError):
        client_ssl_context(client_key=client.key_path)
    loose = ssl.create_default_context()
    loose.check_hostname = False
    with pytest.raises(UsageError):
        client_ssl_context(ssl_context=loose)
    old = ssl.create_default_context()
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.raises(UsageError):
        client_ssl_context(ssl_context=old)
    with pytest.raises(UsageError):
        client_ssl_context(ssl_context=ssl.create_default_context(), ca_bundle=pki.bundle())
    own = ssl.create_default_context(cafile=pki.bundle())
    assert client_ssl_context(ssl_context=own, client_cert=client.cert_path, client_key=client.key_path) is own
    with pytest.raises(ConfigError):
        client_ssl_context(ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(ConfigError):
        client_ssl_context(ca_bundle=pki.bundle(), ciphers="NO-SUCH-CIPHER")
    with pytest.raises(ConfigError):
        client_ssl_context(ca_bundle=pki.bundle(), client_cert=tmp_path / "missing.pem")
