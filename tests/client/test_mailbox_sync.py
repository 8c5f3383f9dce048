"""The sync face runs the async Mailbox in a portal thread: same methods, same results."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from mssante.client import Mailbox, SyncMailbox
from tests.client.test_mailbox_support import (
    APP,
    PER,
    MintingSource,
    app_mailbox,
    draft,
    options,
    resolver,
    running_sandbox,
    trust,
)

pytestmark = pytest.mark.slow


async def test_sync_mailbox_round_trip(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path) as sb, asyncio.timeout(60):
        source = MintingSource(sb)
        kwargs = {"kind": "PER", "credentials": source, "resolver": resolver(sb), "tls": trust(sb),
                  "product_reference": "DEV000001", "options": options(sb)}

        def blocking() -> list[str | None]:
            with SyncMailbox(PER, **kwargs) as box:
                assert isinstance(box.mailbox, Mailbox)
                result = box.send(draft(PER, APP, "depuis un thread"))
                assert result.accepted == (APP,)
                sent = box.list("Sent")
                assert box.fetch(sent[0].uid, "Sent").parsed.subject == "depuis un thread"
                box.flag(sent[0].uid, "Sent", flagged=True)
                return [s.subject for s in box.list("Sent")]

        before = sum(t.name == "mssante-portal" for t in threading.enumerate())
        assert await asyncio.to_thread(blocking) == ["depuis un thread"]
        assert sum(t.name == "mssante-portal" for t in threading.enumerate()) == before  # the portal thread stopped
        async with app_mailbox(sb) as app:
            assert [s.subject for s in await app.list()] == ["depuis un thread"]
