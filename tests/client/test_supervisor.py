"""The session supervisor against the sandbox: PSC logout closes one BAL's sessions fast, others go on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from mssante.client import Backoff, Mailbox, MessageSummary, SessionSupervisor, SupervisorEvent, WatchState
from mssante.errors import PSCError
from mssante.sandbox.runner import Sandbox
from tests.client.test_mailbox_support import (
    APP,
    MARIE,
    PER,
    app_mailbox,
    draft,
    per_mailbox,
    psc_session,
    raw_message,
    running_sandbox,
)

pytestmark = pytest.mark.slow


class Seen:
    """What the supervisor reported and what ``on_message`` received; :meth:`until` wakes on each of them."""

    def __init__(self) -> None:
        self.events: list[SupervisorEvent] = []
        self.received: dict[str, list[str | None]] = {PER: [], APP: []}
        self._changed = asyncio.Event()

    def on_event(self, event: SupervisorEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def on_message(self, box: Mailbox, summary: MessageSummary) -> None:
        self.received[box.address].append(summary.subject)
        self._changed.set()

    def kinds(self, address: str) -> list[str]:
        return [e.kind for e in self.events if e.address == address]

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checking it after each event (the test's timeout bounds it)."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


async def baseline(sb: Sandbox, address: str) -> WatchState:
    """Watch from the messages stored now, whenever the watch's first SELECT happens.

    Without it the watch starts at its first SELECT: a message delivered between the session's
    authentication (what ``connected`` reports) and that SELECT would count as already there.
    """
    stored = await sb.store.list_messages(address)
    return WatchState(last_uid=max((m.uid for m in stored), default=0))


async def test_psc_logout_closes_that_bal_only(sandbox_state: Path) -> None:
    seen = Seen()

    async def on_message(box: Mailbox, summary: MessageSummary) -> None:
        seen.on_message(box, summary)
        if summary.subject == "boom":
            raise RuntimeError("the application's handler failed")  # contained (ECO.1.2.3)

    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(60):
        client, session = await psc_session(sb)
        per = per_mailbox(sb, session)
        app = app_mailbox(sb)
        async with client, SessionSupervisor(on_event=seen.on_event, backoff=Backoff(initial=0.2)) as sup:
            sup.add(per, on_message=on_message, state=await baseline(sb, PER))
            sup.add(app, on_message=on_message, state=await baseline(sb, APP))
            await seen.until(lambda: "connected" in seen.kinds(PER) and "connected" in seen.kinds(APP))
            await per.send(draft(PER, APP, "avant logout"))  # an SMTP session of the PER BAL too
            await sb.store.deliver(APP, raw_message(PER, APP, "boom"))
            await seen.until(lambda: seen.received[APP] == ["avant logout", "boom"])
            per_sessions = {s.front for s in sb.faults.sessions(PER)}
            assert {"imap-psc", "smtp-psc"} <= per_sessions, per_sessions

            # PSC logout (ECO.1.2.6): the next refresh fails with invalid_grant and the session ends.
            assert await sb.psc.end_session(MARIE) >= 1
            with pytest.raises(PSCError):
                await session.token(fresh=True)
            assert session.ended.is_set()
            # every session of the BAL closed within 2 s (ECO.1.2.6), as the operator sees it
            await sb.journal.wait_for(lambda: not sb.faults.sessions(PER), timeout=2.0)
            await seen.until(lambda: "ended" in seen.kinds(PER))
            assert sup.status(PER) == "ended"
            with pytest.raises(PSCError) as info:
                await per.list()
            assert info.value.oauth_error == "invalid_grant"

            # the other BAL is not disturbed (ECO.1.2.3)
            assert sup.status(APP) == "running"
            await sb.store.deliver(APP, raw_message(PER, APP, "apres logout"))
            await seen.until(lambda: seen.received[APP][-1:] == ["apres logout"])
            assert [s.subject for s in await app.list()] == ["avant logout", "boom", "apres logout"]
            assert len(sb.faults.sessions(APP)) >= 1

    assert "ended" in seen.kinds(PER) and "handler_error" in seen.kinds(APP)
    assert "failed" not in seen.kinds(APP) and "ended" not in seen.kinds(APP)
    assert seen.received[PER] == []


async def test_supervisor_reopens_after_bye_and_contains_a_failing_bal(sandbox_state: Path) -> None:
    seen = Seen()
    broken_address = "sil.labo@mss.sandbox.test"
    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(60):
        app = app_mailbox(sb, backoff=Backoff(initial=0.2, maximum=0.5))
        # a BAL whose certificate belongs to another structure: authorization refused, for good
        broken = app_mailbox(sb, address=broken_address, cert_of=APP)
        async with SessionSupervisor(on_event=seen.on_event, backoff=Backoff(initial=0.2, maximum=0.5)) as sup:
            sup.add(app, on_message=seen.on_message, state=await baseline(sb, APP))
            sup.add(broken)
            await seen.until(lambda: "failed" in seen.kinds(broken_address))
            assert sup.status(broken_address) == "failed"
            await seen.until(lambda: "connected" in seen.kinds(APP))  # the watch's session is authenticated
            assert await sb.faults.end_sessions(APP, "bye") == 1
            await sb.store.deliver(APP, raw_message(PER, APP, "pendant la coupure"))
            await seen.until(lambda: seen.received[APP] == ["pendant la coupure"])
            assert sup.status(APP) == "running"
    assert "disconnected" in seen.kinds(APP)
    assert seen.kinds(APP).count("connected") >= 2  # reopened after the BYE (ECO.1.2.7)
    failed = [e for e in seen.events if e.kind == "failed"]
    assert [e.address for e in failed] == [broken_address]
