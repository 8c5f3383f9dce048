"""The Java LPS driven through a whole conformance campaign (tests/java/test_java_campaign_*.py).

What ``mssante conformance run --events FILE`` does, in the test's process: the suite's event machinery
writes the events file, the Java LPS (another process) follows it and acknowledges each step on the
sandbox API, the sandbox is a third process. The campaigns are split over two modules (green, broken) so
that xdist deals them to two workers: each campaign mostly waits on the LPS and the sandbox.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema

from mssante.conformance import (
    ExternalDriver,
    HTTPControl,
    Profile,
    RunEvents,
    RunReport,
    catalogue,
    choose_bal,
    run_job,
)
from tests.conformance._harness import GREEN
from tests.java.conftest import RunningSandbox

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
#: React within a second, like the Python test LPS (the suite runs with its GREEN timing).
FAST = ["--keepalive", "150", "--psc-check", "500", "--backoff", "400", "--backoff-max", "800"]
#: The suite's bounds for a JVM LPS: three times those of the Python test LPS (GREEN), because a cold
#: JVM on a loaded 2-core machine can take seconds for its first SMTP session. A green run costs no
#: more: every wait ends at the LPS's step acknowledgement, not at the bound.
JAVA_TIMING = replace(GREEN, time_scale=GREEN.time_scale * 3)
#: The Java LPS's X-MSS-NIL (its ``--nil`` default), declared to the suite as ``--product-reference`` does.
JAVA_NIL = "LPSJAVA001"
#: Cases added or made stricter by issue 16 that the Java example does not implement yet; the
#: conformance report of the branch that added them says what an LPS must do for each.
NOT_YET_IN_JAVA: frozenset[str] = frozenset()


def java_cases(profile: Profile) -> tuple[str, ...]:
    return tuple(c.code for c in catalogue(profile) if c.code not in NOT_YET_IN_JAVA)


def java_command(java_classes: Path, sandbox: RunningSandbox, events: Path, trace: Path, *extra: str) -> list[str]:
    return ["java", "-cp", str(java_classes), "lps.Main", "--sandbox", str(sandbox.contract),
            "--events", str(events), "--trace", str(trace), *extra]


async def campaign(java_classes: Path, sandbox: RunningSandbox, tmp_path: Path, profile: Profile,
                    breaks: str = "", cases: tuple[str, ...] = ()) -> tuple[RunReport, str, Path, Path]:
    """What ``mssante conformance run --events FILE`` does, with the suite's fast timing, in this process.

    The suite's own event machinery (:class:`RunEvents`, the external driver announcing steps)
    writes the events file; the Java LPS (another process) follows it and acknowledges each step on
    the sandbox API; the sandbox is a third process.
    """
    info = json.loads(sandbox.contract.read_text(encoding="utf-8"))
    control = HTTPControl(info, sandbox.state_dir)
    events_file, trace = tmp_path / "events.jsonl", tmp_path / "traces.jsonl"
    events_file.touch()

    def write(event: dict[str, Any]) -> None:
        with events_file.open("a", encoding="utf-8") as out:
            out.write(json.dumps(event, ensure_ascii=False) + "\n")

    events = RunEvents(control=control, sinks=[write])
    bal = choose_bal(info, profile, None, control.responders)
    driver = ExternalDriver(bal=bal, profile=profile, echo=lambda _: None, announce=events.step)
    command = java_command(java_classes, sandbox, events_file, trace, *FAST, *(["--break", breaks] if breaks else []))
    log_file = tmp_path / "lps.log"
    with log_file.open("w", encoding="utf-8") as log_out:
        lps = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL, stderr=log_out)
        try:
            report = await run_job(control, driver, profile=profile, bal=bal, case_ids=cases or java_cases(profile),
                                   settings=JAVA_TIMING, trace_file=trace, events=events,
                                   product_reference=JAVA_NIL)
            code = await asyncio.wait_for(lps.wait(), 30)  # the ``end`` event stops it
        finally:
            if lps.returncode is None:
                lps.kill()
                await lps.wait()
            await driver.close()
            await control.aclose()
    log = log_file.read_text(encoding="utf-8")
    assert code == 0, log
    return report, log, events_file, trace


def valid(path: Path, schema: str) -> list[dict[str, Any]]:
    validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS / schema).read_text(encoding="utf-8")))
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        validator.validate(line)
    return lines
