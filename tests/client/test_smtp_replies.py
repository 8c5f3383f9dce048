"""The pipelined reply reader (``_ReplyTap``, RFC 5321 §4.2, RFC 2920 §3.2): properties.

However the server's octets are cut into TCP segments, the replies come out whole, in order,
multi-line replies joined; a group's replies are awaited together and the wait ends as soon as
the last one is in, or a 421 came, or the connection ended. The tap sits on a bare object that
stands for aiosmtplib's protocol (it only swaps its callbacks).
"""

from __future__ import annotations

import asyncio
import itertools
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.client._smtp import _ReplyTap
from mssante.errors import ConnectionClosed, RemoteProtocolError
from tests._hypothesis import examples

SETTINGS = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])

_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)
_reply = st.tuples(st.integers(200, 599), st.lists(_text, min_size=1, max_size=4))


def _protocol() -> types.SimpleNamespace:
    return types.SimpleNamespace(data_received=None, eof_received=lambda: False, connection_lost=lambda exc: None)


def _wire(replies: list[tuple[int, list[str]]]) -> bytes:
    out = b""
    for code, lines in replies:
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out += f"{code}{sep}{line}\r\n".encode()
    return out


@SETTINGS
@given(replies=st.lists(_reply, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_any_segmentation_gives_the_same_replies_in_order(replies: list[tuple[int, list[str]]],
                                                          cuts: list[int]) -> None:
    async def run() -> None:
        protocol = _protocol()
        wire = _wire(replies)
        points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
        with _ReplyTap(protocol) as tap:
            for start, end in itertools.pairwise(points):
                protocol.data_received(wire[start:end])
            async with asyncio.timeout(5):
                await tap.gather(len(replies), 5)
                got = [await tap.reply(5) for _ in replies]
            assert [(r.code, r.message) for r in got] == [
                (code, "\n".join(line.strip(" \t") for line in lines)) for code, lines in replies]
            assert not tap.leftover

    asyncio.run(run())


async def test_the_wait_ends_with_the_last_reply_not_before() -> None:
    protocol = _protocol()
    with _ReplyTap(protocol) as tap:
        waiter = asyncio.create_task(tap.gather(3, 5))
        protocol.data_received(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n")  # what Dovecot flushes first
        await asyncio.sleep(0)
        assert not waiter.done()
        protocol.data_received(b"250 2.0.0 relayed\r\n")
        await asyncio.wait_for(waiter, 5)
        assert [(await tap.reply(5)).code for _ in range(3)] == [250, 250, 250]


@pytest.mark.parametrize(("octets", "first", "then"), [
    (b"421 4.3.2 shutting down\r\n", 421, ConnectionClosed),  # no more replies after a 421 (RFC 5321 §3.8)
    (b"250 OK\r\nHELLO\r\n", 250, RemoteProtocolError),  # what is no reply
])
async def test_a_421_or_what_is_no_reply_ends_the_wait(octets: bytes, first: int, then: type[Exception]) -> None:
    protocol = _protocol()
    with _ReplyTap(protocol) as tap:
        protocol.data_received(octets)
        await asyncio.wait_for(tap.gather(3, 5), 5)
        assert (await tap.reply(5)).code == first
        with pytest.raises(then):
            await tap.reply(5)


async def test_the_end_of_the_connection_ends_the_wait() -> None:
    protocol = _protocol()
    with _ReplyTap(protocol) as tap:
        waiter = asyncio.create_task(tap.gather(2, 5))
        protocol.connection_lost(None)
        await asyncio.wait_for(waiter, 5)
        with pytest.raises(ConnectionClosed):
            await tap.reply(5)
