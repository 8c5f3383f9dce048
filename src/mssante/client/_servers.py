"""Where the connections of one BAL go: its servers (manual or DNS SRV) and their addresses.

The addresses of the SRV targets come from the injected :class:`~mssante.discovery.Resolver`
when it offers ``resolve_address`` (a private DNS then serves both), else from the system
resolver; :attr:`ConnectionSettings.resolve` overrides both. The certificate is always checked
against the SRV target name (RFC 6125), never against the address.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mssante.discovery import (
    Endpoint,
    Front,
    MailServers,
    ManualServers,
    Resolver,
    Service,
    discover,
)
from mssante.errors import ConnectError, DiscoveryError, TransportError

from ._config import BALKind, ConnectionSettings, MailboxOptions

__all__ = ["ServerFinder"]

T = TypeVar("T")


async def _addresses(resolver: Resolver | None, host: str) -> list[str] | None:
    """The addresses of ``host`` from ``resolver``, or None to leave it to the system resolver.

    None without a resolver, when it has no ``resolve_address`` (backwards compatibility), or
    when ``host`` is an IP address already.
    """
    lookup = getattr(resolver, "resolve_address", None)
    if not callable(lookup):
        return None
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return None
    found = [str(a) for a in await lookup(host)]
    if not found:
        raise DiscoveryError(f"{host}: no address (A/AAAA)")
    return found


class ServerFinder:
    """The candidate servers of one BAL, discovered once, and the addresses to connect to."""

    def __init__(self, address: str, kind: BALKind, *, servers: MailServers | ManualServers | None,
                 resolver: Resolver | None, options: MailboxOptions) -> None:
        """Use ``servers`` when given, DNS SRV through ``resolver`` otherwise (on first use)."""
        self.address = address
        self.kind: BALKind = kind
        self._given = servers
        self._resolver = resolver
        self._options = options
        self._servers: MailServers | None = servers if isinstance(servers, MailServers) else None

    async def endpoints(self, service: Service) -> tuple[Endpoint, ...]:
        """The candidates for ``service``, in the order to try them (discovered on first use).

        Raises:
            UsageError: the BAL address is not a mail address.
            DiscoveryError: no usable server for ``service``.
        """
        if isinstance(self._given, ManualServers):
            endpoint = self._given.endpoint(service)
            if endpoint is not None:
                return (endpoint,)
        if self._servers is None:
            front = Front.AUTH_CLI if self.kind == "APP" else Front.PSC
            overrides = {self.address: self._given} if isinstance(self._given, ManualServers) else None
            self._servers = await discover(self.address, front=front, resolver=self._resolver, overrides=overrides)
        found = self._servers.imap if service is Service.IMAP else self._servers.submission
        if not found:
            raise DiscoveryError(f"no {service.value} server for {self.address}")
        return found

    async def each_address(self, endpoint: Endpoint, open_with: Callable[[ConnectionSettings], Awaitable[T]]) -> T:
        """Open ``endpoint`` at each address the injected resolver gives, until one is reachable.

        ``ConnectionSettings.resolve`` wins; a manual endpoint, or a resolver without
        ``resolve_address``, leaves the host name to the system resolver. ``open_with`` gets the
        connection settings mapping the host to one address; the certificate is still checked
        against the SRV target name (:attr:`Endpoint.tls_server_name`).

        Raises:
            ConnectError: the resolver found no address for the host (as a system resolver
                failure would; the :class:`DiscoveryError` is the cause).
            MssanteError: what ``open_with`` raised at the last address.
        """
        settings = self._options.connection
        addresses: list[str] | None = None
        if endpoint.source == "srv" and settings.address_of(endpoint.host) == endpoint.host:
            try:
                addresses = await _addresses(self._resolver, endpoint.host)
            except DiscoveryError as exc:
                raise ConnectError(f"cannot connect to {endpoint.host}:{endpoint.port}: {exc.message}") from exc
        if not addresses:
            return await open_with(settings)
        for i, address in enumerate(addresses):
            mapped = dataclasses.replace(settings, resolve={**settings.resolve, endpoint.host: address})
            try:
                return await open_with(mapped)
            except TransportError:
                if i == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def first_reachable(self, service: Service, connect: Callable[[Endpoint], Awaitable[T]]) -> T:
        """Try the candidates in SRV order; only network failures move on to the next one.

        Raises:
            DiscoveryError: no server for ``service``.
            MssanteError: what ``connect`` raised for the last candidate.
        """
        endpoints = await self.endpoints(service)
        for i, endpoint in enumerate(endpoints):
            try:
                return await connect(endpoint)
            except TransportError:
                if i == len(endpoints) - 1:
                    raise
        raise DiscoveryError(f"no {service.value} server for {self.address}")  # pragma: no cover
