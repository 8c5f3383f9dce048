"""OCSP edges (RFC 6960): signer algorithms, unqualified delegated responders, CertID hashes, the cache bound."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from mssante.errors import RevocationError
from mssante.trust import OCSPClient, OCSPStatus, _ocsp
from tests.trust import _forge
from tests.trust._pki import Issued, MiniPKI, Responder, fixed

_OCSP_SIGNING = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])


def delegated(pki: MiniPKI, cn: str, *, key: _forge.AnyKey | None = None,
              extensions: tuple[x509.ExtensionType, ...] = (_OCSP_SIGNING,),
              not_after: timedelta = timedelta(days=30)) -> Issued:
    """A responder certificate issued (and signed) by the ORG CA."""
    return _forge.certificate(_forge.name(cn), pki.org.cert.subject, pki.org.key, key=key,
                              extensions=extensions, not_before=timedelta(days=-2), not_after=not_after)


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
async def test_rsa_and_ed25519_delegated_responders_are_verified(
    pki: MiniPKI, responder: Responder, algorithm: str
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == "rsa" \
        else ed25519.Ed25519PrivateKey.generate()
    signer = delegated(pki, f"ocsp {algorithm}", key=key)
    leaf = pki.leaf(f"ocsp-{algorithm}", ocsp_url=responder.url)
    responder.serve(fixed(_forge.ocsp_response(leaf.cert, pki.org.cert, signer, certificates=[signer.cert],
                                         status=ocsp.OCSPCertStatus.REVOKED)))
    result = await OCSPClient().status(leaf.cert, pki.org.cert)
    assert result.status is OCSPStatus.REVOKED and result.revocation_time is not None
    with pytest.raises(RevocationError, match=r"was revoked on .* \(OCSP http") as info:
        await OCSPClient().check(leaf.cert, pki.org.cert)
    assert info.value.requirement == "ECO.1.1.6"

    # The same response with one byte of its signature flipped does not verify.
    good = _forge.ocsp_response(leaf.cert, pki.org.cert, signer, certificates=[signer.cert])
    signature = ocsp.load_der_ocsp_response(good).signature
    at = good.index(signature) + len(signature) // 2
    tampered = bytearray(good)
    tampered[at] ^= 0x01
    responder.serve(fixed(bytes(tampered)))
    with pytest.raises(RevocationError, match="signature does not verify"):
        await OCSPClient().status(leaf.cert, pki.org.cert)


async def test_an_unsupported_signer_key_is_refused(pki: MiniPKI, responder: Responder) -> None:
    signer = delegated(pki, "ocsp dsa", key=dsa.generate_private_key(key_size=2048))
    leaf = pki.leaf("ocsp-dsa", ocsp_url=responder.url)
    responder.serve(fixed(_forge.ocsp_response(leaf.cert, pki.org.cert, signer, certificates=[signer.cert])))
    with pytest.raises(RevocationError, match="unsupported algorithm") as info:
        await OCSPClient().status(leaf.cert, pki.org.cert)
    assert info.value.requirement == "RFC 6960 §4.2.1"


async def test_delegated_responders_that_do_not_qualify(pki: MiniPKI, responder: Responder) -> None:
    leaf = pki.leaf("ocsp-unqualified", ocsp_url=responder.url)
    client = OCSPClient()

    async def refused(signer: Issued, certificates: list[x509.Certificate], message: str) -> None:
        responder.serve(fixed(_forge.ocsp_response(leaf.cert, pki.org.cert, signer, certificates=certificates)))
        with pytest.raises(RevocationError, match=message) as info:
            await client.status(leaf.cert, pki.org.cert)
        assert (info.value.requirement or "").startswith("RFC 6960")

    # Named in the CA's name, but signed by another key (§4.2.2.2).
    impostor = _forge.certificate(_forge.name("ocsp impostor"), pki.org.cert.subject, _forge.ca("other").key,
                                  extensions=[_OCSP_SIGNING])
    await refused(impostor, [impostor.cert], "not signed by the CA")
    # Issued by the CA, with no extendedKeyUsage at all.
    bare = delegated(pki, "ocsp bare", extensions=())
    await refused(bare, [bare.cert], "lacks id-kp-OCSPSigning")
    # Issued by the CA for OCSP, but expired.
    expired = delegated(pki, "ocsp expired", not_after=timedelta(days=-1))
    await refused(expired, [expired.cert], "not valid now")
    # The responder's certificate is not in the response: nothing vouches for its key.
    missing = delegated(pki, "ocsp missing")
    await refused(missing, [], "unauthorised responder")
    await refused(missing, [bare.cert], "unauthorised responder")


async def test_the_responder_certificate_is_found_among_others(pki: MiniPKI, responder: Responder) -> None:
    leaf = pki.leaf("ocsp-among", ocsp_url=responder.url)
    signer = delegated(pki, "ocsp among")
    unrelated = delegated(pki, "ocsp unrelated")
    both = [unrelated.cert, signer.cert]
    responder.serve(fixed(_forge.ocsp_response(leaf.cert, pki.org.cert, signer, certificates=both)))
    assert (await OCSPClient().status(leaf.cert, pki.org.cert)).status is OCSPStatus.GOOD


async def test_a_sha256_cert_id_is_recomputed(pki: MiniPKI, responder: Responder) -> None:
    # We ask with SHA-1 (RFC 6960 §4.1.1); a responder may answer with another hash.
    leaf = pki.leaf("ocsp-sha256", ocsp_url=responder.url)
    responder.serve(fixed(_forge.ocsp_response(leaf.cert, pki.org.cert, pki.org, cert_id_hash=hashes.SHA256())))
    assert (await OCSPClient().status(leaf.cert, pki.org.cert)).status is OCSPStatus.GOOD
    other = pki.leaf("ocsp-sha256-other")
    responder.serve(fixed(_forge.ocsp_response(other.cert, pki.org.cert, pki.org, cert_id_hash=hashes.SHA256())))
    with pytest.raises(RevocationError, match="another certificate"):
        await OCSPClient().status(leaf.cert, pki.org.cert)


async def test_nonce_missing_from_the_answer_is_refused(pki: MiniPKI, responder: Responder) -> None:
    leaf = pki.leaf("ocsp-no-nonce", ocsp_url=responder.url)
    responder.serve(fixed(pki.ocsp_response(leaf.cert)))  # no nonce extension at all
    with pytest.raises(RevocationError, match="echo our nonce") as info:
        await OCSPClient(nonce=True).status(leaf.cert, pki.org.cert)
    assert info.value.requirement == "RFC 6960 §4.4.1"
    assert (await OCSPClient(nonce=False).status(leaf.cert, pki.org.cert)).status is OCSPStatus.GOOD


async def test_the_answer_cache_is_bounded(pki: MiniPKI, responder: Responder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ocsp, "_CACHE_LIMIT", 2)
    leaves = [pki.leaf(f"ocsp-bound-{i}", ocsp_url=responder.url) for i in range(3)]
    answers = {leaf.cert.serial_number: pki.ocsp_response(leaf.cert) for leaf in leaves}
    responder.serve(lambda body: answers[ocsp.load_der_ocsp_request(body).serial_number])
    client = OCSPClient()
    for leaf in leaves:
        await client.check(leaf.cert, pki.org.cert)
    assert len(responder.requests) == 3
    await client.check(leaves[2].cert, pki.org.cert)  # still cached
    await client.check(leaves[1].cert, pki.org.cert)  # still cached
    assert len(responder.requests) == 3
    await client.check(leaves[0].cert, pki.org.cert)  # the oldest was evicted: asked again
    assert len(responder.requests) == 4


async def test_a_certificate_naming_no_responder_has_no_ocsp_answer(pki: MiniPKI) -> None:
    with pytest.raises(RevocationError, match="names no OCSP responder") as info:
        await OCSPClient().status(pki.leaf("ocsp-none").cert, pki.org.cert)
    assert info.value.requirement == "RFC 6960 §3.1"
