"""From a BAL reference to a :class:`~mssante.client.Mailbox`: credentials stay on the worker, never in Redis.

* APP: the structure's ORG AUTH_CLI certificate (IGC Santé) in the ``certificates`` directory, read
  by :class:`~mssante.credentials.ClientCertificate`, in the first form found:

  - ``<ref>.p12`` or ``<ref>.pfx``: a PKCS#12 file (what a Windows certificate store exports), its
    password in ``<ref>.password`` or, without that file, in the environment variable
    ``MSSANTE_CERT_PASSWORD_<REF>`` (the reference in capitals, every other character than a
    letter or a digit as ``_``; unset: a PKCS#12 without password);
  - ``<ref>.pem`` (certificate, optionally followed by its chain) and ``<ref>.key`` (private key),
    the key's password, when it is encrypted, found the same way.

  A ``<ref>.password`` file must be readable by its owner only (``chmod 600``); one trailing line
  end is not part of the password. The key is never written in clear (see ``ClientCertificate``).
* PER/ORG: the bridge session ``ref``, in one of two ways:

  - **delegated** (no ``session_secrets``): the LPS that owns the session delegated it to the
    fleet's own bridge installation (``POST /sessions/{id}/delegations``); the worker holds that
    installation's credential only, once, in its configuration, and
    :meth:`~mssante.bridge.client.BridgeClient.delegated` gets tokens on demand and reports the
    PSC session's end or the delegation's revocation (ECO.1.2.6);
  - **secret files** (``session_secrets``): the session secret is in ``<session_secrets>/<ref>``
    (a file readable by the worker only) and the worker uses the bridge as the owner would.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mssante.client import ConnectLimiter, Mailbox, MailboxOptions, TrustSettings
from mssante.credentials import CertificateFileError, ClientCertificate, TokenSource, password_file
from mssante.discovery import MailServers, ManualServers, Resolver
from mssante.errors import ConfigError
from mssante.secret import Secret
from mssante.trust import CRLCache

from ._model import BALSpec

if TYPE_CHECKING:
    from mssante.bridge.client import BridgeClient, BridgeTokenSource

__all__ = ["Connector", "MailboxConnector", "certificate_of"]

#: The environment variable holding the password of reference ``ref``'s key or PKCS#12 file.
PASSWORD_ENV_PREFIX = "MSSANTE_CERT_PASSWORD_"  # noqa: S105 - a variable name, not a password


def password_env(ref: str) -> str:
    """The name of the environment variable that may hold ``ref``'s certificate password."""
    return PASSWORD_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", ref).upper()


def _password(directory: Path, ref: str) -> Secret | None:
    path = directory / f"{ref}.password"
    if path.exists() or path.is_symlink():
        return password_file(path)
    value = os.environ.get(password_env(ref))
    return None if value is None else Secret(value)


def certificate_of(directory: Path, ref: str) -> ClientCertificate:
    """The AUTH_CLI certificate of reference ``ref`` in ``directory``: ``<ref>.p12``/``.pfx`` (PKCS#12), else
    ``<ref>.pem`` + ``<ref>.key``; the password from ``<ref>.password`` or ``MSSANTE_CERT_PASSWORD_<REF>``.

    Raises:
        CertificateFileError: none of these files exists, or the password file is readable by others or unreadable.
    """
    for suffix in (".p12", ".pfx"):
        bundle = directory / f"{ref}{suffix}"
        if bundle.is_file():
            return ClientCertificate.from_pkcs12(bundle, _password(directory, ref))
    pem = directory / f"{ref}.pem"
    if not pem.is_file():
        raise CertificateFileError(f"client certificate file {pem} does not exist (nor {ref}.p12 or {ref}.pfx)",
                                   problem="missing", path=pem)
    return ClientCertificate(cert=pem, key=directory / f"{ref}.key", password=_password(directory, ref))


class Connector(Protocol):
    """Builds the mailbox of a BAL from its reference (the worker's only way to credentials)."""

    async def mailbox(self, spec: BALSpec, *, limiter: ConnectLimiter | None = None) -> Mailbox:
        """The mailbox of ``spec``; ``limiter`` (the worker's) paces each of its connections, when given.

        Raises:
            ConfigError: the reference names nothing usable (no such certificate or session).
        """
        ...

    async def close(self, box: Mailbox) -> None:
        """Close ``box`` and whatever :meth:`mailbox` started for it (a bridge event listener)."""
        ...


