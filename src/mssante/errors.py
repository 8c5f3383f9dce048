"""The one error tree of mssante.

Every exception that mssante raises on purpose derives from :class:`MssanteError`.
Each error says *whose fault* it is (``fault``) so that an application, the CLI or the
conformance suite can react without parsing messages:

=============  ============================================================
``fault``      meaning
=============  ============================================================
``caller``     the code using mssante passed something wrong (fix the code)
``config``     a setting or file given by the user is wrong (fix the config)
``input``      data received or read is invalid (a message, an archive, XML)
``peer``       the remote server or client broke a rule, or refused us
``network``    the network failed (connect, timeout, closed connection)
``trust``      a certificate or TLS check failed (chain, host, expiry, CRL)
=============  ============================================================

::

    MssanteError
    ├── UsageError                   caller   bad argument or call sequence
    │   └── ConfigError              config   bad setting, file or path
    ├── TransportError               network
    │   ├── ConnectError
    │   ├── TimeoutError
    │   └── ConnectionClosed
    ├── TrustError                   trust    TLS and certificate checks
    │   ├── CertificateError         chain, host name, expiry, key usage
    │   ├── RevocationError          revoked, or no valid CRL (fail closed)
    │   └── StartTLSError            STARTTLS missing, stripped or tampered with
    ├── DiscoveryError               peer     no usable DNS SRV record
    ├── AuthError                    peer     the server refused authentication
    │   ├── TokenRejected            [AUTHENTICATIONFAILED] / 535 5.7.8
    │   ├── NotAuthorized            [AUTHORIZATIONFAILED] / 535 5.7.8 on the BAL
    │   └── AuthUnavailable          [UNAVAILABLE] / 454 4.7.0 (retry later)
    ├── ProtocolError                         abstract
    │   ├── LocalProtocolError       caller   we were about to break the protocol
    │   └── RemoteProtocolError      peer     the peer broke the protocol
    ├── CommandFailed                peer     a well-formed NO/BAD or 4xx/5xx reply
    ├── LimitError                   input    a configured size or count limit was hit
    │   └── PeerLimitError           peer     ...by what a server sent (flood, huge literal)
    ├── ContentError                 input    invalid message, archive, XML or CDA
    │   └── UnsafeContentError       input    DTD, entity, traversal, bomb: refused
    └── PSCError                     peer     OAuth/OIDC error answer (``error`` code)

Foreign exceptions (``ssl``, ``OSError``, dnspython, httpx, zipfile, XML parsers) are
mapped to this tree at the boundary with ``raise ... from exc``.

The CLI maps each family to an exit code (:attr:`MssanteError.exit_code`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

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
    "Fault",
    "LimitError",
    "LocalProtocolError",
    "MssanteError",
    "NotAuthorized",
    "PSCError",
    "PeerLimitError",
    "ProtocolError",
    "RemoteProtocolError",
    "RevocationError",
    "StartTLSError",
    "TimeoutError",
    "TokenRejected",
    "TransportError",
    "TrustError",
    "UnsafeContentError",
    "UsageError",
]

Fault = Literal["caller", "config", "input", "peer", "network", "trust"]


class MssanteError(Exception):
    """Root of every error mssante raises on purpose.

    Attributes:
        message: a one-line human explanation, safe to show to a user (never holds a secret).
        error: a short stable machine code such as ``"token_rejected"``.
        fault: whose fault this is, see the module docstring.
        requirement: the rule that was broken, when one applies (``"ECO.1.1.2"``, ``"RFC 3501 §6.2.1"``).
        imap_code: the IMAP response code sent by the server (RFC 5530), e.g. ``"AUTHENTICATIONFAILED"``.
        smtp_code: the SMTP reply code, e.g. ``535``.
        enhanced_code: the RFC 3463 enhanced status code, e.g. ``"5.7.8"``.
        auth_outcome: for a refused authentication, the :class:`mssante.wire.AuthOutcome` value
            the reply was read as (``"TOOBIG"``...), set by ``AuthOutcome.error``; else None.
    """

    fault: ClassVar[Fault] = "caller"
    error: ClassVar[str] = "mssante_error"
    exit_code: ClassVar[int] = 1
    auth_outcome: str | None = None

    def __init__(
        self,
        message: str,
        *,
        requirement: str | None = None,
        imap_code: str | None = None,
        smtp_code: int | None = None,
        enhanced_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.requirement = requirement
        self.imap_code = imap_code
        self.smtp_code = smtp_code
        self.enhanced_code = enhanced_code

    def __str__(self) -> str:
        parts = [self.message]
        codes = [c for c in (self.imap_code, self.smtp_code, self.enhanced_code) if c is not None]
        if codes:
            parts.append("(" + " ".join(str(c) for c in codes) + ")")
        if self.requirement:
            parts.append(f"[{self.requirement}]")
        return " ".join(parts)


class UsageError(MssanteError):
    """The caller used the API or the CLI wrongly."""

    fault: ClassVar[Fault] = "caller"
    error = "usage"
    exit_code = 2


class ConfigError(UsageError):
    """A setting, a configuration file or a path given by the user is wrong."""

    fault: ClassVar[Fault] = "config"
    error = "config"


class TransportError(MssanteError):
    """The network failed."""

    fault: ClassVar[Fault] = "network"
    error = "transport"
    exit_code = 3


class ConnectError(TransportError):
    """The connection could not be opened."""

    error = "connect"


class TimeoutError(TransportError):  # shadows the builtin on purpose, like httpx
    """An operation took longer than its configured timeout."""

    error = "timeout"


class ConnectionClosed(TransportError):
    """The peer closed the connection (or it was closed by us and then used)."""

    error = "closed"


class TrustError(MssanteError):
    """A TLS or certificate check failed; the connection is not trusted."""

    fault: ClassVar[Fault] = "trust"
    error = "trust"
    exit_code = 4


class CertificateError(TrustError):
    """The certificate chain, host name, validity dates or key usage did not verify."""

    error = "certificate"


class RevocationError(TrustError):
    """The certificate is revoked, or revocation could not be checked (fail closed)."""

    error = "revoked"


class StartTLSError(TrustError):
    """STARTTLS was not offered, failed, or the plaintext phase was tampered with."""

    error = "starttls"


class DiscoveryError(MssanteError):
    """DNS autoconfiguration (SRV records) gave no usable server."""

    fault: ClassVar[Fault] = "peer"
    error = "discovery"
    exit_code = 3


class AuthError(MssanteError):
    """The server refused authentication."""

    fault: ClassVar[Fault] = "peer"
    error = "auth"
    exit_code = 5


class TokenRejected(AuthError):
    """The credentials were rejected (``[AUTHENTICATIONFAILED]``, ``535 5.7.8``)."""

    error = "token_rejected"


class NotAuthorized(AuthError):
    """Authenticated, but not allowed on this BAL (``[AUTHORIZATIONFAILED]``)."""

    error = "not_authorized"


class AuthUnavailable(AuthError):
    """Authentication is temporarily impossible (``[UNAVAILABLE]``, ``454 4.7.0``)."""

    error = "auth_unavailable"


class ProtocolError(MssanteError):
    """A protocol rule was broken. Abstract: raise one of the two children."""

    error = "protocol"
    exit_code = 6

    def __init__(self, message: str, **kwargs: object) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError, not ProtocolError")
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class LocalProtocolError(ProtocolError):
    """We (the caller of mssante) tried to do something the protocol forbids."""

    fault: ClassVar[Fault] = "caller"
    error = "local_protocol"


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""

    fault: ClassVar[Fault] = "peer"
    error = "remote_protocol"


class CommandFailed(MssanteError):
    """The server answered a well-formed refusal (IMAP NO/BAD, SMTP 4xx/5xx)."""

    fault: ClassVar[Fault] = "peer"
    error = "command_failed"
    exit_code = 6


class LimitError(MssanteError):
    """A configured size or count limit was reached; nothing was silently truncated."""

    fault: ClassVar[Fault] = "input"
    error = "limit"
    exit_code = 7


class PeerLimitError(LimitError):
    """A server (or client) sent more than a limit allows: untagged data, a line, a literal.

    The connection cannot be resynchronised and is dropped; the peer is at fault.
    """

    fault: ClassVar[Fault] = "peer"
    error = "peer_limit"


class ContentError(MssanteError):
    """A message, an archive, an XML or a CDA document is invalid."""

    fault: ClassVar[Fault] = "input"
    error = "content"
    exit_code = 7


class UnsafeContentError(ContentError):
    """Content was refused as dangerous: DTD, external entity, path traversal, zip bomb."""

    error = "unsafe_content"


class PSCError(MssanteError):
    """Pro Santé Connect (or any OAuth/OIDC server) answered an error.

    Attributes:
        oauth_error: the OAuth ``error`` code (``invalid_grant``, ``authorization_pending``...).
    """

    fault: ClassVar[Fault] = "peer"
    error = "psc"
    exit_code = 5

    def __init__(self, message: str, *, oauth_error: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.oauth_error = oauth_error
