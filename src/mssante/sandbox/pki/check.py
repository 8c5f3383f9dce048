"""Check an ORG AUTH_CLI client certificate against the sandbox ORG CA and its CRL.

:func:`verify_client_certificate` is pure (certificate, CA, CRL and time in; identity or error
out), so the AUTH_CLI front can call it at the SASL step on the DER the TLS layer saw, and
tests can call it with any clock.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mssante.errors import CertificateError, RevocationError, UsageError

__all__ = ["ClientIdentity", "verify_client_certificate"]

_PROFILE = "IGC Santé ORG AUTH_CLI profile (psc-igc.md §4.3)"


@dataclass(frozen=True, kw_only=True)
class ClientIdentity:
    """The subject of a verified ORG AUTH_CLI certificate.

    Attributes:
        country: ``C`` (always ``FR`` for IGC Santé).
        state: ``ST``, the département label, e.g. ``Paris (75)``; may be empty.
        organization: ``O``, the structure's raison sociale (truncated to 64 by the CA).
        structure_id: ``OU``, the IdNat_Struct: what an operator maps to the structure's BALs.
        common_name: ``CN``, free text naming the software or service.
        serial: the certificate serial number.
        not_after: end of validity (UTC).
        fingerprint_sha256: lowercase hex SHA-256 of the DER certificate.
        subject: the RFC 4514 string of the subject (reversed order, ``CN=...,C=FR``).
    """

    country: str
    state: str
    organization: str
    structure_id: str
    common_name: str
    serial: int
    not_after: datetime
    fingerprint_sha256: str
    subject: str


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    if len(values) > 1:
        raise CertificateError(
            f"client certificate subject has {len(values)} {oid._name} attributes", requirement=_PROFILE
        )
    value = values[0].value if values else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _check_chain(cert: x509.Certificate, org_ca: x509.Certificate) -> None:
    # RFC 5280 §6.1.3 (a)(1) signature and (a)(4) issuer name chaining; the ORG CA itself is
    # a trust anchor of the sandbox (it chains to the root, checked when the PKI is loaded).
    if cert.issuer != org_ca.subject:
        raise CertificateError(
            f"client certificate is issued by {cert.issuer.rfc4514_string()!r}, not by the sandbox ORG CA "
            f"{org_ca.subject.rfc4514_string()!r}",
            requirement="RFC 5280 §6.1.3",
        )
    try:
        cert.verify_directly_issued_by(org_ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateError(
            "client certificate names the sandbox ORG CA as issuer but its signature does not verify with the CA key",
            requirement="RFC 5280 §6.1.3",
        ) from exc


def _check_dates(cert: x509.Certificate, org_ca: x509.Certificate, now: datetime) -> None:
    for what, c in (("client certificate", cert), ("ORG CA certificate", org_ca)):
        if now < c.not_valid_before_utc:
            raise CertificateError(
                f"{what} is not valid before {c.not_valid_before_utc.isoformat()}", requirement="RFC 5280 §4.1.2.5"
            )
        if now > c.not_valid_after_utc:
            raise CertificateError(
                f"{what} expired on {c.not_valid_after_utc.isoformat()}", requirement="RFC 5280 §4.1.2.5"
            )


def _check_usage(cert: x509.Certificate) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is not None and bc.ca:
        raise CertificateError("client certificate is a CA certificate", requirement="RFC 5280 §4.2.1.9")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateError(
            "client certificate has no extendedKeyUsage; an AUTH_CLI certificate has clientAuth",
            requirement=_PROFILE,
        ) from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        usages = ", ".join(u._name for u in eku) or "none"
        raise CertificateError(
            f"client certificate extendedKeyUsage lacks clientAuth (has: {usages}); use the ORG AUTH_CLI "
            "certificate, not a SIGN or server one",
            requirement="RFC 5280 §4.2.1.12",
        )
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.digital_signature:
        raise CertificateError(
            "client certificate keyUsage lacks digitalSignature, needed to sign the TLS handshake",
            requirement="RFC 5280 §4.2.1.3",
        )


def _check_crl(
    cert: x509.Certificate, org_ca: x509.Certificate, crl: x509.CertificateRevocationList, now: datetime
) -> None:
    # RFC 5280 §6.3.3: the CRL must come from the certificate's issuer, verify with its key and
    # be current; otherwise revocation status is unknown and we fail closed.
    public_key = org_ca.public_key()
    if crl.issuer != org_ca.subject or not isinstance(public_key, rsa.RSAPublicKey):
        raise RevocationError(
            "the CRL is not issued by the ORG CA; revocation status unknown", requirement="RFC 5280 §6.3.3"
        )
    if not crl.is_signature_valid(public_key):
        raise RevocationError("the ORG CA CRL signature does not verify; revocation status unknown",
                              requirement="RFC 5280 §6.3.3")
    next_update = crl.next_update_utc
    if next_update is None or now > next_update:
        raise RevocationError(
            f"the ORG CA CRL is stale (nextUpdate {next_update.isoformat() if next_update else 'absent'}); "
            "revocation status unknown",
            requirement="RFC 5280 §6.3.3",
        )
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is not None:
        reason = ""
        with contextlib.suppress(x509.ExtensionNotFound):
            reason = f", reason {entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value}"
        raise RevocationError(
            f"client certificate serial {cert.serial_number:X} was revoked on "
            f"{entry.revocation_date_utc.isoformat()}{reason}",
            requirement="RFC 5280 §6.3.3",
        )


def verify_client_certificate(
    der: bytes,
    *,
    org_ca: x509.Certificate,
    crl: x509.CertificateRevocationList,
    now: datetime | None = None,
) -> ClientIdentity:
    """Verify an ORG AUTH_CLI client certificate and return its subject.

    Checks, in order: DER parses; issued and signed by ``org_ca``; ``now`` within the validity
    of the certificate and of the CA; not a CA; extendedKeyUsage contains clientAuth and
    keyUsage (if present) digitalSignature; ``crl`` is the CA's, verifies and is current, and
    does not list the serial; the subject has ``OU`` (structure id) and ``CN``.

    Raises:
        UsageError: ``now`` is a naive datetime.
        CertificateError: unparsable, wrong issuer or signature, outside its validity, wrong
            key usage, or a subject without OU/CN.
        RevocationError: the certificate is revoked, or the CRL is unusable (fail closed).
    """
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise UsageError("now must be a timezone-aware datetime")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateError("client certificate is not a DER X.509 certificate") from exc
    _check_chain(cert, org_ca)
    _check_dates(cert, org_ca, moment)
    _check_usage(cert)
    _check_crl(cert, org_ca, crl, moment)
    subject = cert.subject
    identity = ClientIdentity(
        country=_attr(subject, NameOID.COUNTRY_NAME),
        state=_attr(subject, NameOID.STATE_OR_PROVINCE_NAME),
        organization=_attr(subject, NameOID.ORGANIZATION_NAME),
        structure_id=_attr(subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        common_name=_attr(subject, NameOID.COMMON_NAME),
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        subject=subject.rfc4514_string(),
    )
    if not identity.structure_id or not identity.common_name:
        raise CertificateError(
            "client certificate subject needs OU (IdNat_Struct) and CN", requirement=_PROFILE
        )
    return identity
