"""The machine-readable run: ``--events`` JSON Lines valid against the published schema, the same
stream from the sandbox API, step acknowledgements, and a harness in another language (POSIX sh +
curl) that drives the suite from the stream alone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import pytest
from click.testing import CliRunner

from mssante.cli._conformance import conformance
from mssante.conformance import ExternalDriver, InProcessControl, Profile, RunEvents, catalogue, run_job
from mssante.sandbox.runner import Sandbox
from tests.conformance._harness import sandbox_config
from tests.conformance._separate import separate_sandbox

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "conformance-events.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _valid(events: list[dict[str, Any]]) -> None:
    for event in events:
        errors = sorted(VALIDATOR.iter_errors(event), key=str)
        assert not errors, (event, [e.message for e in errors])
    assert events[0]["type"] == "run" and events[-1]["type"] == "end"
    assert len({e["run_id"] for e in events}) == 1


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_read_acknowledgement_body_is_described() -> None:
    ack = jsonschema.Draft202012Validator({**SCHEMA["$defs"]["ack_body"], "$defs": SCHEMA["$defs"]})
    body = {"ok": True, "understood": [{"message_id": "<a@b>", "patient": {"ins": "279035121518989",
            "family_name": "PAT-TROIS", "given_name": "DOMINIQUE"}, "documents": ["11502-2"],
            "subject_shown": "CR de biologie PAT-TROIS DOMINIQUE", "sender_kind": "professional"}]}
    assert not list(ack.iter_errors(body))
    assert list(ack.iter_errors({"understood": [{"patient": {}}]}))  # message_id is required
    assert list(ack.iter_errors({"understood": [{"message_id": "<a@b>", "sender_kind": "robot"}]}))


def test_events_file_of_an_external_run(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    result = CliRunner().invoke(conformance, [
        "run", "--profile", "per-org", "--sandbox-state", str(tmp_path / "s"), "--case", "x-mss-nil",
        "--case", "mdn-request", "--case", "reopen-bye", "--time-scale", "0.003", "--events", str(events_file),
    ])
    assert result.exit_code == 1, result.output
    events = [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines()]
    _valid(events)
    run = events[0]
    ids = {c.code: c.id for c in catalogue(Profile.PER_ORG)}
    assert run["profile"] == "per-org"
    assert run["cases"] == [ids["reopen-bye"], ids["x-mss-nil"], ids["mdn-request"]]  # catalogue order
    steps = [e for e in events if e["type"] == "step"]
    send = next(s for s in steps if s["case"] == ids["x-mss-nil"])
    assert send["action"] == "send"
    assert send["params"] == {"bal": run["bal"], "to": [run["peer"]], "document": "crbio", "mdn": False,
                              "dsn": None}
    assert send["ack"]["url"].endswith(f"/conformance/steps/{send['step']}/done")
    assert "Envoyez depuis votre LPS" in send["text_fr"]
    assert next(s for s in steps if s["case"] == ids["mdn-request"])["params"]["mdn"] is True
    assert next(s for s in steps if s["case"] == ids["reopen-bye"])["action"] == "wait"  # the LPS reacts alone
    verdicts = [e for e in events if e["type"] == "verdict"]
    assert [v["case"] for v in verdicts] == run["cases"]
    assert all(v["status"] == "fail" and v["status_fr"] == "Non conforme" and v["requirements"] for v in verdicts)
    end = events[-1]
    assert end["verdict"] == "NON CONFORME" and end["exit_code"] == 1 and end["complete"] is True
    assert end["counts"] == {"pass": 0, "fail": 3, "error": 0, "skipped": 0, "not_run": 0, "total": 3}


def test_events_on_stdout_keep_french_text_on_stderr(tmp_path: Path) -> None:
    result = CliRunner().invoke(conformance, [
        "run", "--profile", "app", "--sandbox-state", str(tmp_path / "s"), "--case", "x-mss-nil",
        "--time-scale", "0.002", "--events", "-"])
    assert result.exit_code == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    _valid(events)
    assert "Envoyez depuis votre LPS" in result.stderr and "NON CONFORME" in result.stderr


async def test_the_api_serves_the_stream_and_an_ack_ends_the_wait(state_dir: Path) -> None:
    """Time scale 1: the send step allows 300 s; acknowledged at once, the case ends within seconds."""
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = InProcessControl(sb)
        written: list[dict[str, Any]] = []
        events = RunEvents(control=control, sinks=[written.append])
        bal = "dpi.hopital@mss.sandbox.test"
        driver = ExternalDriver(bal=bal, profile=Profile.APP, echo=lambda _: None, announce=events.step)
        api = sb.info["api_url"]
        acked: list[str] = []

        async def harness() -> None:  # acknowledges every step it reads from the API, without acting
            after = 0
            async with httpx2.AsyncClient(timeout=40) as http:
                while True:
                    page = (await http.get(f"{api}/conformance/events", params={"after": after, "wait": 10})).json()
                    after = page["next"]
                    for event in page["events"]:
                        if event["type"] == "end":
                            return
                        if event["type"] == "step":
                            answer = await http.post(event["ack"]["url"], json={"ok": False, "detail": "test"})
                            assert answer.json()["done"] is True
                            acked.append(event["step"])

        follower = asyncio.create_task(harness())
        started = time.monotonic()
        report = await run_job(control, driver, profile=Profile.APP, bal=bal, case_ids=("x-mss-nil",),
                               events=events)
        await asyncio.wait_for(follower, 20)
        assert time.monotonic() - started < 30
        assert report.results[0].status.value == "fail" and not report.ok
        assert acked and acked[0].startswith(f"{events.run_id[:12]}.APP-")
        async with httpx2.AsyncClient() as http:
            page = (await http.get(f"{api}/conformance/events", params={"run_id": events.run_id})).json()
            lines = (await http.get(f"{api}/conformance/events", params={"format": "jsonl"})).text.splitlines()
            step = (await http.get(f"{api}/conformance/steps/{acked[0]}")).json()
            missing = (await http.get(f"{api}/conformance/steps/APP-99.1")).json()
            bad = await http.post(f"{api}/conformance/events", json={"type": "run"})
        assert page["events"] == written
        assert [json.loads(line) for line in lines] == written
        _valid(page["events"])
        assert step["done"] and step["ok"] is False and step["detail"] == "test"
        assert missing == {"step": "APP-99.1", "done": False}
        assert bad.status_code == 400


async def test_a_second_run_does_not_find_the_first_runs_acknowledgements(state_dir: Path) -> None:
    """Two campaigns of one profile against one sandbox: the second's steps are its own (a bug seen
    with the Java LPS: the second run was judged at once on the first run's acknowledgements)."""
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = InProcessControl(sb)
        case = next(c for c in catalogue(Profile.APP) if c.code == "x-mss-nil")
        bal = "dpi.hopital@mss.sandbox.test"
        steps = []
        for _ in range(2):
            events = RunEvents(control=control)
            await events.case_started(case, index=1, total=1, bound=5.0, bal=bal)
            steps.append(await events.step("send", {"bal": bal}, "Envoyez un message."))
        assert steps[0] != steps[1]
        async with httpx2.AsyncClient() as http:
            await http.post(f"{sb.info['api_url']}/conformance/steps/{steps[0]}/done", json={"ok": True})
        assert await events.acked_at() is None  # the first run's acknowledgement is not the second's


