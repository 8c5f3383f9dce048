"""The CA bundle as certificate objects, to rebuild a peer chain after the TLS handshake.

Python 3.11's ``ssl`` gives only the peer's leaf (``getpeercert(binary_form=True)``);
``get_verified_chain`` arrives in 3.13. The chain is rebuilt here from the same bundle the
handshake trusted, by subject/issuer name and signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mssante.errors import CertificateError, ConfigError

__all__ = ["CABundle"]

_MAX_DEPTH: Final = 8  # IGC Santé chains have 3 certificates (root, ORG CA, leaf)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class CABundle:
    """Trust anchors and intermediates, as parsed certificates."""

    def __init__(self, certificates: Iterable[x509.Certificate]) -> None:
        """Hold ``certificates`` (roots and intermediate CAs).

        Raises:
            ConfigError: the bundle is empty.
        """
        self.certificates: tuple[x509.Certificate, ...] = tuple(certificates)
        if not self.certificates:
            raise ConfigError("the CA bundle holds no certificate")

    @classmethod
    def from_pem(cls, data: bytes) -> CABundle:
        """Parse a PEM bundle.

        Raises:
            ConfigError: not PEM certificates, or none.
        """
        try:
            return cls(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise ConfigError(f"the CA bundle is not valid PEM: {exc}") from exc

    @classmethod
    def from_file(cls, path: Path) -> CABundle:
        """Read a PEM bundle file (e.g. the IGC Santé CAs).

        Raises:
            ConfigError: the file cannot be read or holds no PEM certificate.
        """
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the CA bundle {path}: {exc.strerror}") from exc
        return cls.from_pem(data)

    def find_issuer(self, cert: x509.Certificate, extra: Sequence[x509.Certificate] = ()) -> x509.Certificate | None:
        """Return the CA among ``extra`` then the bundle that signed ``cert``, or None."""
        for ca in (*extra, *self.certificates):
            if ca != cert and _issued_by(cert, ca):
                return ca
        return None

    def is_anchor(self, cert: x509.Certificate) -> bool:
        """True when ``cert`` is in the bundle and self-issued (a root)."""
        return cert in self.certificates and cert.issuer == cert.subject

    def chain(self, leaf: x509.Certificate, extra: Sequence[x509.Certificate] = ()) -> list[x509.Certificate]:
        """Rebuild ``leaf → intermediates → anchor`` (leaf first).

        ``extra`` holds intermediates sent by the peer, which are used but never trusted on
        their own: the chain must end at a certificate of the bundle.

        Raises:
            CertificateError: no path to a certificate of the bundle (unknown CA).
        """
        chain = [leaf]
        current = leaf
        for _ in range(_MAX_DEPTH):
            if self.is_anchor(current):
                return chain
            issuer = self.find_issuer(current, extra)
            if issuer is None:
                if current is not leaf and current in self.certificates:
                    return chain  # an intermediate of the bundle, trusted as a partial chain
                raise CertificateError(
                    f"no issuer of {current.subject.rfc4514_string()} in the CA bundle", requirement="ECO.1.1.10"
                )
            if issuer in chain:
                raise CertificateError("certificate chain loops")
            chain.append(issuer)
            current = issuer
        raise CertificateError("certificate chain too long")
