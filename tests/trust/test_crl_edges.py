"""CRLCache edges: RFC 5280 §6.3.3 checks, several distribution points, PEM, disk trouble, one download at a time."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from mssante.errors import ConfigError, RevocationError, TimeoutError, TransportError
from mssante.trust import CRLCache, HTTPCRLFetcher, crl_urls
from tests.trust import _forge
from tests.trust._pki import NOW, CRLServer, MiniPKI


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


def _leaf_with_points(pki: MiniPKI, points: list[x509.DistributionPoint]) -> x509.Certificate:
    return _forge.certificate(
        _forge.name("leaf-points"), pki.org.cert.subject, pki.org.key,
        extensions=[x509.CRLDistributionPoints(points)],
    ).cert


def _uri(url: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(url)


def test_crl_urls_keeps_only_full_http_points_of_the_issuer(pki: MiniPKI) -> None:
    wanted = pki.crl_url("org")
    reasons = frozenset({x509.ReasonFlags.key_compromise})
    indirect = x509.DistributionPoint([_uri("http://indirect.test/x.crl")], None, None,
                                      [x509.DirectoryName(_forge.name("other CA"))])
    cert = _leaf_with_points(pki, [
        indirect,                                                                   # cRLIssuer: indirect CRL
        x509.DistributionPoint([_uri("http://partial.test/x.crl")], None, reasons, None),  # reasons: partial CRL
        x509.DistributionPoint(None, x509.RelativeDistinguishedName(
            [x509.NameAttribute(NameOID.COMMON_NAME, "CRL1")]), None, [x509.DirectoryName(_forge.name("ca"))]),
        x509.DistributionPoint([x509.DNSName("crl.test"), _uri("ldap://annuaire.test/cn=x"), _uri(wanted),
                                _uri("https://crl.test/b.crl")], None, None, None),
    ])
    assert crl_urls(cert) == [wanted, "https://crl.test/b.crl"]


async def test_second_distribution_point_serves_when_the_first_fails(pki: MiniPKI, published: CRLServer) -> None:
    missing = published.base_url + "/nowhere.crl"
    leaf = _leaf_with_points(pki, [x509.DistributionPoint([_uri(missing), _uri(pki.crl_url("org"))], None, None,
                                                          None)])
    await CRLCache().check(leaf, pki.org.cert)
    assert published.hits == ["/nowhere.crl", pki.crl_url("org").removeprefix(published.base_url)]
    published.unpublish(pki.crl_url("org"))
    with pytest.raises(RevocationError, match=r"no valid CRL from .*sim-org\.crl") as info:  # the last failure
        await CRLCache().check(leaf, pki.org.cert)
    assert info.value.requirement == "ECO.1.1.7"


async def test_a_pem_crl_is_accepted_and_lists_revocations(pki: MiniPKI, published: CRLServer) -> None:
    leaf = pki.leaf("pem-crl")
    der = pki.crl(pki.org, [leaf.cert])
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    published.publish(pki.crl_url("org"), b"\n  " + pem)
    with pytest.raises(RevocationError, match=r"serial [0-9a-f]+\) was revoked on") as info:
        await CRLCache().check(leaf.cert, pki.org.cert)
    assert info.value.requirement == "ECO.1.1.6"


async def test_issuer_key_usage_decides_who_may_sign_crls(published: CRLServer) -> None:
    url = published.base_url + "/forge.crl"
    # RFC 5280 §6.3.3 (f): with a keyUsage extension, cRLSign must be set; without one, any CA key may sign.
    plain = _forge.ca("CA sans keyUsage", crl_sign=None)
    published.routes["/forge.crl"] = _forge.crl(plain)
    assert (await CRLCache().get(url, plain.cert)).issuer == plain.cert.subject

    no_crl_sign = _forge.ca("CA sans cRLSign", crl_sign=False)
    published.routes["/forge.crl"] = _forge.crl(no_crl_sign)
    with pytest.raises(RevocationError, match="cRLSign"):
        await CRLCache().get(url, no_crl_sign.cert)


async def test_delta_and_future_crls_are_refused(published: CRLServer) -> None:
    url = published.base_url + "/forge.crl"
    issuer = _forge.ca("CA delta")
    published.routes["/forge.crl"] = _forge.crl(issuer, delta=True)
    with pytest.raises(RevocationError, match="delta CRL is not a full CRL"):
        await CRLCache().get(url, issuer.cert)

    # thisUpdate 10 min ahead: beyond a 5 min skew it is refused, within a 15 min skew it is fine.
    published.routes["/forge.crl"] = _forge.crl(issuer, this_update=timedelta(minutes=10))
    clock = Clock()
    with pytest.raises(RevocationError, match="thisUpdate is in the future"):
        await CRLCache(clock=clock).get(url, issuer.cert)
    await CRLCache(clock=clock, max_clock_skew=timedelta(minutes=15)).get(url, issuer.cert)


async def test_a_bad_signature_is_refused_even_from_the_right_name(pki: MiniPKI, published: CRLServer) -> None:
    impostor = _forge.ca("impostor")
    forged = pki.crl(pki.org, signer=impostor.key)  # names the ORG CA, signed by another key
    published.publish(pki.crl_url("org"), forged)
    with pytest.raises(RevocationError, match="signature does not verify"):
        await CRLCache().check(pki.leaf("forged-crl").cert, pki.org.cert)


async def test_concurrent_checks_share_one_download(pki: MiniPKI, published: CRLServer) -> None:
    leaves = [pki.leaf(f"concurrent-{i}").cert for i in range(2)]
    cache = CRLCache()
    await asyncio.gather(*(cache.check(leaf, pki.org.cert) for leaf in leaves * 4))
    assert published.hits == [pki.crl_url("org").removeprefix(published.base_url)]


async def test_disk_trouble_is_logged_and_the_crl_still_serves(
    pki: MiniPKI, published: CRLServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = pki.crl_url("org")
    directory = tmp_path / "crls"
    cache = CRLCache(directory=directory)
    # The cache file's place is taken by a directory: it can be neither read nor replaced.
    digest = hashlib.sha256(url.encode() + b"\0" + pki.org.cert.fingerprint(hashes.SHA256())).hexdigest()[:40]
    (directory / f"{digest}.crl").mkdir()
    with caplog.at_level(logging.WARNING, logger="mssante.trust._crl"):
        await cache.check(pki.leaf("disk-trouble").cert, pki.org.cert)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("cannot read cached CRL") for m in messages), messages
    assert any(m.startswith("cannot store CRL in") for m in messages), messages
    assert [p.name for p in directory.iterdir()] == [f"{digest}.crl"]  # no temporary file left behind


async def test_a_stale_disk_crl_is_not_used_beyond_grace(pki: MiniPKI, published: CRLServer, tmp_path: Path) -> None:
    leaf = pki.leaf("disk-stale")
    published.publish(pki.crl_url("org"), pki.crl(pki.org, next_update=NOW + timedelta(hours=1)))
    await CRLCache(directory=tmp_path / "crls").check(leaf.cert, pki.org.cert)
    published.unpublish(pki.crl_url("org"))
    clock = Clock()
    clock.now = NOW + timedelta(hours=2)
    restarted = CRLCache(directory=tmp_path / "crls", clock=clock, grace=timedelta(hours=2))
    await restarted.check(leaf.cert, pki.org.cert)  # within nextUpdate + grace: the disk copy serves
    clock.now = NOW + timedelta(hours=3, minutes=1)
    with pytest.raises(RevocationError, match="no valid CRL"):
        await restarted.check(leaf.cert, pki.org.cert)


async def test_a_vanished_cache_directory_only_costs_the_disk_copy(
    pki: MiniPKI, published: CRLServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "crls"
    cache = CRLCache(directory=directory)
    directory.rmdir()  # removed behind the cache's back (a cleaned temporary directory)
    with caplog.at_level(logging.WARNING, logger="mssante.trust._crl"):
        await cache.check(pki.leaf("vanished-dir").cert, pki.org.cert)
    assert any(r.getMessage().startswith("cannot store CRL in") for r in caplog.records)
    assert not directory.exists()


async def test_an_unreachable_crl_server_is_a_transport_failure(pki: MiniPKI) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(TransportError, match="CRL download failed"):
        await HTTPCRLFetcher(timeout=5)(f"http://127.0.0.1:{port}/x.crl")
    leaf = _leaf_with_points(pki, [x509.DistributionPoint([_uri(f"http://127.0.0.1:{port}/x.crl")], None, None,
                                                          None)])
    with pytest.raises(RevocationError, match="no valid CRL") as info:  # fail closed (ECO.1.1.7)
        await CRLCache().check(leaf, pki.org.cert)
    assert isinstance(info.value.__cause__, TransportError)


# -- edges found by mutation testing (benchmarks/mutation.py --target trust-crl) --


async def test_the_time_edges_are_inclusive(pki: MiniPKI, published: CRLServer) -> None:
    url = pki.crl_url("org")
    clock = Clock()
    # thisUpdate exactly at now + max_clock_skew is accepted (RFC 5280 §6.3.3 with our tolerance).
    published.publish(url, pki.crl(pki.org, this_update=NOW + timedelta(minutes=5)))
    await CRLCache(clock=clock, max_clock_skew=timedelta(minutes=5)).get(url, pki.org.cert)
    # A stale CRL serves up to nextUpdate + grace exactly (ECO.1.1.7), not a second more.
    published.publish(url, pki.crl(pki.org, next_update=NOW + timedelta(hours=1)))
    cache = CRLCache(clock=clock, grace=timedelta(hours=1))
    await cache.get(url, pki.org.cert)
    published.unpublish(url)
    clock.now = NOW + timedelta(hours=2)
    await cache.get(url, pki.org.cert)
    clock.now = NOW + timedelta(hours=2, seconds=1)
    with pytest.raises(RevocationError, match="no valid CRL"):
        await cache.get(url, pki.org.cert)


async def test_a_disk_copy_is_read_once(pki: MiniPKI, published: CRLServer, tmp_path: Path) -> None:
    leaf = pki.leaf("disk-once")
    await CRLCache(directory=tmp_path / "crls").check(leaf.cert, pki.org.cert)
    published.unpublish(pki.crl_url("org"))
    restarted = CRLCache(directory=tmp_path / "crls")
    await restarted.check(leaf.cert, pki.org.cert)  # from disk, the download failing
    for path in (tmp_path / "crls").glob("*.crl"):
        path.unlink()
    await restarted.check(leaf.cert, pki.org.cert)  # kept in memory since


async def test_refusals_name_the_rule(pki: MiniPKI, published: CRLServer) -> None:
    url = pki.crl_url("org")
    published.publish(url, pki.crl(pki.root))
    with pytest.raises(RevocationError) as info:
        await CRLCache().get(url, pki.org.cert)
    assert info.value.__cause__ is not None
    assert str(info.value.__cause__) == "CRL issuer does not match the certificate's issuer"
    published.publish(url, pki.crl(pki.org, signer=_forge.ca("forger").key))
    with pytest.raises(RevocationError) as info:
        await CRLCache().get(url, pki.org.cert)
    cause = info.value.__cause__
    assert isinstance(cause, RevocationError)
    assert (cause.message, cause.requirement) == ("CRL signature does not verify", "ECO.1.1.6")
    bare = pki.leaf("no-dp", crl_url=None)
    with pytest.raises(RevocationError) as info:
        await CRLCache().check(bare.cert, pki.org.cert)
    assert info.value.message == (
        f"{bare.cert.subject.rfc4514_string()} names no HTTP CRL distribution point; revocation cannot be checked"
    )
    assert info.value.requirement == "ECO.1.1.6"


async def test_refresh_edges_and_an_identical_republication(pki: MiniPKI, published: CRLServer) -> None:
    url = pki.crl_url("org")
    path = url.removeprefix(published.base_url)
    published.publish(url, pki.crl(pki.org, this_update=NOW - timedelta(hours=1), next_update=NOW + timedelta(hours=1)))
    clock = Clock()
    cache = CRLCache(clock=clock, refresh_after=timedelta(minutes=10))
    await cache.get(url, pki.org.cert)
    clock.now = NOW + timedelta(minutes=9, seconds=59)
    await cache.get(url, pki.org.cert)
    assert published.hits.count(path) == 1  # current and recent: not downloaded again
    clock.now = NOW + timedelta(minutes=10)
    await cache.get(url, pki.org.cert)  # refresh_after reached: the same CRL again, accepted as is
    assert published.hits.count(path) == 2
    clock.now = NOW + timedelta(minutes=19, seconds=59)
    await cache.get(url, pki.org.cert)  # the identical republication counted as a fresh download
    assert published.hits.count(path) == 2


async def test_a_crl_is_current_up_to_its_next_update_inclusive(pki: MiniPKI, published: CRLServer) -> None:
    url = pki.crl_url("org")
    path = url.removeprefix(published.base_url)
    published.publish(url, pki.crl(pki.org, next_update=NOW + timedelta(hours=1)))
    clock = Clock()
    clock.now = NOW + timedelta(hours=1)  # a download at nextUpdate exactly is still valid (ECO.1.1.7)
    cache = CRLCache(clock=clock, refresh_after=timedelta(days=1))
    await cache.get(url, pki.org.cert)
    await cache.get(url, pki.org.cert)  # and it is still current: no second download
    assert published.hits.count(path) == 1


def test_the_cache_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    CRLCache(directory=tmp_path / "a" / "b" / "crls")
    assert (tmp_path / "a" / "b" / "crls").is_dir()
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ConfigError, match=f"cannot create the CRL cache directory {blocker / 'sub'}: "):
        CRLCache(directory=blocker / "sub")


async def test_the_download_timeout_is_applied(pki: MiniPKI) -> None:
    held: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _r, w: held.append(w), "127.0.0.1", 0)  # accepts, never answers
    port = silent.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):  # the fetcher's own 0.3 s must fire long before this
            with pytest.raises(TimeoutError, match="CRL download timed out"):
                await HTTPCRLFetcher(timeout=0.3)(f"http://127.0.0.1:{port}/x.crl")
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
