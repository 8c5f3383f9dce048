"""Chain rebuild, peer inputs, revocation policy corners, TLS context rules and the ssl error boundary."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import pytest

from mssante.errors import CertificateError, ConfigError, ConnectError, RevocationError, TrustError
from mssante.trust import (
    BASELINE_CIPHERS,
    CABundle,
    CRLCache,
    OCSPClient,
    _revocation,
    check_peer_chain,
    check_revocation,
    client_ssl_context,
    map_ssl_error,
)
from tests.trust import _forge
from tests.trust._pki import CRLServer, MiniPKI


def _handshake(client: ssl.SSLObject, server: ssl.SSLObject, bios: tuple[ssl.MemoryBIO, ...]) -> None:
    """Drive a TLS handshake between two in-memory ends; raises what the client's side raises."""
    c_in, c_out, s_in, s_out = bios
    for _ in range(10):
        client_done = server_done = False
        try:
            client.do_handshake()
            client_done = True
        except ssl.SSLWantReadError:
            pass
        s_in.write(c_out.read())
        try:
            server.do_handshake()
            server_done = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:  # the server's alert travels to the client, whose error is the one raised
            pass
        c_in.write(s_out.read())
        if client_done and server_done:
            return
    raise AssertionError("handshake did not finish")


def _pair(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext) -> tuple[ssl.SSLObject, ssl.SSLObject,
                                                                          tuple[ssl.MemoryBIO, ...]]:
    bios = tuple(ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(bios[0], bios[1], server_hostname="localhost")
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    return client, server, bios


def _server_ctx(pki: MiniPKI, stem: str, **leaf: object) -> ssl.SSLContext:
    issued = pki.leaf(stem, **leaf)  # type: ignore[arg-type]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(issued.cert_path, issued.key_path)
    return ctx


# -- CABundle --


def test_bundle_refuses_to_be_empty() -> None:
    with pytest.raises(ConfigError, match="no certificate"):
        CABundle([])


def test_a_name_twin_in_the_bundle_does_not_take_the_real_issuer_place(pki: MiniPKI) -> None:
    twin = _forge.certificate(pki.org.cert.subject, pki.root.cert.subject, _forge.ca("twin root").key)
    bundle = CABundle([twin.cert, pki.root.cert, pki.org.cert])
    leaf = pki.leaf("twin-leaf").cert
    assert bundle.find_issuer(leaf) == pki.org.cert
    assert bundle.chain(leaf) == [leaf, pki.org.cert, pki.root.cert]
    with pytest.raises(CertificateError, match="no issuer"):
        CABundle([twin.cert, pki.root.cert]).chain(leaf)


def test_an_intermediate_of_the_bundle_is_a_partial_anchor(pki: MiniPKI) -> None:
    leaf = pki.leaf("partial").cert
    assert CABundle([pki.org.cert]).chain(leaf) == [leaf, pki.org.cert]
    # ...but a leaf never anchors itself, even when someone put it in the bundle.
    with pytest.raises(CertificateError, match="no issuer"):
        CABundle([leaf, _forge.ca("unrelated").cert]).chain(leaf)


def test_cross_signed_loops_and_overlong_chains_are_refused() -> None:
    a_key, b_key = _forge.ca("A").key, _forge.ca("B").key
    a = _forge.certificate(_forge.name("loop A"), _forge.name("loop B"), b_key, key=a_key)
    b = _forge.certificate(_forge.name("loop B"), _forge.name("loop A"), a_key, key=b_key)
    leaf = _forge.certificate(_forge.name("loop leaf"), _forge.name("loop A"), a_key)
    with pytest.raises(CertificateError, match="loops"):
        CABundle([a.cert, b.cert]).chain(leaf.cert)

    cas = [_forge.ca("deep 0")]
    for depth in range(1, 10):
        cas.append(_forge.ca(f"deep {depth}", parent=cas[-1]))
    deep_leaf = _forge.certificate(_forge.name("deep leaf"), cas[-1].cert.subject, cas[-1].key)
    with pytest.raises(CertificateError, match="too long"):
        CABundle([ca.cert for ca in cas]).chain(deep_leaf.cert)
    short = CABundle([ca.cert for ca in cas[-6:]])  # a partial chain of six CAs is fine
    assert len(short.chain(deep_leaf.cert)) == 7


# -- check_peer_chain inputs and policy --


async def test_peer_inputs_ssl_object_der_and_garbage(pki: MiniPKI, published: CRLServer) -> None:
    bundle = CABundle([pki.root.cert, pki.org.cert])
    client_ctx = client_ssl_context(ca_bundle=pki.bundle())
    client, server, bios = _pair(client_ctx, _server_ctx(pki, "peer-object"))
    _handshake(client, server, bios)
    chain = await check_peer_chain(client, bundle=bundle, crls=CRLCache(), revocation_methods=("crl",))
    assert [c.subject for c in chain][1:] == [pki.org.cert.subject, pki.root.cert.subject]
    # The server's view: the client sent no certificate.
    with pytest.raises(CertificateError, match="sent no certificate"):
        await check_peer_chain(server, bundle=bundle, crls=CRLCache())
    with pytest.raises(CertificateError, match="not valid DER"):
        await check_peer_chain(b"\x30\x03\x02\x01\x00", bundle=bundle, crls=CRLCache())


async def test_intermediates_are_skipped_when_asked(pki: MiniPKI, published: CRLServer) -> None:
    bundle = CABundle([pki.root.cert, pki.org.cert])
    leaf = pki.leaf("leaf-only")
    root_crl = pki.crl_url("root").removeprefix(published.base_url)
    await check_peer_chain(leaf.der, bundle=bundle, crls=CRLCache(), check_intermediates=False,
                           revocation_methods=("crl",))
    assert root_crl not in published.hits
    await check_peer_chain(leaf.der, bundle=bundle, crls=CRLCache(), revocation_methods=("crl",))
    assert root_crl in published.hits


async def test_nothing_to_check_with_fails_closed(pki: MiniPKI, published: CRLServer) -> None:
    bare = pki.leaf("no-revocation-info", crl_url=None)
    with pytest.raises(RevocationError, match="no OCSP responder nor HTTP CRL distribution point") as info:
        await check_revocation(bare.cert, pki.org.cert, crls=CRLCache(), revocation_methods=("ocsp",))
    assert info.value.requirement == "ECO.1.1.6"
    with pytest.raises(RevocationError, match="names no HTTP CRL distribution point"):
        await check_revocation(bare.cert, pki.org.cert, crls=CRLCache(), revocation_methods=("ocsp", "crl"))


@pytest.fixture
def fresh_default_ocsp(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_revocation, "_shared_ocsp", None)
    yield


async def test_callers_without_an_ocsp_client_share_one(
    pki: MiniPKI, published: CRLServer, fresh_default_ocsp: None
) -> None:
    published.post_routes.clear()
    published.posts.clear()
    leaf = pki.leaf("shared-ocsp", ocsp_url=published.base_url + "/shared-ocsp")
    published.post_routes["/shared-ocsp"] = lambda _request: pki.ocsp_response(leaf.cert)
    for _ in range(2):
        await check_revocation(leaf.cert, pki.org.cert, crls=CRLCache(), revocation_methods=("ocsp",))
    assert len(published.posts) == 1  # the second check used the shared client's cache
    assert isinstance(_revocation._shared_ocsp, OCSPClient)
    published.post_routes.clear()
    published.posts.clear()


# -- TLS context rules (ECO.1.1.1, ECO.1.1.3, ECO.1.1.5) --


def test_context_from_the_system_store_keeps_the_rules() -> None:
    ctx = client_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"} == set(BASELINE_CIPHERS.split(":"))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_openssl_default_ciphers_widen_tls12_but_never_allow_tls11(pki: MiniPKI) -> None:
    ctx = client_ssl_context(ca_bundle=pki.bundle(), ciphers=None)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    # A TLS 1.2 server with a suite outside the Ref #2 baseline: only the widened context connects.
    chacha = _server_ctx(pki, "non-baseline-server")
    chacha.maximum_version = ssl.TLSVersion.TLSv1_2
    chacha.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305")
    client, server, bios = _pair(ctx, chacha)
    _handshake(client, server, bios)
    assert (client.cipher() or ("",))[0] == "ECDHE-RSA-CHACHA20-POLY1305"
    client, server, bios = _pair(client_ssl_context(ca_bundle=pki.bundle()), chacha)
    with pytest.raises(ssl.SSLError) as info:
        _handshake(client, server, bios)
    assert map_ssl_error(info.value).requirement == "ECO.1.1.1"
    # A TLS 1.1 server: refused whatever the cipher list (ECO.1.1.1).
    old_server = _server_ctx(pki, "tls11-server")
    old_server.minimum_version = old_server.maximum_version = ssl.TLSVersion.TLSv1_1
    old_server.set_ciphers("ALL:@SECLEVEL=0")
    client, server, bios = _pair(ctx, old_server)
    with pytest.raises(ssl.SSLError) as info:
        _handshake(client, server, bios)
    assert isinstance(map_ssl_error(info.value), TrustError)


def test_a_prepared_tls13_context_is_accepted(pki: MiniPKI) -> None:
    own = ssl.create_default_context(cafile=pki.bundle())
    own.minimum_version = ssl.TLSVersion.TLSv1_3
    assert client_ssl_context(ssl_context=own) is own


# -- the ssl error boundary, from real handshakes where OpenSSL can produce the error --


def test_a_crl_check_without_crl_maps_to_a_revocation_error(pki: MiniPKI) -> None:
    ctx = client_ssl_context(ca_bundle=pki.bundle())
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF  # OpenSSL: "unable to get certificate CRL"
    client, server, bios = _pair(ctx, _server_ctx(pki, "crl-required"))
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        _handshake(client, server, bios)
    error = map_ssl_error(info.value)
    assert type(error) is RevocationError and error.requirement == "ECO.1.1.7"


def test_a_client_only_certificate_on_a_server_is_refused(pki: MiniPKI) -> None:
    ctx = client_ssl_context(ca_bundle=pki.bundle())
    client, server, bios = _pair(ctx, _server_ctx(pki, "client-only-server", client=True))
    with pytest.raises(ssl.SSLCertVerificationError) as info:  # X509_V_ERR_INVALID_PURPOSE
        _handshake(client, server, bios)
    error = map_ssl_error(info.value)
    assert type(error) is CertificateError and "did not verify" in error.message


async def test_socket_errors_and_unknown_failures_map_into_the_tree() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError) as info:
        await asyncio.open_connection("127.0.0.1", port)  # nobody listens any more
    assert type(map_ssl_error(info.value)) is ConnectError

    revoked = ssl.SSLError(1, "alert")
    revoked.reason = "SSLV3_ALERT_CERTIFICATE_REVOKED"  # what a server sends about our certificate
    assert type(map_ssl_error(revoked)) is RevocationError
    other = ssl.SSLError(1, "odd")
    other.reason = "DECRYPTION_FAILED_OR_BAD_RECORD_MAC"
    error = map_ssl_error(other)
    assert type(error) is TrustError and "DECRYPTION_FAILED_OR_BAD_RECORD_MAC" in error.message
    assert type(map_ssl_error(ValueError("bug"))) is TrustError
    assert map_ssl_error(ValueError("bug")).message == "TLS failed: ValueError"

