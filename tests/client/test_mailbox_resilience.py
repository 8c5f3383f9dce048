"""Against the sandbox: token renewal, reconnection with no message missed, the ref2 §2.4 retry rules."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from mssante.client import Backoff, WatchState
from mssante.errors import AuthUnavailable, NotAuthorized, TokenRejected
from mssante.sandbox.runner import Sandbox
from mssante.testing import FakeClock
from tests.client.test_mailbox_support import (
    APP,
    PER,
    MintingSource,
    app_mailbox,
    draft,
    per_mailbox,
    psc_session,
    raw_message,
    running_sandbox,
    short_tokens,
)

pytestmark = pytest.mark.slow



def _auth_results(sb: Sandbox, bal: str, protocol: str = "imap") -> list[str | None]:
    return [r.auth_result for r in sb.journal.records(bal=bal) if r.protocol == protocol and r.auth_at is not None]


async def test_token_expiring_during_a_long_session_is_renewed(sandbox_state: Path) -> None:
    # Access tokens live 2 s; a PSCSession refreshes them with its refresh token. The mock PSC and the
    # session share a FakeClock (started at the real time, which the test PKI's dates need): the lifetime
    # passes when the test says so, not after a sleep.
    clock = FakeClock(start=time.time())
    async with running_sandbox(sandbox_state, short_tokens(2.0), clock=clock) as sb, asyncio.timeout(60):
        client, session = await psc_session(sb, clock=clock)
        first_token = (await session.token()).reveal()
        async with client, per_mailbox(sb, session) as per:
            await per.send(draft(PER, APP, "avant expiration"))
            await clock.advance(2.5)  # every token seen so far has expired
            await sb.faults.end_sessions(PER, "drop")  # new sessions must authenticate again
            assert (await session.token()).reveal() != first_token
            await per.send(draft(PER, APP, "apres expiration"))  # SMTP: reopened with a fresh token
            assert [s.subject for s in await per.list("Sent")] == ["avant expiration", "apres expiration"]
        assert all(result == "OK" for result in _auth_results(sb, PER) + _auth_results(sb, PER, "smtp"))
        assert len(_auth_results(sb, PER)) >= 2


@pytest.mark.parametrize("mode", ["drop", "bye"])
async def test_watch_resumes_after_the_operator_ends_the_session(sandbox_state: Path, mode: str) -> None:
    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(60):
        state = WatchState(last_uid=0)
        app = app_mailbox(sb, backoff=Backoff(initial=0.3, maximum=1.0))
        async with app, contextlib.aclosing(app.watch(state=state)) as watcher:
            await sb.store.deliver(APP, raw_message(PER, APP, "m1"))
            assert (await anext(watcher)).subject == "m1"
            for round_ in range(2):
                assert await sb.faults.end_sessions(APP, mode) >= 1  # type: ignore[arg-type]
                # delivered while the watch connection is down (the reconnection waits >= 0.24 s)
                names = [f"down{round_}-{i}" for i in range(3)]
                for name in names:
                    await sb.store.deliver(APP, raw_message(PER, APP, name))
                got = [(await anext(watcher)).subject for _ in names]
                assert got == names
            await sb.store.deliver(APP, raw_message(PER, APP, "after"))
            assert (await anext(watcher)).subject == "after"
        assert state.reconnects >= 2
        assert state.last_uid is not None and state.uidvalidity is not None


async def test_authenticationfailed_once_is_retried_with_a_fresh_token(sandbox_state: Path) -> None:
    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(30):
        source = MintingSource(sb)
        sb.faults.fail_next_auth(1, "AUTHENTICATIONFAILED", bal=PER)
        async with per_mailbox(sb, source) as per:
            assert await per.list() == []
        assert _auth_results(sb, PER) == ["AUTHENTICATIONFAILED: injected", "OK"] or (
            len(_auth_results(sb, PER)) == 2 and _auth_results(sb, PER)[1] == "OK"
        )
        assert len(source.issued) == 2 and source.issued[0] != source.issued[1]  # token(fresh=True)


async def test_authenticationfailed_twice_fails_clearly_without_a_third_attempt(sandbox_state: Path) -> None:
    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(30):
        source = MintingSource(sb)
        sb.faults.fail_next_auth(3, "AUTHENTICATIONFAILED", bal=PER)
        async with per_mailbox(sb, source) as per:
            with pytest.raises(TokenRejected, match="freshly obtained token") as info:
                await per.list()
        assert info.value.imap_code == "AUTHENTICATIONFAILED"
        assert len(_auth_results(sb, PER)) == 2
        assert sb.faults.pending_auth_failures == 1  # the third injected failure was never consumed
        assert len(source.issued) == 2


async def test_authorizationfailed_is_not_retried(sandbox_state: Path) -> None:
    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(30):
        source = MintingSource(sb)
        sb.faults.fail_next_auth(2, "AUTHORIZATIONFAILED", bal=PER)
        async with per_mailbox(sb, source) as per:
            with pytest.raises(NotAuthorized) as info:
                await per.send(draft(PER, APP, "refus"))
        assert info.value.smtp_code == 535 or info.value.imap_code == "AUTHORIZATIONFAILED"
        assert len(_auth_results(sb, PER, "smtp")) == 1 and sb.faults.pending_auth_failures == 1
        assert len(source.issued) == 1


async def test_unavailable_backs_off_then_succeeds_or_gives_up(sandbox_state: Path) -> None:
    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(30):
        quick = Backoff(initial=0.2, maximum=0.4, attempts=2)
        sb.faults.fail_next_auth(2, "UNAVAILABLE", bal=PER)
        loop = asyncio.get_running_loop()
        async with per_mailbox(sb, MintingSource(sb), backoff=quick) as per:
            started = loop.time()
            assert await per.list() == []
            assert loop.time() - started >= 0.4  # two jittered pauses (0.16 s + 0.32 s at least)
            assert _auth_results(sb, PER)[-1] == "OK"
        sb.faults.fail_next_auth(5, "UNAVAILABLE", bal=PER)
        async with per_mailbox(sb, MintingSource(sb), backoff=quick) as per:
            with pytest.raises(AuthUnavailable):
                await per.list()
        assert sb.faults.pending_auth_failures == 2  # 1 try + 2 retries, then it gave up
