"""The Java LPS of docs/examples/java (JDK only, no mssante code) against a sandbox of another process.

What it proves: a non-Python LPS configured only from ``sandbox.json`` finds the fronts by SRV
through the sandbox DNS, checks the operator certificate (IGC Santé bundle, host name, CRLs),
and logs in with PSC (CIBA + XOAUTH2) for a BAL PER/ORG or with the ORG AUTH_CLI certificate +
PLAIN for a BAL APP; the sandbox's own journal is the judge.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

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
