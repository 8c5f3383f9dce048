"""TLS plumbing shared by the IMAP and SMTP drivers: the context, the upgrade, the revocation check.

Per-BAL cost matters when one process watches a thousand BALs (issue 14):

* one :class:`TLSClient` (SSL context, CA bundle, CRL cache) per trust configuration and
  client certificate, shared by every mailbox that uses them (:meth:`TLSClient.build`);
* :func:`start_tls` upgrades a stream the way ``StreamWriter.start_tls`` does, but asyncio's
  TLS protocol then reads the socket through one buffer per event loop instead of a 256 KiB
  ``bytearray`` per connection (``asyncio.sslproto.SSLProtocol.max_size``), all resident.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import os
import ssl
import weakref
from asyncio import selector_events, sslproto
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mssante.credentials import ClientCertificate
from mssante.errors import CertificateError, ConnectError, TimeoutError
from mssante.trust import CABundle, CRLCache, check_peer_chain

from ._config import TrustSettings

__all__ = ["TLSClient", "map_connect_error", "start_tls"]

#: Octets asked of the socket per read once TLS is up (one buffer per event loop).
READ_CHUNK: Final = 64 * 1024
_CACHE_SIZE: Final = 128
_cache: collections.OrderedDict[tuple[Any, ...], tuple[TLSClient, tuple[object, ...]]] = collections.OrderedDict()


@dataclass(frozen=True, kw_only=True)
class TLSClient:
    """What a connection needs to upgrade to TLS and trust the result.

    Attributes:
        context: the client context (TLS ≥ 1.2, verification and host names on).
        bundle: the CA bundle to rebuild the chain for the revocation check; None = check off.
        crls: the CRL cache (shared by every connection of a mailbox).
    """

    context: ssl.SSLContext
    bundle: CABundle | None
    crls: CRLCache | None

    @classmethod
    def build(cls, trust: TrustSettings, certificate: ClientCertificate | None = None) -> TLSClient:
        """The client for these settings and APP certificate (loaded for AUTH_CLI), shared.

        One is built per trust configuration and certificate (the files' path, size and
        modification time, the objects given) and shared by every mailbox using them, with
        its CRL cache when ``trust.crls`` is None; a file changed on disk gives a new one.

        Raises:
            ConfigError: a file cannot be read.
            UsageError: a loosened ``ssl_context``.
        """
        key, refs = _cache_key(trust, certificate)
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit[0]
        bundle = trust.chain_bundle()
        crls = None if bundle is None else (trust.crls if trust.crls is not None else CRLCache())
        client = cls(context=trust.context(certificate), bundle=bundle, crls=crls)
        _cache[key] = (client, refs)  # refs keep the objects whose id() is in the key alive
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return client

    async def verify_peer(self, ssl_object: object) -> None:
        """Check the server chain against its CRLs, right after the handshake (ECO.1.1.6/7).

        The handshake itself already checked the chain, the dates (ECO.1.1.5) and the host name.

        Raises:
            CertificateError: no TLS object or no path to the bundle.
            RevocationError: revoked, or no valid CRL (fail closed).
        """
        if self.bundle is None or self.crls is None:
            return
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            raise CertificateError("no TLS session to check")
        await check_peer_chain(ssl_object, bundle=self.bundle, crls=self.crls)


def _stamp(path: Path | None) -> tuple[str, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (str(path), -1, -1)  # the build below raises ConfigError; nothing is cached
    return (str(path), st.st_mtime_ns, st.st_size)


def _cache_key(trust: TrustSettings, certificate: ClientCertificate | None
               ) -> tuple[tuple[Any, ...], tuple[object, ...]]:
    objects = (trust.ssl_context, trust.crls, trust.bundle, certificate.password if certificate else None)
    key = (_stamp(trust.ca_bundle), trust.revocation, *(id(o) for o in objects),
           _stamp(certificate.cert) if certificate else None, _stamp(certificate.key) if certificate else None)
    return key, objects


class _SharedBufferSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol reading the socket into one buffer per event loop.

    A selector loop calls ``get_buffer``, ``recv_into`` and ``buffer_updated`` back to back in
    its own thread, and ``buffer_updated`` copies the octets into the TLS object's memory BIO at
    once: nothing else can touch the buffer in between.
    """

    max_size = 1  # what asyncio's __init__ allocates per connection (then dropped for the shared one)

    def __init__(self, loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> None:
        super().__init__(loop, *args, **kwargs)
        self.__dict__["max_size"] = READ_CHUNK  # octets asked of the TLS object per read (a ClassVar in typeshed)
        view = _read_buffers.get(loop)
        if view is None:
            view = _read_buffers[loop] = memoryview(bytearray(READ_CHUNK))
        self._ssl_buffer = view.obj
        self._ssl_buffer_view = view

    def get_buffer(self, n: int) -> memoryview:
        return self._ssl_buffer_view

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        super()._on_handshake_complete(handshake_exc)
        # asyncio keeps the peer certificate decoded as a dict (~4 KiB, 70 objects) for
        # get_extra_info("peercert"), which nothing here reads: ssl_object.getpeercert() gives it.
        self._extra.pop("peercert", None)


_read_buffers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = weakref.WeakKeyDictionary()


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext, *, server_hostname: str) -> None:
    """Upgrade the client stream of ``writer`` to TLS, as ``StreamWriter.start_tls`` does, leaner.

    On a selector event loop the TLS protocol reads through the loop's shared buffer
    (:class:`_SharedBufferSSLProtocol`); on other loops (proactor, uvloop) asyncio's own
    upgrade is used.

    Raises:
        ssl.SSLError, OSError: the handshake failed (the caller maps them).
    """
    loop = asyncio.get_running_loop()
    protocol = getattr(writer, "_protocol", None)
    transport = writer.transport
    if (not isinstance(loop, selector_events.BaseSelectorEventLoop) or not hasattr(protocol, "_replace_writer")
            or not getattr(transport, "_start_tls_compatible", False)):
        await writer.start_tls(context, server_hostname=server_hostname)
        return
    await writer.drain()
    waiter = loop.create_future()
    tls = _SharedBufferSSLProtocol(loop, protocol, context, waiter, False, server_hostname,
                                   call_connection_made=False)
    # The steps of BaseEventLoop.start_tls (pause first: no data before connection_made).
    transport.pause_reading()  # type: ignore[attr-defined]
    transport.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, transport)
    resume = loop.call_soon(transport.resume_reading)  # type: ignore[attr-defined]
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resume.cancel()
        raise
    writer._transport = tls._app_transport  # type: ignore[attr-defined]
    protocol._replace_writer(writer)  # type: ignore[union-attr]


def map_connect_error(exc: BaseException, host: str, port: int) -> Exception:
    """Map a failure to open a TCP connection to our error tree.

    Returns:
        :class:`~mssante.errors.TimeoutError` or :class:`~mssante.errors.ConnectError`.

    Raises:
        Nothing: the error is returned.
    """
    if isinstance(exc, builtins.TimeoutError):
        return TimeoutError(f"connecting to {host}:{port} timed out")
    return ConnectError(f"cannot connect to {host}:{port}: {exc}")
