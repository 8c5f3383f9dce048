"""Odd certificates, CRLs and OCSP responses the regular test PKI does not issue (edge cases of trust).

Each helper builds a real, signed object with ``cryptography``; what makes it odd is named in the
arguments (a CA without keyUsage, a delta CRL, a responder certificate without EKU, an Ed25519 or
DSA signer...).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from tests.trust._pki import NOW, Issued

AnyKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | dsa.DSAPrivateKey


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MSSANTE FORGE"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issued(cert: x509.Certificate, key: AnyKey) -> Issued:
    """An :class:`Issued` that lives in memory only (its paths are never read)."""
    return Issued(cert, key, cert_path=None, key_path=None)  # type: ignore[arg-type]


def certificate(
    subject: x509.Name,
    issuer_name: x509.Name,
    signer: AnyKey,
    *,
    key: AnyKey | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
    not_before: timedelta = timedelta(days=-1),
    not_after: timedelta = timedelta(days=30),
) -> Issued:
    """A certificate for ``key`` (new P-256 key by default) named ``subject``, signed by ``signer``."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + not_before)
        .not_valid_after(NOW + not_after)
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return issued(builder.sign(signer, algorithm), key)


def ca(cn: str, *, parent: Issued | None = None, crl_sign: bool | None = True) -> Issued:
    """A CA; ``crl_sign=None`` leaves keyUsage out entirely, ``False`` sets it without cRLSign."""
    key = ec.generate_private_key(ec.SECP256R1())
    extensions: list[x509.ExtensionType] = [x509.BasicConstraints(ca=True, path_length=None)]
    if crl_sign is not None:
        extensions.append(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=crl_sign, encipher_only=False, decipher_only=False,
        ))
    issuer_name = parent.cert.subject if parent else name(cn)
    return certificate(name(cn), issuer_name, parent.key if parent else key, key=key, extensions=extensions)


def crl(
    issuer: Issued,
    *,
    this_update: timedelta = timedelta(hours=-1),
    next_update: timedelta = timedelta(days=7),
    delta: bool = False,
    revoked: Sequence[x509.Certificate] = (),
) -> bytes:
    """A DER CRL signed by ``issuer``; ``delta`` adds a DeltaCRLIndicator (RFC 5280 §5.2.4)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(NOW + this_update)
        .next_update(NOW + next_update)
    )
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(1), critical=True)
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(NOW).build()
        )
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def ocsp_response(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    signer: Issued,
    *,
    certificates: Sequence[x509.Certificate] = (),
    cert_id_hash: hashes.HashAlgorithm | None = None,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
) -> bytes:
    """A response about ``cert`` whose ResponderID names ``signer`` (by key hash), signed by its key."""
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer, algorithm=cert_id_hash or hashes.SHA1(), cert_status=status,
        this_update=NOW - timedelta(minutes=5), next_update=NOW + timedelta(hours=1),
        revocation_time=NOW - timedelta(minutes=30) if status is ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    if certificates:
        builder = builder.certificates(list(certificates))
    key: AnyKey = signer.key  # Issued says EC or RSA; forged responders may hold Ed25519 or DSA keys
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)
