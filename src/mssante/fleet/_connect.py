"""From a BAL reference to a :class:`~mssante.client.Mailbox`: credentials stay on the worker, never in Redis.

* APP: ``<certificates>/<ref>.pem`` and ``<certificates>/<ref>.key`` (the structure's ORG AUTH_CLI
  certificate, IGC Santé), read by :class:`~mssante.credentials.ClientCertificate`.
* PER/ORG: the bridge session ``ref``; its session secret comes from ``<session_secrets>/<ref>``
  (a file readable by the worker only), and :class:`~mssante.bridge.client.BridgeTokenSource`
  gets tokens on demand and reports the PSC session's end (ECO.1.2.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mssante.client import Mailbox, MailboxOptions, TrustSettings
from mssante.credentials import ClientCertificate, TokenSource
from mssante.discovery import MailServers, ManualServers, Resolver
from mssante.errors import ConfigError
from mssante.secret import Secret

from ._model import BALSpec

if TYPE_CHECKING:
    from mssante.bridge.client import BridgeClient

__all__ = ["Connector", "MailboxConnector"]


class Connector(Protocol):
    """Builds the mailbox of a BAL from its reference (the worker's only way to credentials)."""

    async def mailbox(self, spec: BALSpec) -> Mailbox:
        """The mailbox of ``spec``.

        Raises:
            ConfigError: the reference names nothing usable (no such certificate or session).
        """
        ...

    async def close(self, box: Mailbox) -> None:
        """Close ``box`` and whatever :meth:`mailbox` started for it (a bridge event listener).

        Raises:
            Nothing.
        """
        ...


@dataclass
class MailboxConnector:
    """The standard :class:`Connector`: certificate files per structure, bridge sessions per professional.

    Attributes:
        tls: trust anchors (IGC Santé).
        certificates: directory of ``<structure>.pem`` / ``<structure>.key`` (APP).
        bridge: the bridge client (PER/ORG); None: PER/ORG BALs are refused with a clear error.
        session_secrets: directory of ``<session id>`` files holding each bridge session's secret.
        servers, resolver: how servers are found (None: DNS SRV discovery, ECO.1.1.9).
        options: mailbox options (timeouts, backoff, resolve overrides).
    """

    tls: TrustSettings
    certificates: Path | None = None
    bridge: BridgeClient | None = None
    session_secrets: Path | None = None
    servers: MailServers | ManualServers | None = None
    resolver: Resolver | None = None
    options: MailboxOptions | None = None

    def _credentials(self, spec: BALSpec) -> TokenSource | ClientCertificate:
        if spec.kind == "APP":
            if self.certificates is None:
                raise ConfigError(f"{spec.address}: no certificate directory configured for BAL APP")
            return ClientCertificate(cert=self.certificates / f"{spec.ref}.pem",
                                     key=self.certificates / f"{spec.ref}.key")
        if self.bridge is None or self.session_secrets is None:
            raise ConfigError(f"{spec.address}: no bridge configured for BAL {spec.kind}")
        path = self.session_secrets / spec.ref
        if not path.is_file():
            raise ConfigError(f"{spec.address}: no secret for bridge session {spec.ref} on this worker")
        from mssante.bridge.client import BridgeTokenSource

        source = BridgeTokenSource(self.bridge, spec.ref, Secret(path.read_text().strip()))
        source.listen()  # session_ended from the bridge closes the BAL's sessions (ECO.1.2.6)
        return source

    async def mailbox(self, spec: BALSpec) -> Mailbox:
        """The mailbox of ``spec`` with its credentials found by reference.

        Raises:
            ConfigError: no such certificate files, no bridge configured, or no secret for the session.
        """
        return Mailbox(spec.address, kind=spec.kind, credentials=self._credentials(spec), servers=self.servers,
                       resolver=self.resolver, tls=self.tls, options=self.options)

    async def close(self, box: Mailbox) -> None:
        """Close ``box`` and stop its bridge session's event listener (the session stays open at the bridge).

        Raises:
            Nothing.
        """
        await box.aclose()
        if self.bridge is not None:
            from mssante.bridge.client import BridgeTokenSource

            source = box.token_source
            if isinstance(source, BridgeTokenSource):
                await source.aclose()
