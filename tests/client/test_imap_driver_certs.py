"""Certificate matrix through the facade: unknown CA, expired, revoked, wrong name, no CRL — each refused."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mssante.client import TrustSettings
from mssante.errors import CertificateError, RevocationError, TrustError
from mssante.trust import CRLCache
from tests.client.test_imap_driver_support import HOST, Recorder, mailbox, scripted_server, tls_imap_session
from tests.trust._pki import NOW, CRLServer, Issued, MiniPKI


@pytest.fixture
def crl_server() -> Iterator[CRLServer]:
    with CRLServer().running() as server:
        yield server


@pytest.fixture
def pki(tmp_path: Path, crl_server: CRLServer) -> MiniPKI:
    pki = MiniPKI(tmp_path / "pki", crl_server.base_url)
    crl_server.publish(pki.crl_url("root"), pki.crl(pki.root))
    crl_server.publish(pki.crl_url("org"), pki.crl(pki.org))
    return pki


def _server_context(leaf: Issued) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf.cert_path, leaf.key_path)
    return ctx


async def _connect(leaf: Issued, trust: TrustSettings, seen: list[Recorder]) -> list[str]:
    ctx = _server_context(leaf)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
        await tls_imap_session(reader, writer, rec, ctx)

    async with scripted_server(script) as (port, recorder), asyncio.timeout(20):
        seen.append(recorder)
        async with mailbox(port, trust) as box:
            listed = await box.list()
    return [s.subject or "" for s in listed]


async def test_good_certificate_is_accepted(pki: MiniPKI, crl_server: CRLServer) -> None:
    seen: list[Recorder] = []
    assert await _connect(pki.leaf("good", dns_names=(HOST,)), TrustSettings(ca_bundle=pki.bundle()), seen) == []
    assert b"AUTHENTICATE XOAUTH2" in bytes(seen[0].received)  # only after TLS
    assert any(hit.endswith("-org.crl") for hit in crl_server.hits)  # the revocation check ran


@pytest.mark.parametrize("case", ["unknown_ca", "expired", "wrong_host", "revoked", "no_crl"])
async def test_bad_certificate_is_refused_before_any_credential(
    case: str, pki: MiniPKI, crl_server: CRLServer, tmp_path: Path
) -> None:
    trust = TrustSettings(ca_bundle=pki.bundle(), crls=CRLCache())
    expected: type[TrustError] = CertificateError
    if case == "unknown_ca":
        other = MiniPKI(tmp_path / "other", crl_server.base_url, label="OTHER")
        leaf = other.leaf("foreign", dns_names=(HOST,))
    elif case == "expired":
        leaf = pki.leaf("expired", dns_names=(HOST,), not_before=NOW - timedelta(days=30),
                        not_after=NOW - timedelta(days=1))
    elif case == "wrong_host":
        leaf = pki.leaf("elsewhere", dns_names=("imap.elsewhere.test",))
    elif case == "revoked":
        leaf = pki.leaf("revoked", dns_names=(HOST,))
        crl_server.publish(pki.crl_url("org"), pki.crl(pki.org, [leaf.cert]))
        expected = RevocationError
    else:  # no CRL can be downloaded and none is cached: fail closed (ECO.1.1.6/7)
        leaf = pki.leaf("nocrl", dns_names=(HOST,))
        crl_server.unpublish(pki.crl_url("org"))
        expected = RevocationError
    seen: list[Recorder] = []
    with pytest.raises(expected) as info:
        await _connect(leaf, trust, seen)
    assert info.value.fault == "trust"
    # no credential reached the server (it only saw STARTTLS in clear, at most CAPABILITY under TLS)
    assert not seen[0].saw_credentials(), bytes(seen[0].received)


async def test_an_update_sent_before_idles_continuation_is_not_lost(pki: MiniPKI) -> None:
    """RFC 3501 §7: a server may send '* 1 EXISTS' before '+ idling' (a delivery as IDLE starts).

    The driver used to drop it, so a watcher learned of the message only at the next IDLE
    renewal (29 minutes by default): found by the fleet's Redis-restart test.
    """
    ctx = _server_context(pki.leaf("good", dns_names=(HOST,)))

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: Recorder) -> None:
        await tls_imap_session(reader, writer, rec, ctx, before_idle=b"* 1 EXISTS\r\n")

    trust = TrustSettings(ca_bundle=pki.bundle())
    async with scripted_server(script) as (port, _), asyncio.timeout(20), mailbox(port, trust) as box:
        conn = await box.open_imap()
        await conn.select("INBOX")
        seen = []
        async with contextlib.aclosing(conn.idle(duration=3)) as updates:
            async for event in updates:
                seen.append(event)
                break
        assert [type(e).__name__ for e in seen] == ["ExistsResponse"] and seen[0].count == 1
        assert conn.usable and conn.last_tagged is not None and conn.last_tagged.status == "OK"
        box.release(conn)
