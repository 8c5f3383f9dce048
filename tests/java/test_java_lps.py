"""The Java LPS of docs/examples/java (JDK only, no mssante code) against a sandbox of another process.

What it proves: a non-Python LPS configured only from ``sandbox.json`` finds the fronts by SRV
through the sandbox DNS, checks the operator certificate (IGC Santé bundle, host name, CRLs),
and logs in with PSC (CIBA + XOAUTH2) for a BAL PER/ORG or with the ORG AUTH_CLI certificate +
PLAIN for a BAL APP; the sandbox's own journal is the judge. Driven only by the suite's event
stream (``--events``, docs/schemas/conformance-events.schema.json) and acknowledging each step on
the sandbox API, it passes every case of both profiles and a deliberately broken variant fails
exactly the cases it breaks (tests/java/test_java_campaign_*.py, split so that xdist deals the
campaigns to several workers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.java._campaign import JAVA_NIL, java_command, valid
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
    done = subprocess.run(java_command(java_classes, sandbox, events, tmp_path / "traces.jsonl"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "étape reçue avant l'événement « run » : ignorée" in done.stderr
    assert "after-end" not in done.stderr and "Exception" not in done.stderr
    with urllib.request.urlopen(f"{api}/conformance/steps/{step}", timeout=10) as response:
        ack = json.loads(response.read())
    assert ack["done"] is True and ack["ok"] is True
    with urllib.request.urlopen(f"{api}/conformance/steps/early", timeout=10) as response:
        assert json.loads(response.read())["done"] is False




def test_the_readme_three_terminals(java_classes: Path, sandbox: RunningSandbox, tmp_path: Path) -> None:
    """The walkthrough as written: the LPS follows the sandbox API, ``mssante conformance run`` drives it."""
    events_file, trace, report = tmp_path / "events.jsonl", tmp_path / "traces.jsonl", tmp_path / "report.json"
    # in catalogue order
    cases = ("imap-xoauth2", "smtp-xoauth2", "x-mss-nil", "x-mss-codecda", "x-mss-ins", "mdn-return", "traces")
    lps = subprocess.Popen(java_command(java_classes, sandbox, Path("api"), trace), stdout=subprocess.DEVNULL,
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
    assert [e["type"] for e in valid(events_file, "conformance-events.schema.json")][-1] == "end"


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
    done = subprocess.run(java_command(java_classes, sandbox, events, tmp_path / "traces.jsonl"),
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
