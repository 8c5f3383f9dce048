"""Certificate matrix over real TLS on 127.0.0.1: each bad certificate is refused with the right error."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from mssante.errors import CertificateError, MssanteError, RevocationError, TrustError
from mssante.trust import BASELINE_CIPHERS, CABundle, CRLCache, check_peer_chain, client_ssl_context, map_ssl_error
from tests.trust._pki import NOW, CRLServer, Issued, MiniPKI


def server_context(leaf: Issued, pki: MiniPKI, *, tls12_ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chain = leaf.cert_path.parent / f"{leaf.cert_path.stem}-chain.pem"
    chain.write_bytes(leaf.cert_path.read_bytes() + pki.org.cert_path.read_bytes())
    ctx.load_cert_chain(chain, leaf.key_path)
    if tls12_ciphers is not None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(tls12_ciphers)
    return ctx


@contextlib.asynccontextmanager
async def tls_server(ctx: ssl.SSLContext) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            writer.write(b"220 ready\r\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def connect_and_check(
    port: int, ctx: ssl.SSLContext, hostname: str, *, bundle: CABundle, crls: CRLCache
) -> tuple[list[x509.Certificate], str | None, str | None]:
    """What a client does: TLS handshake (verify + host name), then revocation of the peer chain."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=hostname)
    except (ssl.SSLError, OSError) as exc:
        raise map_ssl_error(exc) from exc
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        chain = await check_peer_chain(ssl_object, bundle=bundle, crls=crls)
        return chain, ssl_object.version(), ssl_object.cipher()[0]
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


@pytest.fixture
def client(pki: MiniPKI) -> tuple[ssl.SSLContext, CABundle]:
    bundle_path = pki.bundle()
    return client_ssl_context(ca_bundle=bundle_path), CABundle.from_file(bundle_path)


async def test_good_certificate_passes_and_chain_is_rebuilt(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("good", dns_names=["imap.psc.mss.test"])
    async with tls_server(server_context(leaf, pki)) as port:
        chain, version, _ = await connect_and_check(port, ctx, "imap.psc.mss.test", bundle=bundle, crls=CRLCache())
    assert [c.subject for c in chain] == [leaf.cert.subject, pki.org.cert.subject, pki.root.cert.subject]
    assert version == "TLSv1.3"
    # Leaf CRL (ORG CA) and intermediate CRL (root) were both fetched.
    assert sorted(published.hits) == sorted(
        [pki.crl_url("org").removeprefix(published.base_url), pki.crl_url("root").removeprefix(published.base_url)]
    )


async def test_unknown_ca_is_refused(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle], tmp_path: Path
) -> None:
    ctx, bundle = client
    other = MiniPKI(tmp_path / "other", published.base_url, label="OTHER")
    leaf = other.leaf("foreign")
    async with tls_server(server_context(leaf, other)) as port:
        with pytest.raises(CertificateError) as info:
            await connect_and_check(port, ctx, "localhost", bundle=bundle, crls=CRLCache())
    assert "unable to get local issuer certificate" in info.value.message
    assert info.value.requirement == "ECO.1.1.10"


async def test_expired_certificate_is_refused(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("expired", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1))
    async with tls_server(server_context(leaf, pki)) as port:
        with pytest.raises(CertificateError) as info:
            await connect_and_check(port, ctx, "localhost", bundle=bundle, crls=CRLCache())
    assert "expired" in info.value.message
    assert info.value.requirement == "ECO.1.1.5"


