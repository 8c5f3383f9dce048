"""mssante: exchange documents over MSSanté through the API LPS.

The toolkit has four parts:

* the client library (discovery, trust, IMAP/SMTP, SASL, session supervisor, traces);
* messages and IHE XDM archives (:mod:`mssante.message`, :mod:`mssante.xdm`);
* a Pro Santé Connect relying party and the intermediate server (:mod:`mssante.psc`, ``mssante[bridge]``);
* the sandbox operator and the conformance suite (``mssante[sandbox]``).

This module re-exports only the curated public API; a test checks ``__all__``. The errors and
:class:`~mssante.secret.Secret` are imported at once; the rest (the names an LPS needs most, from
:mod:`mssante.client`, :mod:`mssante.message`, :mod:`mssante.xdm`, :mod:`mssante.discovery`,
:mod:`mssante.psc` and :mod:`mssante.credentials`) on first use, so ``import mssante`` and
``mssante --version`` stay fast and load no network stack::

    from mssante import Mailbox, Draft, discover   # imports mssante.client, mssante.message...
"""

import importlib as _importlib
import typing as _typing

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

if _typing.TYPE_CHECKING:  # the lazy names, for type checkers and IDEs (see _LAZY below)
    from mssante.client import Mailbox, MailboxOptions, SessionSupervisor, SyncMailbox, TrustSettings
    from mssante.credentials import CallbackTokenSource, ClientCertificate, StaticTokenSource
    from mssante.discovery import discover
    from mssante.message import Draft, PdfCompanion, Sender, check_message, compose_message, parse_message
    from mssante.psc import PSCClient, PSCSettings
    from mssante.xdm import build_archive, read_archive, validate_archive

#: public name -> module it is imported from on first access.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Mailbox", "SyncMailbox", "SessionSupervisor", "TrustSettings", "MailboxOptions"),
                    "mssante.client"),
    **dict.fromkeys(("Draft", "Sender", "PdfCompanion", "compose_message", "parse_message", "check_message"),
                    "mssante.message"),
    **dict.fromkeys(("build_archive", "read_archive", "validate_archive"), "mssante.xdm"),
    "discover": "mssante.discovery",
    "PSCClient": "mssante.psc",
    "PSCSettings": "mssante.psc",
    **dict.fromkeys(("StaticTokenSource", "CallbackTokenSource", "ClientCertificate"), "mssante.credentials"),
}

__all__ = [
    "AuthError",
    "AuthUnavailable",
    "CallbackTokenSource",
    "CertificateError",
    "ClientCertificate",
    "CommandFailed",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "ContentError",
    "DiscoveryError",
    "Draft",
    "LimitError",
    "LocalProtocolError",
    "Mailbox",
    "MailboxOptions",
    "MssanteError",
    "NotAuthorized",
    "PSCClient",
    "PSCError",
    "PSCSettings",
    "PdfCompanion",
    "ProtocolError",
    "RemoteProtocolError",
    "RevocationError",
    "Secret",
    "Sender",
    "SessionSupervisor",
    "StartTLSError",
    "StaticTokenSource",
    "SyncMailbox",
    "TimeoutError",
    "TokenRejected",
    "TransportError",
    "TrustError",
    "TrustSettings",
    "UnsafeContentError",
    "UsageError",
    "__version__",
    "build_archive",
    "check_message",
    "compose_message",
    "discover",
    "parse_message",
    "read_archive",
    "validate_archive",
]


if not _typing.TYPE_CHECKING:  # hidden from type checkers: a module __getattr__ would type every unknown name as Any

    def __getattr__(name: str) -> object:
        """Import a lazy public name (:data:`_LAZY`) from its module on first access, then cache it.

        Raises:
            AttributeError: ``name`` is not a public name of :mod:`mssante`.
            ImportError: the module that defines ``name`` cannot be imported (a missing dependency).
        """
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """List the module's attributes, the lazy names included before their first access."""
    return sorted(set(globals()) | set(_LAZY))