async def test_sse_stream(state_dir: Path) -> None:
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = InProcessControl(sb)
        events = RunEvents(control=control)
        await events.emit("end", verdict="NON CONFORME", complete=False, counts={}, exit_code=1)
        async with httpx2.AsyncClient(timeout=10) as http, http.stream(
                "GET", sb.info["api_url"] + "/conformance/events", headers={"Accept": "text/event-stream"}) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    assert json.loads(line[6:])["run_id"] == events.run_id
                    break


def test_a_posix_shell_harness_drives_the_suite(tmp_path: Path) -> None:
    """sh + curl only: the harness reads steps from the sandbox API, acts with curl, acknowledges."""
    state = tmp_path / "state"
    state.mkdir()
    with separate_sandbox(state) as sb:
        info = sb.info
        bal = next(b for b in info["bals"] if b["kind"] == "APP")
        env = {**os.environ, "API": info["api_url"], "BAL": bal["address"], "CA": info["ca_bundle"],
               "CERT": bal["cert"], "KEY": bal["key"],
               "IMAP": f"{info['imap']['authcli']['host']}:{info['imap']['authcli']['port']}",
               "SMTP": f"{info['smtp']['authcli']['host']}:{info['smtp']['authcli']['port']}"}
        harness = subprocess.Popen(["sh", str(ROOT / "docs" / "examples" / "conformance_harness.sh")], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert harness.stdout is not None
            assert "harnais prêt" in harness.stdout.readline()
            events_file = tmp_path / "events.jsonl"
            started = time.monotonic()
            run = subprocess.run(
                [sys.executable, "-m", "mssante", "conformance", "run", "--profile", "app", "--sandbox-state",
                 str(state), "--case", "imap-starttls", "--case", "smtp-starttls", "--case", "tls-version",
                 "--case", "no-clear-credentials", "--case", "x-mss-codecda", "--events", str(events_file)],
                capture_output=True, text=True, timeout=240)
            elapsed = time.monotonic() - started
            out, err = harness.communicate(timeout=60)
        finally:
            if harness.poll() is None:
                harness.kill()
                harness.communicate()
    events = [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines()]
    _valid(events)
    verdicts = {e["code"]: e["status"] for e in events if e["type"] == "verdict"}
    # The harness sends plain text where a CDA document is asked: that case fails, at once (acknowledged).
    assert verdicts == {"imap-starttls": "pass", "smtp-starttls": "pass", "tls-version": "pass",
                        "no-clear-credentials": "pass", "x-mss-codecda": "fail"}, (run.stdout, err)
    assert run.returncode == 1 and events[-1]["exit_code"] == 1
    assert elapsed < 120, "the acknowledged steps must not wait out the 300 s case timeouts"
    assert "fin : NON CONFORME" in out
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert all(s in out for s in steps)
