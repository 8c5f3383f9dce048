"""The Java LPS of docs/examples/java passes every case of both profiles, driven only by the event stream
and sandbox.json (tests/java/_campaign.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.conformance import Profile, Status
from tests.java._campaign import campaign, java_cases, valid
from tests.java.conftest import RunningSandbox

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP], ids=lambda p: p.value)
async def test_the_java_lps_passes_every_case(
    java_classes: Path, fresh_sandbox: RunningSandbox, tmp_path: Path, profile: Profile
) -> None:
    report, log, events_file, trace = await campaign(java_classes, fresh_sandbox, tmp_path, profile)
    not_green = [(r.case_id, r.code, r.status.value, r.explanation) for r in report.results
                 if r.status is not Status.PASS]
    assert not_green == [], log
    assert len(report.results) == len(java_cases(profile))
    events = valid(events_file, "conformance-events.schema.json")
    assert events[0]["type"] == "run" and events[-1]["type"] == "end"
    assert events[-1]["verdict"] == "CONFORME" and events[-1]["exit_code"] == 0
    steps = [e for e in events if e["type"] == "step"]
    assert {"reconnect", "send", "read"} <= {e["action"] for e in steps}
    assert log.count("] ") >= len(steps), "the Java LPS took every step"
    assert "accusé de l'étape" not in log, "every acknowledgement was accepted by the sandbox"
    records = valid(trace, "trace.schema.json")
    assert {"authenticate", "send", "append", "fetch"} <= {r["action"] for r in records}
    if profile is Profile.PER_ORG:
        fresh = next(r for r in report.results if r.code == "authenticationfailed")
        assert "avec un nouveau jeton" in fresh.explanation
        assert "PSC : session terminée" in log