@dataclass
class MailboxConnector:
    """The standard :class:`Connector`: certificate files per structure, bridge sessions per professional.

    What a worker holds once per *reference*, not once per BAL: the CA bundle and the CRL cache
    (one for the worker), the TLS context with the structure's certificate loaded (APP), the
    bridge token source and its event listener (PER/ORG: every BAL of one session shares them,
    and one session end stops them all, ECO.1.2.6).

    Attributes:
        tls: trust anchors (IGC Santé).
        certificates: directory of the APP certificates, per structure (module docstring):
            ``<ref>.p12``/``.pfx``, or ``<ref>.pem`` + ``<ref>.key``; ``<ref>.password`` when one is needed.
        bridge: the bridge client (PER/ORG), with the fleet's installation credential; None: PER/ORG
            BALs are refused with a clear error.
        session_secrets: directory of ``<session id>`` files holding each bridge session's secret;
            None: the sessions were delegated to :attr:`bridge`'s installation (the way to hand
            sessions to workers on other machines, no secret per session on any of them).
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
    _trust: dict[str, TrustSettings] = field(default_factory=dict, init=False, repr=False)
    _certs: dict[str, ClientCertificate] = field(default_factory=dict, init=False, repr=False)
    _sources: dict[str, tuple[BridgeTokenSource, int]] = field(default_factory=dict, init=False, repr=False)
    _boxes: dict[str, set[Mailbox]] = field(default_factory=dict, init=False, repr=False)  # per bridge session
    _options: dict[int, MailboxOptions] = field(default_factory=dict, init=False, repr=False)

    def trust(self, certificate: ClientCertificate | None = None) -> TrustSettings:
        """The TLS settings of a mailbox of this worker: one context per certificate (one for the token
        BALs), one CA bundle and one CRL cache for all (a custom :class:`Connector` can use them too).

        Raises:
            ConfigError: the CA bundle or the certificate files cannot be read.
            UsageError: a loosened ``ssl_context`` in :attr:`tls`.
        """
        if self.tls.ssl_context is not None:
            return self.tls  # the caller's own context: each mailbox loads its certificate into it, as without a fleet
        key = "" if certificate is None else str(certificate.cert)
        trust = self._trust.get(key)
        if trust is None:
            base = self._trust.get("")
            if base is None:
                bundle = self.tls.chain_bundle()
                crls = self.tls.crls if self.tls.crls is not None or bundle is None else CRLCache()
                base = TrustSettings(ssl_context=self.tls.context(), revocation=self.tls.revocation, crls=crls,
                                     bundle=bundle)
                self._trust[""] = base
            if certificate is None:
                return base
            trust = replace(base, ssl_context=self.tls.context(certificate))
            self._trust[key] = trust
        return trust

    def _credentials(self, spec: BALSpec) -> tuple[TokenSource | ClientCertificate, TrustSettings]:
        if spec.kind == "APP":
            if self.certificates is None:
                raise ConfigError(f"{spec.address}: no certificate directory configured for BAL APP")
            cert = self._certs.get(spec.ref)
            if cert is None:
                cert = certificate_of(self.certificates, spec.ref)
            trust = self.trust(cert)
            self._certs[spec.ref] = cert
            return cert, trust
        if self.bridge is None:
            raise ConfigError(f"{spec.address}: no bridge configured for BAL {spec.kind}")
        shared = self._sources.get(spec.ref)
        trust = self.trust()
        if shared is None:
            # session_ended (or delegation_revoked) from the bridge closes the BAL's sessions (ECO.1.2.6)
            shared = (self._bridge_source(self.bridge, spec), 0)
        self._sources[spec.ref] = (shared[0], shared[1] + 1)
        return shared[0], trust

    def _bridge_source(self, bridge: BridgeClient, spec: BALSpec) -> BridgeTokenSource:
        if self.session_secrets is None:
            source = bridge.delegated(spec.ref, listen=False)
        else:
            path = self.session_secrets / spec.ref
            if not path.is_file():
                raise ConfigError(f"{spec.address}: no secret for bridge session {spec.ref} on this worker")
            from mssante.bridge.client import BridgeTokenSource

            source = BridgeTokenSource(bridge, spec.ref, Secret(path.read_text().strip()))
        source.on_end(self._ended)  # before any mailbox's own callback: the BALs' events say why
        source.listen()
        return source

    def _ended(self, source: BridgeTokenSource) -> None:
        """End the mailboxes of a bridge session with the reason the bridge gave (ECO.1.2.6)."""
        for box in list(self._boxes.get(source.session_id, ())):
            box.end(source.end_message)

    def options_with(self, limiter: ConnectLimiter | None) -> MailboxOptions | None:
        """:attr:`options` with ``limiter`` pacing the connections (the worker's limiter), built once per limiter."""
        if limiter is None:
            return self.options
        cached = self._options.get(id(limiter))
        if cached is None or cached.connect_limiter is not limiter:
            cached = replace(self.options or MailboxOptions(), connect_limiter=limiter)
            self._options[id(limiter)] = cached
        return cached

    async def mailbox(self, spec: BALSpec, *, limiter: ConnectLimiter | None = None) -> Mailbox:
        """The mailbox of ``spec`` with its credentials found by reference (shared by the BALs of one reference);
        ``limiter`` (the worker's) paces its first connection and every reconnection.

        Raises:
            ConfigError: no such certificate files (or unreadable ones, a wrong password, an expired
                certificate, a key not the certificate's), no bridge configured, or no
                secret for the session (secret files); a session not delegated to the fleet shows
                at the first connection, as an ended PSC session (``PSCError``).
        """
        credentials, trust = self._credentials(spec)
        box = Mailbox(spec.address, kind=spec.kind, credentials=credentials, servers=self.servers,
                      resolver=self.resolver, tls=trust, options=self.options_with(limiter))
        if spec.kind != "APP":
            self._boxes.setdefault(spec.ref, set()).add(box)
        return box

    async def close(self, box: Mailbox) -> None:
        """Close ``box``; the last BAL of a bridge session stops that session's event listener
        (the session stays open at the bridge).
        """
        await box.aclose()
        source = box.token_source
        if self.bridge is None or source is None:
            return
        from mssante.bridge.client import BridgeTokenSource

        if not isinstance(source, BridgeTokenSource):
            return
        held, users = self._sources.get(source.session_id, (None, 0))
        if held is not source:
            return
        boxes = self._boxes.get(source.session_id)
        if boxes is not None:
            boxes.discard(box)
            if not boxes:
                del self._boxes[source.session_id]
        if users > 1:
            self._sources[source.session_id] = (source, users - 1)
            return
        del self._sources[source.session_id]
        await source.aclose()
