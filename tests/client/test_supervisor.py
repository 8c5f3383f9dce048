"""The session supervisor against the sandbox: PSC logout closes one BAL's sessions fast, others go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.client import Backoff, Mailbox, MessageSummary, SessionSupervisor, SupervisorEvent
from mssante.errors import PSCError
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


async def _until(predicate: object, within: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not predicate():  # type: ignore[operator]
        if loop.time() - started > within:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
    return loop.time() - started


async def test_psc_logout_closes_that_bal_only(tmp_path: Path) -> None:
    events: list[SupervisorEvent] = []
    received: dict[str, list[str | None]] = {PER: [], APP: []}

    async def on_message(box: Mailbox, summary: MessageSummary) -> None:
        received[box.address].append(summary.subject)
        if summary.subject == "boom":
            raise RuntimeError("the application's handler failed")  # contained (ECO.1.2.3)

    async with running_sandbox(tmp_path) as sb, asyncio.timeout(60):
        client, session = await psc_session(sb)
        per = per_mailbox(sb, session)
        app = app_mailbox(sb)
        async with client, SessionSupervisor(on_event=events.append, backoff=Backoff(initial=0.2)) as sup:
            sup.add(per, on_message=on_message)
            sup.add(app, on_message=on_message)
            await _until(lambda: len(sb.faults.sessions(PER)) == 1 and len(sb.faults.sessions(APP)) == 1, 10)
            await per.send(draft(PER, APP, "avant logout"))  # an SMTP session of the PER BAL too
            await sb.store.deliver(APP, raw_message(PER, APP, "boom"))
            await _until(lambda: received[APP] == ["avant logout", "boom"], 10)
            per_sessions = {s.front for s in sb.faults.sessions(PER)}
            assert {"imap-psc", "smtp-psc"} <= per_sessions, per_sessions

            # PSC logout (ECO.1.2.6): the next refresh fails with invalid_grant and the session ends.
            assert await sb.psc.end_session(MARIE) >= 1
            with pytest.raises(PSCError):
                await session.token(fresh=True)
            assert session.ended.is_set()
            elapsed = await _until(lambda: not sb.faults.sessions(PER) and sup.status(PER) == "ended", 2.0)
            assert elapsed < 2.0
            with pytest.raises(PSCError) as info:
                await per.list()
            assert info.value.oauth_error == "invalid_grant"

            # the other BAL is not disturbed (ECO.1.2.3)
            assert sup.status(APP) == "running"
            await sb.store.deliver(APP, raw_message(PER, APP, "apres logout"))
            await _until(lambda: received[APP][-1:] == ["apres logout"], 10)
            assert [s.subject for s in await app.list()] == ["avant logout", "boom", "apres logout"]
            assert len(sb.faults.sessions(APP)) >= 1

    kinds = [(e.address, e.kind) for e in events]
    assert (PER, "ended") in kinds and (APP, "handler_error") in kinds
    assert (APP, "failed") not in kinds and (APP, "ended") not in kinds
    assert received[PER] == []


async def test_supervisor_reopens_after_bye_and_contains_a_failing_bal(tmp_path: Path) -> None:
    events: list[SupervisorEvent] = []
    received: list[str | None] = []
    async with running_sandbox(tmp_path) as sb, asyncio.timeout(60):
        app = app_mailbox(sb, backoff=Backoff(initial=0.2, maximum=0.5))
        # a BAL whose certificate belongs to another structure: authorization refused, for good
        broken = app_mailbox(sb, address="sil.labo@mss.sandbox.test", cert_of=APP)
        async with SessionSupervisor(on_event=events.append) as sup:
            sup.add(app, on_message=lambda _box, s: received.append(s.subject))
            sup.add(broken)
            await _until(lambda: sup.status("sil.labo@mss.sandbox.test") == "failed", 10)
            await _until(lambda: len(sb.faults.sessions(APP)) == 1, 10)
            await sb.faults.end_sessions(APP, "bye")
            await sb.store.deliver(APP, raw_message(PER, APP, "pendant la coupure"))
            await _until(lambda: received == ["pendant la coupure"], 10)
            assert sup.status(APP) == "running"
    assert any(e.kind == "disconnected" and e.address == APP for e in events)
    failed = [e for e in events if e.kind == "failed"]
    assert [e.address for e in failed] == ["sil.labo@mss.sandbox.test"]
