"""Lean per BAL (issue 14 goal 3): one TLS client per trust configuration, one read buffer per event loop."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from mssante.client import IMAPConnection, Mailbox, TrustSettings
from mssante.client import _tls as client_tls
from mssante.credentials import ClientCertificate
from mssante.trust import CRLCache

from .test_mailbox_support import APP, APP2, options, resolver, running_sandbox, trust


def _cert(sb_info: dict[str, object], address: str) -> ClientCertificate:
    bal = next(b for b in sb_info["bals"] if b["address"] == address)  # type: ignore[attr-defined]
    return ClientCertificate(cert=Path(bal["cert"]), key=Path(bal["key"]))


async def test_mailboxes_with_the_same_trust_share_one_tls_client(sandbox_state: Path, tmp_path: Path) -> None:
    async with running_sandbox(sandbox_state) as sb:
        settings = trust(sb)
        app, app2 = _cert(sb.info, APP), _cert(sb.info, APP2)
        first = client_tls.TLSClient.build(settings, app)
        assert client_tls.TLSClient.build(trust(sb), _cert(sb.info, APP)) is first  # equal settings, new objects
        assert first.crls is not None  # one CRL cache for them all when none is given
        assert client_tls.TLSClient.build(settings, app2) is not first  # another certificate
        assert client_tls.TLSClient.build(settings) is not first  # no certificate (PER/ORG)
        crls = CRLCache()
        given = client_tls.TLSClient.build(TrustSettings(ca_bundle=settings.ca_bundle, crls=crls), app)
        assert given is not first and given.crls is crls
        # A bundle replaced on disk is read again.
        copy = tmp_path / "bundle.pem"
        shutil.copy(settings.ca_bundle, copy)  # type: ignore[arg-type]
        before = client_tls.TLSClient.build(TrustSettings(ca_bundle=copy), app)
        stat = copy.stat()
        os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert client_tls.TLSClient.build(TrustSettings(ca_bundle=copy), app) is not before


async def test_imap_connections_read_tls_through_the_loops_shared_buffer(sandbox_state: Path) -> None:
    async with running_sandbox(sandbox_state) as sb:
        boxes = [Mailbox(APP, kind="APP", credentials=_cert(sb.info, APP), resolver=resolver(sb), tls=trust(sb),
                         options=options(sb)) for _ in range(3)]
        conns: list[IMAPConnection] = [await box.open_imap() for box in boxes]
        protocols = [conn._writer.transport._ssl_protocol for conn in conns]  # type: ignore[attr-defined]
        assert all(isinstance(p, client_tls._SharedBufferSSLProtocol) for p in protocols)
        shared = client_tls._read_buffers[asyncio.get_running_loop()]
        assert all(p._ssl_buffer_view is shared for p in protocols)
        assert len(shared) == client_tls.READ_CHUNK  # not asyncio's 256 KiB per connection
        # Interleaved traffic on the three connections is read back intact.
        big = b"Subject: lean\r\n\r\n" + b"0123456789abcdef" * 20_000 + b"\r\n"
        uids = await asyncio.gather(*(box.append("INBOX", big) for box in boxes))
        assert len(uids) == 3
        fetched = await asyncio.gather(*(box.fetch(uid) for box, uid in zip(boxes, uids, strict=True)
                                         if uid is not None))
        assert all(m.raw == big for m in fetched)
        for box in boxes:
            await box.aclose()


async def test_the_stock_upgrade_is_used_on_loops_it_cannot_serve(sandbox_state: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A loop that is not a selector loop (proactor on Windows, uvloop): asyncio's own start_tls.
    monkeypatch.setattr(client_tls.selector_events, "BaseSelectorEventLoop", type("Other", (), {}))
    async with running_sandbox(sandbox_state) as sb:
        box = Mailbox(APP, kind="APP", credentials=_cert(sb.info, APP), resolver=resolver(sb), tls=trust(sb),
                      options=options(sb))
        conn = await box.open_imap()
        assert not isinstance(conn._writer.transport._ssl_protocol,  # type: ignore[attr-defined]
                              client_tls._SharedBufferSSLProtocol)
        assert await box.folders()
        await box.aclose()


async def test_watch_retries_a_discovery_failure_with_backoff(sandbox_state: Path) -> None:
    from collections.abc import Sequence

    from mssante.client import Backoff
    from mssante.discovery import SRVRecord
    from mssante.errors import DiscoveryError

    async with running_sandbox(sandbox_state) as sb:
        dns = resolver(sb)

        class SlowDNS:
            """The sandbox DNS, timing out for the first two SRV questions (a DNS swamped by a burst)."""

            failures = 2

            async def resolve_srv(self, name: str) -> Sequence[SRVRecord]:
                if self.failures:
                    self.failures -= 1
                    raise DiscoveryError(f"{name}: DNS timeout")
                return await dns.resolve_srv(name)

            async def resolve_address(self, host: str) -> Sequence[str]:
                return await dns.resolve_address(host)

        slow = SlowDNS()
        box = Mailbox(APP, kind="APP", credentials=_cert(sb.info, APP), resolver=slow, tls=trust(sb),
                      options=options(sb, backoff=Backoff(initial=0.01, maximum=0.02, jitter=0.0)))
        events: list[str] = []
        connected = asyncio.Event()

        def listen(event: object) -> None:
            events.append(f"{event.kind}: {event.detail}")  # type: ignore[attr-defined]
            if event.kind == "connected":  # type: ignore[attr-defined]
                connected.set()

        box.add_listener(listen)
        watcher = box.watch()
        first = asyncio.ensure_future(watcher.__anext__())
        await asyncio.wait_for(connected.wait(), 30)
        assert slow.failures == 0
        assert sum("DNS timeout" in e for e in events if e.startswith("disconnected")) == 2
        uid = await box.append("INBOX", b"Subject: after the DNS came back\r\n\r\nx\r\n", flags=())
        summary = await asyncio.wait_for(first, 30)
        assert summary.uid == uid
        await watcher.aclose()
        await box.aclose()
