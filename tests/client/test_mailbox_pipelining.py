"""The client's pipelined SMTP path (RFC 2920) against the sandbox operator, which offers PIPELINING.

``SMTPSubmission``'s two paths are counted (a wrapper around the real methods, no fake server);
with ``[submission] pipelining = false`` the sandbox does not offer it and the lock-step path runs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mssante.client._smtp import SMTPSubmission
from mssante.errors import CommandFailed
from mssante.message import Draft, Sender
from mssante.sandbox.config import SubmissionSettings, default_config
from tests.client.test_mailbox_support import APP, APP2, PER, MintingSource, per_mailbox, running_sandbox

pytestmark = pytest.mark.slow

UNKNOWN = "personne@mss.sandbox.test"


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many sends took each path."""
    seen: Counter[str] = Counter()
    for name in ("_pipelined", "_lockstep"):
        real = getattr(SMTPSubmission, name)

        async def counted(self: SMTPSubmission, *args: Any, _real: Any = real, _name: str = name) -> Any:
            seen[_name] += 1
            return await _real(self, *args)

        monkeypatch.setattr(SMTPSubmission, name, counted)
    return seen


def _draft(*to: str, subject: str) -> Draft:
    return Draft(sender=Sender(address=PER), to=to, subject=subject, text="Bonjour.")


async def test_pipelined_sends_with_refused_recipients(tmp_path: Path, paths: Counter[str]) -> None:
    async with running_sandbox(tmp_path) as sb, asyncio.timeout(60):
        async with per_mailbox(sb, MintingSource(sb)) as per:
            partly = await per.send(_draft(APP, UNKNOWN, APP2, subject="deux sur trois"))
            assert partly.accepted == (APP, APP2)
            assert [(r, reply[:9]) for r, reply in partly.refused] == [(UNKNOWN, "550 5.1.1")]
            with pytest.raises(CommandFailed, match="every recipient was refused"):
                await per.send(_draft(UNKNOWN, subject="personne"))  # DATA gets 554, no data sent
            after = await per.send(_draft(APP, subject="ensuite"))  # the session went on after RSET
            assert after.accepted == (APP,)
        assert paths == Counter({"_pipelined": 3})
        subjects = [m.headers.get("Subject") for m in await sb.store.list_messages(APP, "INBOX")]
        assert subjects == ["deux sur trois", "ensuite"]


async def test_lockstep_when_the_sandbox_does_not_offer_pipelining(tmp_path: Path, paths: Counter[str]) -> None:
    config = replace(default_config(), submission=SubmissionSettings(pipelining=False))
    async with running_sandbox(tmp_path, config) as sb, asyncio.timeout(60):
        async with per_mailbox(sb, MintingSource(sb)) as per:
            sent = await per.send(_draft(APP, UNKNOWN, subject="pas à pas"))
            assert sent.accepted == (APP,) and [r for r, _ in sent.refused] == [UNKNOWN]
        assert paths == Counter({"_lockstep": 1})
