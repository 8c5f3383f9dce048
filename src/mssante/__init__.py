"""mssante: exchange documents over MSSanté through the API LPS.

The toolkit has four parts:

* the client library (discovery, trust, IMAP/SMTP, SASL, session supervisor, traces);
* messages and IHE XDM archives (:mod:`mssante.message`, :mod:`mssante.xdm`);
* a Pro Santé Connect relying party and the intermediate server (:mod:`mssante.psc`, ``mssante[bridge]``);
* the sandbox operator and the conformance suite (``mssante[sandbox]``).

This module re-exports only the curated public API; a test checks ``__all__``.
"""

from mssante._version import __version__
from mssante.errors import (
    AuthError,
    AuthUnavailable,
    CertificateError,
    CommandFailed,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    ContentError,
    DiscoveryError,
    LimitError,
    LocalProtocolError,
    MssanteError,
    NotAuthorized,
    ProtocolError,
    PSCError,
    RemoteProtocolError,
    RevocationError,
    StartTLSError,
    TimeoutError,
    TokenRejected,
    TransportError,
    TrustError,
    UnsafeContentError,
    UsageError,
)
from mssante.secret import Secret

__all__ = [
    "AuthError",
    "AuthUnavailable",
    "CertificateError",
    "CommandFailed",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "ContentError",
    "DiscoveryError",
    "LimitError",
    "LocalProtocolError",
    "MssanteError",
    "NotAuthorized",
    "PSCError",
    "ProtocolError",
    "RemoteProtocolError",
    "RevocationError",
    "Secret",
    "StartTLSError",
    "TimeoutError",
    "TokenRejected",
    "TransportError",
    "TrustError",
    "UnsafeContentError",
    "UsageError",
    "__version__",
]
