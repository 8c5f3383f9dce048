"""Interop: the client trust code against the sandbox's IGC Santé-shaped test PKI, over real TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import pytest

from mssante.errors import RevocationError
from mssante.sandbox.pki import TestPKI
from mssante.trust import CABundle, CRLCache, check_peer_chain, client_ssl_context, map_ssl_error
from tests.trust._pki import CRLServer

HOST = "imap.psc.mss.sandbox.test"


async def _handshake_and_check(port: int, ctx: ssl.SSLContext, bundle: CABundle, crls: CRLCache) -> int:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=HOST)
    except (ssl.SSLError, OSError) as exc:
        raise map_ssl_error(exc) from exc
    try:
        return len(await check_peer_chain(writer.get_extra_info("ssl_object"), bundle=bundle, crls=crls))
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def test_sandbox_server_certificate_checks_then_revocation_is_seen(tmp_path: Path, crl_server: CRLServer) -> None:
    pki = TestPKI.load_or_create(tmp_path / "pki", server_names=[HOST], crl_base_url=crl_server.base_url)

    def publish() -> None:
        for name in pki.crl_names:
            crl_server.publish(pki.crl_url(name), pki.crl_bytes(name))

    publish()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.server_cert_path, pki.server_key_path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    ctx = client_ssl_context(ca_bundle=pki.ca_bundle_path)
    bundle = CABundle.from_file(pki.ca_bundle_path)
    try:
        assert await _handshake_and_check(port, ctx, bundle, CRLCache()) == 3
        pki.revoke(pki.server_cert_path)
        publish()
        with pytest.raises(RevocationError, match="revoked"):
            await _handshake_and_check(port, ctx, bundle, CRLCache())
    finally:
        server.close()
        await server.wait_closed()
        crl_server.routes.clear()
        crl_server.hits.clear()
