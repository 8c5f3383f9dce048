"""The verdict names the cause of a known client mistake made by the Java LPS (``--break``, issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.conformance import Profile, Status
from tests.java._campaign import campaign
from tests.java.conftest import RunningSandbox

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("breaks", "broken", "cause", "fix"), [
    ("auth-line", "smtp-xoauth2", "auth-line-too-long", "« 334 »"),
    ("no-sni", "srv-front", "no-sni", "SNI"),
])
async def test_the_verdict_names_the_cause_of_a_known_client_mistake(
    java_classes: Path, fresh_sandbox: RunningSandbox, tmp_path: Path, breaks: str, broken: str, cause: str, fix: str
) -> None:
    """``--break auth-line``: the token on the ``AUTH XOAUTH2`` line, as some mail libraries send it;
    ``--break no-sni``: no server name in the handshake, like a client that connects by address (issue 11)."""
    cases = ("imap-xoauth2", broken)
    report, log, _, _ = await campaign(java_classes, fresh_sandbox, tmp_path, Profile.PER_ORG, breaks=breaks,
                                        cases=cases)
    by_code = {r.code: r for r in report.results}
    sound, red = by_code["imap-xoauth2"], by_code[broken]
    assert sound.status is Status.PASS, sound.explanation + log
    assert red.status is Status.FAIL, red.explanation + log
    assert red.cause is not None and red.cause.code == cause
    assert fix in red.explanation
