"""Map ``ssl`` and socket exceptions to the mssante error tree, at the boundary."""

from __future__ import annotations

import builtins
import ssl
from typing import Final

from mssante.errors import (
    CertificateError,
    ConnectError,
    ConnectionClosed,
    MssanteError,
    RevocationError,
    TimeoutError,
    TrustError,
)

__all__ = ["map_ssl_error"]

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h) that say *why* a chain failed.
_REVOKED: Final = 23  # X509_V_ERR_CERT_REVOKED
_CRL_CODES: Final = frozenset({3, 8, 11, 12, 15, 16, 33, 35, 36, 44, 45})  # unable to get/verify CRL, CRL expired…
_EXPIRED: Final = frozenset({9, 10})  # not yet valid, has expired
_UNKNOWN_CA: Final = frozenset({2, 18, 19, 20, 21, 24})  # no issuer, self-signed, not a CA…
_HOSTNAME: Final = frozenset({62, 63, 64})  # host name, e-mail, IP address mismatch

# TLS alerts the *peer* sent about our client certificate (library "SSL", reason names).
_PEER_REFUSED_OUR_CERT: Final = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
    }
)
_VERSION_OR_CIPHER: Final = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "NO_PROTOCOLS_AVAILABLE",
        "WRONG_VERSION_NUMBER",
        "NO_SHARED_CIPHER",
        "NO_CIPHERS_AVAILABLE",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_INSUFFICIENT_SECURITY",
    }
)


def _verify_error(exc: ssl.SSLCertVerificationError) -> TrustError:
    code = exc.verify_code
    message = exc.verify_message or str(exc)
    if code == _REVOKED:
        return RevocationError(f"server certificate revoked: {message}", requirement="ECO.1.1.6")
    if code in _CRL_CODES:
        return RevocationError(f"revocation could not be checked: {message}", requirement="ECO.1.1.7")
    if code in _EXPIRED:
        return CertificateError(f"server certificate not valid now: {message}", requirement="ECO.1.1.5")
    if code in _UNKNOWN_CA:
        return CertificateError(f"server certificate from an untrusted CA: {message}", requirement="ECO.1.1.10")
    if code in _HOSTNAME:
        return CertificateError(f"server certificate does not name this host: {message}", requirement="RFC 6125 §6")
    return CertificateError(f"server certificate did not verify: {message}")


def map_ssl_error(exc: BaseException) -> MssanteError:
    """Translate an exception from a TLS handshake or TLS I/O into our error tree.

    Use it at the boundary: ``except (ssl.SSLError, OSError) as exc: raise map_ssl_error(exc) from exc``.
    An exception that already is a :class:`~mssante.errors.MssanteError` is returned unchanged.

    * ``ssl.SSLCertVerificationError`` → :class:`~mssante.errors.CertificateError` carrying
      OpenSSL's verify message (unknown CA, expired, host name mismatch), or
      :class:`~mssante.errors.RevocationError` for revoked / CRL failures;
    * a TLS alert refusing our client certificate → ``CertificateError``;
    * a TLS alert about a revoked client certificate → ``RevocationError``;
    * version or cipher mismatch (ECO.1.1.1, ECO.1.1.3) and other ``ssl.SSLError`` → :class:`TrustError`;
    * EOF or reset during TLS → :class:`~mssante.errors.ConnectionClosed`; timeouts →
      :class:`~mssante.errors.TimeoutError`; other ``OSError`` → :class:`~mssante.errors.ConnectError`.

    Returns:
        The mapped error, to be raised by the caller (``raise ... from exc``).

    Raises:
        Nothing: this function returns the error instead of raising it.
    """
    if isinstance(exc, MssanteError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _verify_error(exc)
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return ConnectionClosed(f"TLS connection closed by the peer: {exc}")
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or ""
        if reason == "SSLV3_ALERT_CERTIFICATE_REVOKED":
            return RevocationError("the server says our client certificate is revoked", requirement="ECO.1.1.6")
        if reason in _PEER_REFUSED_OUR_CERT:
            return CertificateError(f"the server refused our client certificate ({reason})")
        if reason in _VERSION_OR_CIPHER:
            return TrustError(f"no common TLS version or cipher suite ({reason})", requirement="ECO.1.1.1")
        return TrustError(f"TLS failed: {reason or exc}")
    if isinstance(exc, builtins.TimeoutError):  # also asyncio.TimeoutError on 3.11
        return TimeoutError(f"TLS timed out: {exc}")
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError | EOFError):
        return ConnectionClosed(f"connection closed during TLS: {exc}")
    if isinstance(exc, OSError):
        return ConnectError(f"connection failed: {exc}")
    return TrustError(f"TLS failed: {type(exc).__name__}")
