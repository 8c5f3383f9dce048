"""The Java LPS of docs/examples/java (JDK only, no mssante code) against a sandbox of another process.

What it proves: a non-Python LPS configured only from ``sandbox.json`` finds the fronts by SRV
through the sandbox DNS, checks the operator certificate (IGC Santé bundle, host name, CRLs),
and logs in with PSC (CIBA + XOAUTH2) for a BAL PER/ORG or with the ORG AUTH_CLI certificate +
PLAIN for a BAL APP; the sandbox's own journal is the judge.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mssante.conformance import (
    CaseResult,
    HTTPControl,
    InProcessControl,
    Profile,
    RunReport,
    SandboxControl,
    Status,
    catalogue,
    choose_bal,
    run_job,
)
from mssante.conformance._runner import _peer
from mssante.sandbox.runner import Sandbox
from tests.conformance._harness import GREEN, sandbox_config
from tests.java._events import EventsDriver
from tests.java.conftest import RunningSandbox

pytestmark = pytest.mark.slow

PER = "marie.curie@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"


def _journal(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    info = json.loads(sandbox.contract.read_text(encoding="utf-8"))
    with urllib.request.urlopen(info["api_url"] + "/journal", timeout=10) as response:
        data = json.loads(response.read())
    records = data["records"] if isinstance(data, dict) else data
    assert isinstance(records, list)
    return records


def _probe(java_classes: Path, sandbox: RunningSandbox, bal: str, trace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["java", "-cp", str(java_classes), "lps.Main", "--sandbox", str(sandbox.contract), "--probe", "--bal", bal,
         "--trace", str(trace)],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("bal", "front", "mechanism"), [(PER, "psc", "XOAUTH2"), (APP, "authcli", "PLAIN")])
def test_probe_logs_in_through_srv_starttls_and_the_right_mechanism(
    java_classes: Path, sandbox: RunningSandbox, tmp_path: Path, bal: str, front: str, mechanism: str
) -> None:
    trace = tmp_path / "traces.jsonl"
    done = _probe(java_classes, sandbox, bal, trace)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["IMAP", "SMTP"]
    assert all(f".{front}.mss.sandbox.test:" in line and line.endswith(f"{mechanism} OK") for line in lines)
    assert all(" TLSv1.3 " in line or " TLSv1.2 " in line for line in lines)
    mine = [r for r in _journal(sandbox) if (r.get("bal") or "").lower() == bal]
    assert {r["protocol"] for r in mine} >= {"imap", "smtp"}
    for record in mine:
        assert record["front"].endswith("-" + front)
        assert record["starttls_before_auth"] is True
        assert not record["credentials_before_tls"]
        assert record["auth_result"] == "OK"
        assert record["mechanism"] == mechanism
    if bal == APP:
        assert all("OU=1750000001" in (r.get("client_cert_subject") or "") for r in mine)
    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    assert {"authenticate", "connect", "logout"} <= {r["action"] for r in records}
    assert all(set(r) == {"action", "at", "author", "bal", "ok", "request", "response"} for r in records)
    assert "Bearer" not in trace.read_text(encoding="utf-8")


def test_probe_refuses_a_sandbox_json_that_is_not_json(java_classes: Path, tmp_path: Path) -> None:
    bad = tmp_path / "sandbox.json"
    bad.write_text("{not json", encoding="utf-8")
    done = subprocess.run(
        ["java", "-cp", str(java_classes), "lps.Main", "--sandbox", str(bad), "--probe", "--bal", PER],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "sandbox.json illisible" in done.stderr


# ---------------------------------------------------------------------------------------------
# The whole catalogue, the Java LPS driven only by the event stream and sandbox.json.

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "conformance-events.schema.json"
#: What the test LPS of tests/conformance does: react within a second (GREEN timing of the suite).
JAVA_TUNING = ["--keepalive", "150", "--psc-check", "500", "--backoff", "400", "--backoff-max", "800"]


async def _campaign(java_classes: Path, control: SandboxControl, contract: Path, tmp_path: Path, profile: Profile,
                    breaks: str = "", cases: tuple[str, ...] = ()) -> tuple[RunReport, EventsDriver, str, Path]:
    """One campaign: the suite (this process) drives the Java LPS (another process) through events."""
    info = dict(control.info)
    bal = choose_bal(info, profile, None, control.responders)
    peer = _peer(info, bal, control.responders)
    events, trace = tmp_path / "events.jsonl", tmp_path / "traces.jsonl"
    driver = EventsDriver(events, profile=profile, bal=bal, peer=peer, info=info, settings=GREEN, cases=cases)
    command = ["java", "-cp", str(java_classes), "lps.Main", "--sandbox", str(contract),
               "--events", str(events), "--trace", str(trace), *JAVA_TUNING]
    if breaks:
        command += ["--break", breaks]
    log_file = tmp_path / "lps.log"
    with log_file.open("w", encoding="utf-8") as log_out:
        lps = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL, stderr=log_out)
        try:
            report = await run_job(control, driver, profile=profile, bal=bal, case_ids=cases, settings=GREEN,
                                   trace_file=trace, on_result=driver.on_result())
            driver.end(report)
            code = await asyncio.wait_for(lps.wait(), 30)
        finally:
            if lps.returncode is None:
                lps.kill()
                await lps.wait()
            await driver.close()
    log = log_file.read_text(encoding="utf-8")
    assert code == 0, log
    return report, driver, log, events


def _unjudgeable(result: CaseResult) -> bool:
    """PSC logout through the API of a sandbox of another process: not offered by this sandbox yet."""
    return result.code == "psc-logout" and result.status is Status.ERROR and "DELETE /api/psc/sessions" in \
        result.explanation


def _events_valid(events: Path) -> list[dict[str, Any]]:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        validator.validate(line)
    return lines


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP])
async def test_the_java_lps_passes_the_catalogue(
    java_classes: Path, sandbox: RunningSandbox, tmp_path: Path, profile: Profile
) -> None:
    control = HTTPControl(json.loads(sandbox.contract.read_text(encoding="utf-8")), sandbox.state_dir)
    report, driver, log, events = await _campaign(java_classes, control, sandbox.contract, tmp_path, profile)
    red = [(r.case_id, r.code, r.status.value, r.explanation) for r in report.results
           if r.status is not Status.PASS and not _unjudgeable(r)]
    assert red == [], log
    assert len(report.results) == len(catalogue(profile))
    lines = _events_valid(events)
    assert lines[0]["type"] == "run" and lines[-1]["type"] == "end"
    steps = {line["step"] for line in lines if line["type"] == "step"}
    assert steps == {a["step"] for a in driver.acks}, "every step acknowledged by the Java LPS"
    assert {a["action"] for a in driver.acks} >= {"reconnect", "send", "read"}


#: The broken Java variant (``--break``) and, per profile, exactly the cases it must turn red.
BREAKS = "no-nil,no-mdn,no-cert-check"
BROKEN = ("x-mss-nil", "mdn-request", "server-cert-expired", "server-cert-foreign", "server-cert-wrong-host",
          "server-cert-revoked")
EXPECTED_RED = {Profile.PER_ORG: {*BROKEN, "mdn-return"}, Profile.APP: set(BROKEN)}


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP])
async def test_a_broken_java_variant_fails_exactly_the_cases_it_breaks(
    java_classes: Path, sandbox: RunningSandbox, tmp_path: Path, profile: Profile
) -> None:
    control = HTTPControl(json.loads(sandbox.contract.read_text(encoding="utf-8")), sandbox.state_dir)
    report, _, log, events = await _campaign(java_classes, control, sandbox.contract, tmp_path, profile,
                                             breaks=BREAKS)
    red = {r.code: r for r in report.results if r.status is not Status.PASS and not _unjudgeable(r)}
    table = "\n".join(f"{r.case_id} {r.code} {r.status.value}: {r.explanation}" for r in red.values())
    assert set(red) == EXPECTED_RED[profile], table + "\n" + log
    assert all(r.status is Status.FAIL for r in red.values()), table
    assert "X-MSS-NIL" in red["x-mss-nil"].explanation
    assert "Disposition-Notification-To" in red["mdn-request"].explanation
    assert all("Authentification tentée malgré" in red[c].explanation for c in BROKEN if c.startswith("server-cert"))
    if profile is Profile.PER_ORG:
        assert "Aucun accusé de lecture" in red["mdn-return"].explanation
    end = _events_valid(events)[-1]
    assert end["verdict"] == "NON CONFORME" and end["exit_code"] == 1


async def test_psc_logout_and_token_freshness_with_the_suites_own_sandbox(java_classes: Path, tmp_path: Path) -> None:
    """The two PER/ORG checks a sandbox of another process cannot make yet (ECO.1.2.6, fresh token).

    Here the suite starts the sandbox itself (``mssante conformance run`` without a running
    sandbox): it ends the professional's PSC session, and makes the next token presented refused for
    good. The Java LPS is still a separate process that knows only sandbox.json and the events.
    """
    async with Sandbox(sandbox_config(), tmp_path / "state") as sb:
        control = InProcessControl(sb)
        try:
            report, _, log, _ = await _campaign(java_classes, control, sb.state_file, tmp_path, Profile.PER_ORG,
                                                cases=("authenticationfailed", "psc-logout"))
        finally:
            await control.aclose()
    results = {r.code: r for r in report.results}
    assert [r.status for r in results.values()] == [Status.PASS, Status.PASS], \
        "\n".join(f"{r.code}: {r.explanation}" for r in results.values()) + "\n" + log
    assert "avec un nouveau jeton" in results["authenticationfailed"].explanation
    assert "PSC : session terminée" in log
