"""Small value types returned by :class:`~mssante.sandbox.pki.TestPKI`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mssante.errors import ConfigError, UsageError

__all__ = ["CertRecord", "Clock", "IssuedCert", "Revocation", "parse_reason", "system_clock"]

#: A clock returns the current time as an aware UTC datetime; tests inject a fixed one.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Return the current UTC time."""
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class IssuedCert:
    """A certificate and its key in the state directory.

    Attributes:
        cert_path: PEM of the certificate alone (leaf).
        key_path: PEM PKCS#8 private key, mode 0600.
        serial: serial number.
        kind: ``auth_cli``, ``server``, ``expired``, ``foreign``, ``impostor``, ``no_clientauth``, ``revoked``.
        issuer_path: PEM of the issuing CA certificate.
    """

    cert_path: Path
    key_path: Path
    serial: int
    kind: str
    issuer_path: Path

    def certificate(self) -> x509.Certificate:
        """Load the certificate.

        Raises:
            ConfigError: the file is missing or not a PEM certificate.
        """
        try:
            return x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load certificate {self.cert_path}") from exc

    def der(self) -> bytes:
        """Return the DER encoding of the certificate (what a TLS peer sees).

        Raises:
            ConfigError: the file is missing or not a PEM certificate.
        """
        return self.certificate().public_bytes(Encoding.DER)


@dataclass(frozen=True, kw_only=True)
class Revocation:
    """Outcome of :meth:`TestPKI.revoke`.

    Attributes:
        serial: the revoked serial.
        revoked_at: revocation date written in the CRL.
        reason: CRL reason code name (``keyCompromise``...) or None.
        newly_revoked: False when it was already revoked (nothing changed).
    """

    serial: int
    revoked_at: datetime
    reason: str | None
    newly_revoked: bool


@dataclass(frozen=True, kw_only=True)
class CertRecord:
    """One entry of the PKI index, for listings (``mssante sandbox pki show``)."""

    serial: int
    kind: str
    subject: str
    issuer: str
    not_after: datetime
    cert_path: Path
    revoked_at: datetime | None
    reason: str | None


def parse_reason(reason: str | x509.ReasonFlags | None) -> x509.ReasonFlags | None:
    """Turn a CRL reason name (RFC 5280 §5.3.1, e.g. ``keyCompromise``) into a flag.

    ``removeFromCRL`` is refused: it only exists in delta CRLs, which the sandbox does not issue.

    Raises:
        UsageError: unknown reason name, or ``removeFromCRL``.
    """
    if reason is None or isinstance(reason, x509.ReasonFlags):
        flag = reason
    else:
        by_name = {f.value.lower(): f for f in x509.ReasonFlags}
        flag = by_name.get(reason.replace("_", "").replace("-", "").lower())
        if flag is None:
            raise UsageError(
                f"unknown revocation reason {reason!r}; one of: "
                + ", ".join(f.value for f in x509.ReasonFlags if f is not x509.ReasonFlags.remove_from_crl),
                requirement="RFC 5280 §5.3.1",
            )
    if flag is x509.ReasonFlags.remove_from_crl:
        raise UsageError("removeFromCRL is only for delta CRLs", requirement="RFC 5280 §5.3.1")
    return flag
