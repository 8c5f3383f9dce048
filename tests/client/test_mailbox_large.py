"""Large messages: FETCH streamed in chunks (not buffered twice), bounded by max_message_size; STATUS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.client import ConnectionSettings
from mssante.errors import LimitError
from tests.client.test_mailbox_support import APP, PER, app_mailbox, options, raw_message, running_sandbox

pytestmark = pytest.mark.slow


async def test_large_message_is_streamed_and_bounded(tmp_path: Path) -> None:
    body = b"".join(b"ligne %06d du compte rendu, assez longue pour faire du volume.\r\n" % i for i in range(40_000))
    big = raw_message(PER, APP, "gros") + body  # ~2.6 MB
    async with running_sandbox(tmp_path) as sb, asyncio.timeout(60):
        await sb.store.deliver(APP, big)
        await sb.store.deliver(APP, raw_message(PER, APP, "petit"))
        streamed = options(sb).connection
        small_chunks = ConnectionSettings(connect_timeout=10, command_timeout=10, resolve=streamed.resolve,
                                          stream_over=64 * 1024)
        async with app_mailbox(sb, connection=small_chunks) as app:
            assert (await app.status())["MESSAGES"] == 2
            first, second = await app.list()
            message = await app.fetch(first.uid)
            assert message.raw == big and message.parsed.subject == "gros"
            assert first.size == len(big)
        bounded = ConnectionSettings(connect_timeout=10, command_timeout=10, resolve=streamed.resolve,
                                     stream_over=64 * 1024, max_message_size=1024 * 1024)
        async with app_mailbox(sb, connection=bounded) as app:
            with pytest.raises(LimitError):
                await app.fetch(first.uid)
            assert (await app.fetch(second.uid)).parsed.subject == "petit"  # a new connection, still fine
