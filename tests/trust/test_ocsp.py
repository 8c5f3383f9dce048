"""OCSP (RFC 6960) first where the certificate names a responder, CRL fallback, fail closed (ECO.1.1.6/7)."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from mssante.errors import RevocationError, TimeoutError, TransportError, UsageError
from mssante.trust import (
    CABundle,
    CRLCache,
    HTTPOCSPFetcher,
    OCSPClient,
    OCSPStatus,
    check_peer_chain,
    check_revocation,
    ocsp_urls,
)
from tests.trust._pki import NOW, CRLServer, Issued, MiniPKI, Responder, fixed

GOOD, REVOKED, UNKNOWN = ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def bundle(pki: MiniPKI) -> CABundle:
    return CABundle([pki.root.cert, pki.org.cert])


async def check(leaf: Issued, bundle: CABundle, client: OCSPClient | None = None, **kwargs: object) -> None:
    await check_peer_chain(leaf.der, bundle=bundle, crls=CRLCache(), ocsp=client or OCSPClient(), **kwargs)  # type: ignore[arg-type]


def revoke_by_crl(pki: MiniPKI, server: CRLServer, *certs: Issued) -> None:
    server.publish(pki.crl_url("org"), pki.crl(pki.org, [c.cert for c in certs]))


def crl_fetched(pki: MiniPKI, server: CRLServer) -> bool:
    return pki.crl_url("org").removeprefix(server.base_url) in server.hits


# -- definitive answers --


async def test_good_answer_is_accepted_without_the_crl(pki: MiniPKI, responder: Responder, bundle: CABundle) -> None:
    leaf = pki.leaf("ocsp-good", ocsp_url=responder.url)
    assert ocsp_urls(leaf.cert) == [responder.url]
    responder.serve(fixed(pki.ocsp_response(leaf.cert)))
    await check(leaf, bundle)
    assert len(responder.requests) == 1
    (_path, content_type, body) = responder.server.posts[0]
    assert content_type == "application/ocsp-request"
    request = ocsp.load_der_ocsp_request(body)
    assert request.serial_number == leaf.cert.serial_number and request.hash_algorithm.name == "sha1"
    assert not crl_fetched(pki, responder.server)  # the leaf's CRL was not needed


async def test_revoked_answer_is_final_even_with_a_clean_crl(
    pki: MiniPKI, responder: Responder, bundle: CABundle
) -> None:
    leaf = pki.leaf("ocsp-revoked", ocsp_url=responder.url)
    responder.serve(fixed(pki.ocsp_response(leaf.cert, status=REVOKED)))
    with pytest.raises(RevocationError, match=r"revoked.*OCSP") as info:
        await check(leaf, bundle)
    assert info.value.requirement == "ECO.1.1.6"
    assert not crl_fetched(pki, responder.server)


async def test_unknown_answer_falls_back_to_the_crl(pki: MiniPKI, responder: Responder, bundle: CABundle) -> None:
    leaf = pki.leaf("ocsp-unknown", ocsp_url=responder.url)
    responder.serve(fixed(pki.ocsp_response(leaf.cert, status=UNKNOWN)))
    await check(leaf, bundle)
    assert crl_fetched(pki, responder.server)
    with pytest.raises(RevocationError, match="does not know") as info:
        await OCSPClient().check(leaf.cert, pki.org.cert)
    assert info.value.requirement == "RFC 6960 §2.2"


# -- no usable answer: the CRL decides --


async def test_responder_down_falls_back_to_the_crl(pki: MiniPKI, responder: Responder, bundle: CABundle) -> None:
    good = pki.leaf("ocsp-down-good", ocsp_url=responder.url)
    revoked = pki.leaf("ocsp-down-revoked", ocsp_url=responder.url)
    responder.down()
    revoke_by_crl(pki, responder.server, revoked)
    await check(good, bundle)
    with pytest.raises(RevocationError, match="was revoked on") as info:
        await check(revoked, bundle)
    assert info.value.requirement == "ECO.1.1.6"


async def test_responder_down_and_no_crl_fails_closed(pki: MiniPKI, responder: Responder, bundle: CABundle) -> None:
    leaf = pki.leaf("ocsp-nothing", ocsp_url=responder.url)
    responder.down()
    responder.server.unpublish(pki.crl_url("org"))
    with pytest.raises(RevocationError, match="no valid CRL"):
        await check(leaf, bundle)
    only_ocsp = pki.leaf("ocsp-only", ocsp_url=responder.url, crl_url=None)
    with pytest.raises(RevocationError, match="no OCSP answer"):
        await check(only_ocsp, bundle)
    with pytest.raises(RevocationError, match="no OCSP answer"):
        await check(leaf, bundle, revocation_methods=("ocsp",))


async def test_forged_good_cannot_override_a_crl_revocation(
    pki: MiniPKI, responder: Responder, bundle: CABundle
) -> None:
    leaf = pki.leaf("ocsp-forged", ocsp_url=responder.url)
    revoke_by_crl(pki, responder.server, leaf)
    forger = ec.generate_private_key(ec.SECP256R1())
    responder.serve(fixed(pki.ocsp_response(leaf.cert, signer=forger)))  # names the CA, signed by another key
    with pytest.raises(RevocationError, match="signature does not verify"):
        await OCSPClient().status(leaf.cert, pki.org.cert)
    with pytest.raises(RevocationError, match="was revoked on"):
        await check(leaf, bundle)
    # A "responder" certified by another CA (here the root), even with OCSPSigning, is refused too.
    outsider = pki.ocsp_responder("ocsp-outsider", issuer=pki.root)
    responder.serve(fixed(pki.ocsp_response(leaf.cert, responder=outsider)))
    with pytest.raises(RevocationError, match="not issued by the CA"):
        await OCSPClient().status(leaf.cert, pki.org.cert)
    with pytest.raises(RevocationError, match="was revoked on"):
        await check(leaf, bundle)


async def test_delegated_responder_needs_ocsp_signing(pki: MiniPKI, responder: Responder, bundle: CABundle) -> None:
    leaf = pki.leaf("ocsp-delegated", ocsp_url=responder.url)
    responder.server.unpublish(pki.crl_url("org"))  # only OCSP can accept the leaf here
    delegated = pki.ocsp_responder("ocsp-delegated-responder")
    responder.serve(fixed(pki.ocsp_response(leaf.cert, responder=delegated)))
    await check(leaf, bundle)

    plain = pki.ocsp_responder("ocsp-no-eku", ocsp_signing=False)
    responder.serve(fixed(pki.ocsp_response(leaf.cert, responder=plain)))
    with pytest.raises(RevocationError, match="OCSPSigning") as info:
        await OCSPClient().status(leaf.cert, pki.org.cert)
    assert info.value.requirement == "RFC 6960 §4.2.2.2"
    with pytest.raises(RevocationError, match="no valid CRL"):
        await check(leaf, bundle)


async def test_stale_or_future_responses_are_refused(pki: MiniPKI, responder: Responder, bundle: CABundle) -> None:
    leaf = pki.leaf("ocsp-expired", ocsp_url=responder.url)
    revoke_by_crl(pki, responder.server, leaf)
    expired = pki.ocsp_response(leaf.cert, this_update=NOW - timedelta(days=2), next_update=NOW - timedelta(days=1))
    responder.serve(fixed(expired))
    with pytest.raises(RevocationError, match="expired"):
        await OCSPClient().status(leaf.cert, pki.org.cert)
    with pytest.raises(RevocationError, match="was revoked on"):  # the stale "good" did not count
        await check(leaf, bundle)
    # Clock skew: a response a few minutes past nextUpdate still passes, a future one does not.
    clock = Clock(NOW + timedelta(hours=4, minutes=3))
    responder.serve(fixed(pki.ocsp_response(leaf.cert)))
    assert (await OCSPClient(clock=clock).status(leaf.cert, pki.org.cert)).status is OCSPStatus.GOOD
    responder.serve(fixed(pki.ocsp_response(leaf.cert, this_update=NOW + timedelta(hours=1))))
    with pytest.raises(RevocationError, match="in the future"):
        await OCSPClient(clock=Clock(NOW)).status(leaf.cert, pki.org.cert)
    # Without nextUpdate: accepted while younger than max_age, and never cached.
    responder.serve(fixed(pki.ocsp_response(leaf.cert, without_next_update=True)))
    client = OCSPClient(clock=Clock(NOW), max_age=timedelta(minutes=30))
    await client.check(leaf.cert, pki.org.cert)
    await client.check(leaf.cert, pki.org.cert)
    assert len(responder.requests) == 4 + 2
    with pytest.raises(RevocationError, match="too old"):
        await OCSPClient(clock=Clock(NOW), max_age=timedelta(minutes=5)).status(leaf.cert, pki.org.cert)


async def test_answers_are_cached_until_next_update(pki: MiniPKI, responder: Responder, bundle: CABundle) -> None:
    leaf = pki.leaf("ocsp-cache", ocsp_url=responder.url)
    responder.serve(fixed(pki.ocsp_response(leaf.cert, next_update=NOW + timedelta(hours=1))))
    clock = Clock(NOW)
    client = OCSPClient(clock=clock)
    await check(leaf, bundle, client)
    await check(leaf, bundle, client)
    assert len(responder.requests) == 1  # the second check made no request
    clock.now = NOW + timedelta(hours=1, minutes=1)
    responder.serve(fixed(pki.ocsp_response(leaf.cert, status=REVOKED, this_update=clock.now)))
    with pytest.raises(RevocationError, match="revoked"):
        await check(leaf, bundle, client)
    assert len(responder.requests) == 2


async def test_a_failed_responder_is_skipped_for_a_while(pki: MiniPKI, responder: Responder) -> None:
    leaf = pki.leaf("ocsp-backoff", ocsp_url=responder.url)
    responder.down()
    clock = Clock(NOW)
    client = OCSPClient(clock=clock, retry_after=timedelta(minutes=1))
    for _ in range(2):
        with pytest.raises(RevocationError):
            await client.status(leaf.cert, pki.org.cert)
    assert len(responder.requests) == 1
    responder.serve(fixed(pki.ocsp_response(leaf.cert)))
    clock.now = NOW + timedelta(minutes=2)
    assert (await client.status(leaf.cert, pki.org.cert)).status is OCSPStatus.GOOD


async def test_crl_only_disables_ocsp(pki: MiniPKI, responder: Responder, bundle: CABundle) -> None:
    leaf = pki.leaf("ocsp-disabled", ocsp_url=responder.url)
    responder.serve(fixed(pki.ocsp_response(leaf.cert, status=REVOKED)))
    await check(leaf, bundle, revocation_methods=("crl",))
    assert responder.requests == []
    for bad in ((), ("ldap",), ("crl", "crl")):
        with pytest.raises(UsageError):
            await check(leaf, bundle, revocation_methods=bad)
    # CRL first: a valid CRL is final, OCSP is asked only when no valid CRL is available.
    responder.server.unpublish(pki.crl_url("org"))
    with pytest.raises(RevocationError, match=r"revoked.*OCSP"):
        await check_revocation(leaf.cert, pki.org.cert, crls=CRLCache(), revocation_methods=("crl", "ocsp"))


# -- response checks --


async def test_other_certificate_error_status_and_garbage_are_refused(pki: MiniPKI, responder: Responder) -> None:
    leaf = pki.leaf("ocsp-mismatch", ocsp_url=responder.url)
    other = pki.leaf("ocsp-other")
    cases = [
        (pki.ocsp_response(other.cert), "another certificate"),
        (
            ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(Encoding.DER),
            "TRY_LATER",
        ),
        (b"<html>proxy error</html>", "not an OCSP response"),
    ]
    for data, message in cases:
        responder.serve(fixed(data))
        with pytest.raises(RevocationError, match=message):
            await OCSPClient().status(leaf.cert, pki.org.cert)


async def test_nonce_must_be_echoed_when_sent(pki: MiniPKI, responder: Responder) -> None:
    leaf = pki.leaf("ocsp-nonce", ocsp_url=responder.url)

    def echo(body: bytes) -> bytes:
        sent = ocsp.load_der_ocsp_request(body).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        return pki.ocsp_response(leaf.cert, nonce=sent)

    responder.serve(echo)
    await OCSPClient(nonce=True).check(leaf.cert, pki.org.cert)
    responder.serve(fixed(pki.ocsp_response(leaf.cert, nonce=b"\x00" * 16)))
    with pytest.raises(RevocationError, match="nonce"):
        await OCSPClient(nonce=True).check(leaf.cert, pki.org.cert)


async def test_http_fetcher_bounds_and_errors(pki: MiniPKI, responder: Responder) -> None:
    responder.serve(fixed(b"x" * 5000))
    with pytest.raises(TransportError, match="larger than"):
        await HTTPOCSPFetcher(max_bytes=1000)(responder.url, b"req")
    responder.down()
    with pytest.raises(TransportError, match="HTTP 404"):
        await HTTPOCSPFetcher(timeout=2)(responder.url, b"req")
    with pytest.raises(UsageError):
        await HTTPOCSPFetcher()("ldap://ocsp.example/x", b"req")

    def hang(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("slow", request=request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(hang)) as client:
        with pytest.raises(TimeoutError):
            await HTTPOCSPFetcher(client=client)("http://127.0.0.1/ocsp", b"req")
