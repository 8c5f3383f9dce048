"""The Java LPS of docs/examples/java (JDK only, no mssante code) against a sandbox of another process.

What it proves: a non-Python LPS configured only from ``sandbox.json`` finds the fronts by SRV
through the sandbox DNS, checks the operator certificate (IGC Santé bundle, host name, CRLs),
and logs in with PSC (CIBA + XOAUTH2) for a BAL PER/ORG or with the ORG AUTH_CLI certificate +
PLAIN for a BAL APP; the sandbox's own journal is the judge. Driven only by the suite's event
stream (``--events``, docs/schemas/conformance-events.schema.json) and acknowledging each step on
the sandbox API, it passes every case of both profiles; a deliberately broken variant fails
exactly the cases it breaks.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mssante.conformance import (
    ExternalDriver,
    HTTPControl,
    Profile,
    RunEvents,
    RunReport,
    Status,
    catalogue,
    choose_bal,
    run_job,
)
from tests.conformance._harness import GREEN
from tests.java.conftest import RunningSandbox, wait_line

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
    else:  # a PSC token makes the AUTH line longer than 512 octets: the response goes after 334 (RFC 4954 §4)
        smtp = next(r for r in mine if r["protocol"] == "smtp")
        assert "AUTH XOAUTH2" in [c["command"] for c in smtp["commands"]]
    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    assert {"authenticate", "connect", "logout"} <= {r["action"] for r in records}
    assert all(set(r) == {"action", "at", "author", "bal", "ok", "request", "response"} for r in records)
    assert "Bearer" not in trace.read_text(encoding="utf-8")


@pytest.mark.parametrize(("contract", "extra", "message"), [
    ("{not json", (), "sandbox.json illisible"),
    ('{"domain": "mss.sandbox.test"}', (), "sandbox.json incomplet"),
    (None, ("--break", "no-tls"), "--break accepte no-nil, no-mdn, no-cert-check"),
    (None, ("--keepalive", "0"), "nombre de millisecondes"),
])
def test_bad_input_is_a_clear_french_error_with_exit_code_2(
    java_classes: Path, sandbox: RunningSandbox, tmp_path: Path, contract: str | None, extra: tuple[str, ...],
    message: str,
) -> None:
    path = sandbox.contract
    if contract is not None:
        path = tmp_path / "sandbox.json"
        path.write_text(contract, encoding="utf-8")
    done = subprocess.run(
        ["java", "-cp", str(java_classes), "lps.Main", "--sandbox", str(path), "--probe", "--bal", PER, *extra],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Exception" not in done.stderr


def test_the_event_loop_skips_what_is_not_a_step_and_acknowledges_on_the_sandbox_api(
    java_classes: Path, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    info = json.loads(sandbox.contract.read_text(encoding="utf-8"))
    api = info["api_url"]
    step = "APP-99.1"

    def event(kind: str, **fields: Any) -> str:
        return json.dumps({"v": 1, "type": kind, "time": "2026-01-31T10:00:00.000Z", "run_id": "r1", **fields})

    lines = [
        "Bac à sable déjà lancé : pilotage par son API HTTP.",  # French text for people, not an event
        "[1, 2]",
        event("step", case="APP-01", step="early", action="read", params={"bal": APP}),  # before ``run``
        event("run", profile="app", bal=APP, peer=PER, lps="x", cases=["APP-99"], sandbox={"domain": "d"}),
        event("novelty", detail="an event type of a later version"),
        event("step", case="APP-99", step=step, action="wait", params={"bal": APP, "reason": "test"},
              deadline="2026-01-31T10:00:10.000Z", text_fr="Rien à faire.",
              ack={"method": "POST", "url": f"{api}/conformance/steps/{step}/done"}),
        event("end", verdict="CONFORME", complete=True, counts={}, exit_code=0),
        event("step", case="APP-99", step="after-end", action="read", params={"bal": APP}),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run(_java(java_classes, sandbox, events, tmp_path / "traces.jsonl"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "étape reçue avant l'événement « run » : ignorée" in done.stderr
    assert "after-end" not in done.stderr and "Exception" not in done.stderr
    with urllib.request.urlopen(f"{api}/conformance/steps/{step}", timeout=10) as response:
        ack = json.loads(response.read())
    assert ack["done"] is True and ack["ok"] is True
    with urllib.request.urlopen(f"{api}/conformance/steps/early", timeout=10) as response:
        assert json.loads(response.read())["done"] is False


# ---------------------------------------------------------------------------------------------
# The whole catalogue, the Java LPS driven only by the event stream and sandbox.json.

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


def _java_cases(profile: Profile) -> tuple[str, ...]:
    return tuple(c.code for c in catalogue(profile) if c.code not in NOT_YET_IN_JAVA)


def _java(java_classes: Path, sandbox: RunningSandbox, events: Path, trace: Path, *extra: str) -> list[str]:
    return ["java", "-cp", str(java_classes), "lps.Main", "--sandbox", str(sandbox.contract),
            "--events", str(events), "--trace", str(trace), *extra]


async def _campaign(java_classes: Path, sandbox: RunningSandbox, tmp_path: Path, profile: Profile,
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
    command = _java(java_classes, sandbox, events_file, trace, *FAST, *(["--break", breaks] if breaks else []))
    log_file = tmp_path / "lps.log"
    with log_file.open("w", encoding="utf-8") as log_out:
        lps = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL, stderr=log_out)
        try:
            report = await run_job(control, driver, profile=profile, bal=bal, case_ids=cases or _java_cases(profile),
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


def _valid(path: Path, schema: str) -> list[dict[str, Any]]:
    validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS / schema).read_text(encoding="utf-8")))
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        validator.validate(line)
    return lines


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP], ids=lambda p: p.value)
async def test_the_java_lps_passes_every_case(
    java_classes: Path, fresh_sandbox: RunningSandbox, tmp_path: Path, profile: Profile
) -> None:
    report, log, events_file, trace = await _campaign(java_classes, fresh_sandbox, tmp_path, profile)
    not_green = [(r.case_id, r.code, r.status.value, r.explanation) for r in report.results
                 if r.status is not Status.PASS]
    assert not_green == [], log
    assert len(report.results) == len(_java_cases(profile))
    events = _valid(events_file, "conformance-events.schema.json")
    assert events[0]["type"] == "run" and events[-1]["type"] == "end"
    assert events[-1]["verdict"] == "CONFORME" and events[-1]["exit_code"] == 0
    steps = [e for e in events if e["type"] == "step"]
    assert {"reconnect", "send", "read"} <= {e["action"] for e in steps}
    assert log.count("] ") >= len(steps), "the Java LPS took every step"
    assert "accusé de l'étape" not in log, "every acknowledgement was accepted by the sandbox"
    records = _valid(trace, "trace.schema.json")
    assert {"authenticate", "send", "append", "fetch"} <= {r["action"] for r in records}
    if profile is Profile.PER_ORG:
        fresh = next(r for r in report.results if r.code == "authenticationfailed")
        assert "avec un nouveau jeton" in fresh.explanation
        assert "PSC : session terminée" in log


#: The broken Java variant (``--break``) and, per profile, exactly the cases it must turn red.
BREAKS = "no-nil,no-mdn,no-cert-check,plain-pdf"
BROKEN = ("x-mss-nil", "mdn-request", "server-cert-expired", "server-cert-foreign", "server-cert-wrong-host",
          "server-cert-revoked", "server-cert-impostor", "crl-outage", "pdf-companion", "pdf-from-cda")
EXPECTED_RED = {Profile.PER_ORG: {*BROKEN, "mdn-return"}, Profile.APP: {*BROKEN, "mdn-return"}}  # MDN: issue 16


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP], ids=lambda p: p.value)
async def test_a_broken_java_variant_fails_exactly_the_cases_it_breaks(
    java_classes: Path, fresh_sandbox: RunningSandbox, tmp_path: Path, profile: Profile
) -> None:
    report, log, events_file, _ = await _campaign(java_classes, fresh_sandbox, tmp_path, profile, breaks=BREAKS)
    red = {r.code: r for r in report.results if r.status is not Status.PASS}
    table = "\n".join(f"{r.case_id} {r.code} {r.status.value}: {r.explanation}" for r in red.values())
    assert set(red) == EXPECTED_RED[profile], table + "\n" + log
    assert all(r.status is Status.FAIL for r in red.values()), table
    assert "X-MSS-NIL" in red["x-mss-nil"].explanation
    assert "Disposition-Notification-To" in red["mdn-request"].explanation
    assert all("Authentification tentée malgré" in red[c].explanation for c in BROKEN if c.startswith("server-cert"))
    assert "Aucun accusé de lecture" in red["mdn-return"].explanation
    assert "PDF/A-1" in red["pdf-companion"].explanation
    assert "ne nomme pas le patient" in red["pdf-from-cda"].explanation
    end = _valid(events_file, "conformance-events.schema.json")[-1]
    assert end["verdict"] == "NON CONFORME" and end["exit_code"] == 1


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
    report, log, _, _ = await _campaign(java_classes, fresh_sandbox, tmp_path, Profile.PER_ORG, breaks=breaks,
                                        cases=cases)
    by_code = {r.code: r for r in report.results}
    sound, red = by_code["imap-xoauth2"], by_code[broken]
    assert sound.status is Status.PASS, sound.explanation + log
    assert red.status is Status.FAIL, red.explanation + log
    assert red.cause is not None and red.cause.code == cause
    assert fix in red.explanation


def test_the_readme_three_terminals(java_classes: Path, sandbox: RunningSandbox, tmp_path: Path) -> None:
    """The walkthrough as written: the LPS follows the sandbox API, ``mssante conformance run`` drives it."""
    events_file, trace, report = tmp_path / "events.jsonl", tmp_path / "traces.jsonl", tmp_path / "report.json"
    # in catalogue order
    cases = ("imap-xoauth2", "smtp-xoauth2", "x-mss-nil", "x-mss-codecda", "x-mss-ins", "mdn-return", "traces")
    lps = subprocess.Popen(_java(java_classes, sandbox, Path("api"), trace), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    suite: subprocess.Popen[str] | None = None
    try:
        wait_line(lps, lps.stderr, "LPS prêt".encode(), 60.0)
        suite = subprocess.Popen(
            [sys.executable, "-m", "mssante", "conformance", "run", "--profile", "per-org",
             "--sandbox-state", str(sandbox.state_dir), "--product-reference", JAVA_NIL,
             "--events", str(events_file), "--trace-file", str(trace),
             "--time-scale", "0.05", "--json-file", str(report), *(f"--case={c}" for c in cases)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = suite.communicate(timeout=240)
        _, err = lps.communicate(timeout=30)
    finally:
        for process in (suite, lps):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    log = err.decode("utf-8", "replace")
    assert suite.returncode == 0, out + log
    assert f"CONFORME — conforme {len(cases)}" in out
    assert lps.returncode == 0 and "fin de campagne : CONFORME" in log
    results = json.loads(report.read_text(encoding="utf-8"))["results"]
    assert [(r["code"], r["status"]) for r in results] == [(c, "pass") for c in cases]
    assert [e["type"] for e in _valid(events_file, "conformance-events.schema.json")][-1] == "end"


def test_a_hostile_archive_is_read_without_dtd_nor_external_entity(
    java_classes: Path, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A received IHE_XDM.ZIP whose METADATA.XML declares an external entity (XXE): the Java LPS reads the
    message, refuses the DTD (no file content leaks into what it understood) and still acknowledges the step."""
    import io
    import zipfile
    from email.message import EmailMessage

    info = json.loads(sandbox.contract.read_text(encoding="utf-8"))
    api = info["api_url"]
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-DU-POSTE-42", encoding="utf-8")
    hostile = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
               '<SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">'
               '<ExternalIdentifier identificationScheme="urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427" '
               'value="&x;"/></SubmitObjectsRequest>')
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("IHE_XDM/SUBSET01/METADATA.XML", hostile)
    message = EmailMessage()
    message["From"] = "dpi.hopital@mss.sandbox.test"
    message["To"] = PER
    message["Subject"] = "XDM/1.0/DDM+archive hostile"
    message["Message-ID"] = "<xxe-java@mss.sandbox.test>"
    message.set_content("Bonjour.\n")
    message.add_attachment(archive.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    request = urllib.request.Request(f"{api}/bals/{PER}/messages", data=message.as_bytes(), method="POST",
                                     headers={"Content-Type": "message/rfc822"})
    with urllib.request.urlopen(request, timeout=10):
        pass
    step = "JAVA-XXE.1"

    def event(kind: str, **fields: Any) -> str:
        return json.dumps({"v": 1, "type": kind, "time": "2026-01-31T10:00:00.000Z", "run_id": "r2", **fields})

    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([
        event("run", profile="per-org", bal=PER, peer=APP, lps="x", cases=["JAVA-XXE"], sandbox={"domain": "d"}),
        event("step", case="JAVA-XXE", step=step, action="read", params={"bal": PER, "folder": "INBOX"},
              deadline="2026-01-31T10:00:10.000Z", text_fr="Lisez.",
              ack={"method": "POST", "url": f"{api}/conformance/steps/{step}/done"}),
        event("end", verdict="CONFORME", complete=True, counts={}, exit_code=0),
    ]) + "\n", encoding="utf-8")
    done = subprocess.run(_java(java_classes, sandbox, events, tmp_path / "traces.jsonl"),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "SECRET-DU-POSTE-42" not in done.stderr and "Exception" not in done.stderr
    with urllib.request.urlopen(f"{api}/conformance/steps/{step}", timeout=10) as response:
        ack = json.loads(response.read())
    assert ack["done"] is True and ack["ok"] is True, ack
    assert "SECRET-DU-POSTE-42" not in json.dumps(ack)
    mine = [u for u in ack["understood"] if u["message_id"] == "<xxe-java@mss.sandbox.test>"]
    assert len(mine) == 1 and mine[0].get("patient") is None
    assert mine[0]["subject_shown"] == "archive hostile" and mine[0]["sender_kind"] == "professional"