async def test_wrong_host_name_is_refused(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("wronghost", dns_names=["smtp.psc.mss.test"])
    async with tls_server(server_context(leaf, pki)) as port:
        # The reference identifier is the SRV target; the mail domain is not in the certificate.
        with pytest.raises(CertificateError) as info:
            await connect_and_check(port, ctx, "mss.test", bundle=bundle, crls=CRLCache())
    assert "Hostname mismatch" in info.value.message


async def test_revoked_certificate_is_refused_after_handshake(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("revoked")
    published.publish(pki.crl_url("org"), pki.crl(pki.org, [leaf.cert]))
    async with tls_server(server_context(leaf, pki)) as port:
        with pytest.raises(RevocationError) as info:
            await connect_and_check(port, ctx, "localhost", bundle=bundle, crls=CRLCache())
    assert "revoked" in info.value.message
    assert info.value.requirement == "ECO.1.1.6"


async def test_revoked_intermediate_is_refused(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("under-revoked-ca")
    published.publish(pki.crl_url("root"), pki.crl(pki.root, [pki.org.cert]))
    async with tls_server(server_context(leaf, pki)) as port:
        with pytest.raises(RevocationError, match="TEST AC ORGANISATIONS"):
            await connect_and_check(port, ctx, "localhost", bundle=bundle, crls=CRLCache())


async def test_no_crl_at_all_fails_closed(
    pki: MiniPKI, crl_server: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("nocrl")
    async with tls_server(server_context(leaf, pki)) as port:
        with pytest.raises(RevocationError, match="no valid CRL"):
            await connect_and_check(port, ctx, "localhost", bundle=bundle, crls=CRLCache())


async def test_tampered_crl_is_refused(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("tampered")
    forged = MiniPKI(pki.dir / "forger", published.base_url, label="FORGER")
    # Same issuer name and content, signed by another key: an attacker's empty CRL.
    published.publish(pki.crl_url("org"), pki.crl(pki.org, signer=forged.org.key))
    async with tls_server(server_context(leaf, pki)) as port:
        with pytest.raises(RevocationError, match="signature"):
            await connect_and_check(port, ctx, "localhost", bundle=bundle, crls=CRLCache())


async def test_leaf_without_crl_distribution_point_fails_closed(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("nodp", crl_url=None)
    async with tls_server(server_context(leaf, pki)) as port:
        with pytest.raises(RevocationError, match="no HTTP CRL distribution point"):
            await connect_and_check(port, ctx, "localhost", bundle=bundle, crls=CRLCache())


async def test_tls12_uses_the_ref2_baseline_and_refuses_other_suites(
    pki: MiniPKI, published: CRLServer, client: tuple[ssl.SSLContext, CABundle]
) -> None:
    ctx, bundle = client
    leaf = pki.leaf("tls12")
    async with tls_server(server_context(leaf, pki, tls12_ciphers="ECDHE-RSA-AES256-GCM-SHA384")) as port:
        _, version, cipher = await connect_and_check(port, ctx, "localhost", bundle=bundle, crls=CRLCache())
    assert (version, cipher) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")
    assert cipher in BASELINE_CIPHERS.split(":")
    # A TLS 1.2 server offering only a suite outside the baseline: no connection (fail closed).
    # In memory, so that the server's alert deterministically reaches the client.
    server_ctx = server_context(leaf, pki, tls12_ciphers="ECDHE-RSA-CHACHA20-POLY1305")
    with pytest.raises(TrustError) as info:
        memory_handshake(ctx, server_ctx, "localhost")
    assert type(info.value) is TrustError
    assert "SSLV3_ALERT_HANDSHAKE_FAILURE" in info.value.message
    assert info.value.requirement == "ECO.1.1.1"


def memory_handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, hostname: str) -> None:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        try:
            client.do_handshake()
            return
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            raise map_ssl_error(exc) from exc
        s_in.write(c_out.read())
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLError):
            server.do_handshake()
        c_in.write(s_out.read())
    raise AssertionError("handshake did not finish")


def test_map_ssl_error_covers_the_boundary() -> None:
    assert isinstance(map_ssl_error(ConnectionResetError()), MssanteError)
    same = CertificateError("x")
    assert map_ssl_error(same) is same
    revoked = ssl.SSLCertVerificationError(1, "x")
    revoked.verify_code, revoked.verify_message = 23, "certificate revoked"
    assert isinstance(map_ssl_error(revoked), RevocationError)
    alert = ssl.SSLError(1, "x")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert type(map_ssl_error(alert)) is CertificateError
    assert map_ssl_error(ssl.SSLEOFError()).error == "closed"
    assert map_ssl_error(TimeoutError()).error == "timeout"
