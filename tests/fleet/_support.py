"""The sandbox and helpers shared by the worker tests (no tests here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

from mssante.client import Backoff
from mssante.errors import TransportError
from mssante.fleet import BALSpec, FleetEvent, FleetStore, MailboxConnector
from mssante.sandbox.config import BALConfig, SandboxConfig, default_config
from mssante.sandbox.runner import Sandbox
from tests.client.test_mailbox_support import options, resolver, running_sandbox, trust

DOMAIN = "mss.sandbox.test"
STRUCTURE = "1750000001"
APPS = tuple(f"service{i}@{DOMAIN}" for i in range(4))
TOKEN_LIKE = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI4OTk3MDAwMDAwMDEifQ.c2lnbmF0dXJl"


def fleet_config(base: SandboxConfig | None = None) -> SandboxConfig:
    """The default sandbox plus four BAL APP of one structure."""
    config = base or default_config()
    extra = tuple(BALConfig(address=a, kind="APP", structure_id=STRUCTURE) for a in APPS)
    return replace(config, bals=config.bals + extra)


def certificates(sb: Sandbox, directory: Path) -> Path:
    """``<structure>.pem`` / ``.key`` for every APP structure of the sandbox, as a worker would hold them."""
    directory.mkdir(exist_ok=True)
    for bal in sb.info["bals"]:
        if bal["cert"] and not (directory / f"{bal['structure_id']}.pem").exists():
            (directory / f"{bal['structure_id']}.pem").symlink_to(bal["cert"])
            (directory / f"{bal['structure_id']}.key").symlink_to(bal["key"])
    return directory


def connector(sb: Sandbox, tmp_path: Path) -> MailboxConnector:
    """The standard connector on the sandbox, with quick reconnection (IDLE keeps its default renewal:
    an update sent before IDLE's '+' is no longer lost, see test_imap_driver_certs.py)."""
    base = options(sb, backoff=Backoff(initial=0.2, maximum=0.5))
    return MailboxConnector(tls=trust(sb), certificates=certificates(sb, tmp_path / "certs"), resolver=resolver(sb),
                            options=base)


def app(address: str, ref: str = STRUCTURE) -> BALSpec:
    return BALSpec(address=address, kind="APP", ref=ref)


def raw(to: str, subject: str) -> bytes:
    return (f"From: labo@{DOMAIN}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\n"
            "X-MSS-NIL: DEV000001\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCorps.\r\n").encode()


class Events:
    """Every event of the stream, read with XREAD BLOCK as they come."""

    def __init__(self, store: FleetStore) -> None:
        self.store = store
        self.seen: list[FleetEvent] = []
        self._last = "0"

    async def until(self, done: Callable[[list[FleetEvent]], bool], within: float = 30.0) -> list[FleetEvent]:
        async with asyncio.timeout(within):
            while not done(self.seen):
                try:
                    got = await self.store.events(self._last, block_ms=500)
                except TransportError:  # Redis restarting in a test: read again
                    await asyncio.sleep(0.1)
                    continue
                if got:
                    self._last = got[-1].id
                    self.seen.extend(got)
        return self.seen

    def messages(self) -> list[tuple[str, str]]:
        return [(e.bal, e.fields["subject"]) for e in self.seen if e.kind == "message"]


@contextlib.asynccontextmanager
async def apps_watched(tmp_path: Path, store: FleetStore) -> AsyncIterator[tuple[Sandbox, Events, MailboxConnector]]:
    """The sandbox with :data:`APPS` in the desired set: the sandbox, the stream's reader and a connector."""
    async with running_sandbox(tmp_path, fleet_config()) as sb:
        for address in APPS:
            await store.add(app(address))
        yield sb, Events(store), connector(sb, tmp_path)


async def holders(store: FleetStore, addresses: tuple[str, ...]) -> dict[str, str | None]:
    return {a: (h.split("|")[0] if (h := await store.holder(a)) else None) for a in addresses}


async def until_held(store: FleetStore, addresses: tuple[str, ...], done: Callable[[dict[str, str | None]], bool],
                     within: float = 30.0) -> dict[str, str | None]:
    """Wait for the lease keys to satisfy ``done``."""
    async with asyncio.timeout(within):
        while not done(current := await holders(store, addresses)):  # noqa: ASYNC110 - lease keys are the event
            await asyncio.sleep(0.05)
    return current
