"""Certificate and CRL builders for the IGC Santé-shaped profiles (psc-igc.md §4.2, §4.3).

Pure functions: keys, names, dates and URLs come in, signed objects come out. Nothing here
touches the disk or reads a clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from mssante.sandbox.pki import names

#: RSA sizes. IGC Santé CAs are RSA 4096 (psc-igc.md §4.2), but one 4096-bit key took ~0.65 s
#: on average on the 2 shared cores (idle), with a long tail, and a fresh state needs two.
#: 3072-bit CAs took 0.25 s each idle, 0.34 s median / 0.68 s max at load 2, so a fresh state
#: (2 CA keys + the server key + signatures) stays under ~2 s. Leaves are RSA 2048 as in §4.3.
CA_KEY_BITS = 3072
LEAF_KEY_BITS = 2048

Profile = Literal["auth_cli", "sign", "server"]

_CA_VALIDITY = timedelta(days=20 * 365 + 5)  # IGC Santé CAs: 2013-06-25 -> 2033-06-25 (§4.2)
_BACKDATE = timedelta(minutes=5)  # tolerate small clock skew between sandbox processes


def new_key(bits: int = LEAF_KEY_BITS) -> rsa.RSAPrivateKey:
    """Generate an RSA key (e = 65537)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def add_years(moment: datetime, years: int) -> datetime:
    """Return ``moment`` plus calendar years (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _second(moment: datetime) -> datetime:
    # X.509 times have one-second precision (RFC 5280 §4.1.2.5.1); keep stored dates comparable.
    return moment.replace(microsecond=0)


def _policies(base_url: str | None, oid: x509.ObjectIdentifier) -> x509.CertificatePolicies:
    qualifiers: list[str | x509.UserNotice] | None = [names.cps_url(base_url)] if base_url else None
    return x509.CertificatePolicies([x509.PolicyInformation(oid, qualifiers)])


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
    )


def build_ca(
    *,
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    now: datetime,
    base_url: str | None,
    serial: int | None = None,
) -> x509.Certificate:
    """Build a CA certificate: self-signed root when ``issuer`` is None, else an intermediate.

    Extensions as IGC Santé's CAs (psc-igc.md §4.2): basicConstraints critical CA:TRUE
    (intermediates ``pathlen:0``, RFC 5280 §4.2.1.9); keyUsage critical keyCertSign+cRLSign
    (§4.2.1.3); certificatePolicies anyPolicy with a CPS URI; SKI/AKI (§4.2.1.1-2); the
    intermediate's CRL DP points at the root's CRL, a root has none.
    """
    issuer_name = issuer[0].subject if issuer else subject
    signing_key = issuer[1] if issuer else key
    start = _second(now - _BACKDATE)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0 if issuer else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_policies(base_url, x509.oid.CertificatePoliciesOID.ANY_POLICY), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
        if base_url:
            builder = builder.add_extension(_crl_dp(names.crl_url(base_url, names.ROOT_FILE)), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


@dataclass(frozen=True)
class LeafSpec:
    """What a leaf certificate says; the issuer adds its own name, keys and URLs."""

    profile: Profile
    subject: x509.Name
    not_before: datetime
    not_after: datetime
    dns_names: Sequence[str] = ()
    ip_addresses: Sequence[str] = ()


def _key_usage(profile: Profile) -> x509.KeyUsage:
    # psc-igc.md §4.3: SIGN = digitalSignature+nonRepudiation; SSL_SERV = digitalSignature+
    # keyEncipherment; AUTH_CLI (no sample, [I]) = digitalSignature.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=profile == "sign",
        key_encipherment=profile == "server",
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


_EKU: dict[Profile, list[x509.ObjectIdentifier]] = {
    "auth_cli": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "sign": [ExtendedKeyUsageOID.EMAIL_PROTECTION],
    # Real SSL_SERV also has clientAuth (§4.3); the sandbox server cert is serverAuth only, so
    # it can never pass for an AUTH_CLI client certificate.
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
}


def build_leaf(
    spec: LeafSpec,
    public_key: rsa.RSAPublicKey,
    *,
    issuer_cert: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    issuer_file: str | None,
    base_url: str | None,
    claimed_issuer_key: rsa.RSAPublicKey | None = None,
) -> x509.Certificate:
    """Build and sign a leaf certificate of the given IGC Santé-like profile.

    ``claimed_issuer_key`` forges the AKI (negative tests only): the certificate then points
    at that key's CA although ``issuer_key`` signed it.

    Extension set of IGC Santé ORG/SERV leaves (psc-igc.md §4.3): basicConstraints CA:FALSE
    (non-critical), SKI, AKI, keyUsage **critical**, certificatePolicies, extendedKeyUsage
    (non-critical), CRL DP and AIA caIssuers when ``base_url``/``issuer_file`` are given, SAN
    for servers. Not reproduced: OCSP in AIA (the sandbox runs no responder), Freshest CRL
    (delta CRLs over LDAP), the private extension 1.2.250.1.71.1.2.5 of unknown meaning, and
    Private Key Usage Period.
    """
    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())  # RFC 5280 §4.1.2.2: positive, <= 20 octets
        .not_valid_before(_second(spec.not_before))
        .not_valid_after(_second(spec.not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(claimed_issuer_key or issuer_key.public_key()),
            critical=False,
        )
        .add_extension(_key_usage(spec.profile), critical=True)
        .add_extension(_policies(None, names.LEAF_POLICY_OID), critical=False)
        .add_extension(x509.ExtendedKeyUsage(_EKU[spec.profile]), critical=False)
    )
    if base_url and issuer_file:
        builder = builder.add_extension(_crl_dp(names.crl_url(base_url, issuer_file)), critical=False)
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(names.ca_issuers_url(base_url, issuer_file)),
                    )
                ]
            ),
            critical=False,
        )
    general: list[x509.GeneralName] = [x509.DNSName(n) for n in spec.dns_names]
    general += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses]
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked serial as it goes in a CRL."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None


def build_crl(
    *,
    issuer_cert: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    revoked: Sequence[RevokedEntry],
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    """Build a full CRL (v2) signed by the issuing CA.

    RFC 5280 §5.1.2.4-5 thisUpdate/nextUpdate; §5.2.1 AKI and §5.2.3 cRLNumber (both required
    for conforming CAs); §5.3.1 reasonCode only when not ``unspecified``.
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(_second(this_update))
        .next_update(_second(next_update))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    for entry in revoked:
        item = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(_second(entry.revoked_at))
        if entry.reason is not None and entry.reason is not x509.ReasonFlags.unspecified:
            item = item.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(issuer_key, hashes.SHA256())


def server_subject(common_name: str) -> x509.Name:
    """Subject of the sandbox server certificate, SERV-style (``C, ST, O, OU, CN``; §4.3)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Paris (75)"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MSSANTE SANDBOX OPERATOR"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, names.SANDBOX_OPERATOR_ID),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[: names.UB_COMMON_NAME]),
        ]
    )
