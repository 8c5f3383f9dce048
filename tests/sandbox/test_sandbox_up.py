"""`mssante sandbox up` as a user runs it: a real process, its sandbox.json contract, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dns.resolver
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    state = tmp_path_factory.mktemp("sandbox-state")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state_file = state / "sandbox.json"
    deadline = time.monotonic() + 60
    while not state_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"sandbox did not start:\n{out}\n{err}")
        time.sleep(0.1)
    info = json.loads(state_file.read_text())
    yield info, state
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Bac à sable MSSanté prêt" in out
    assert not state_file.exists(), "a stopped sandbox must not leave a sandbox.json behind"


def _paths(info: dict[str, Any]) -> list[str]:
    found = [info["ca_bundle"]]
    for bal in info["bals"]:
        found += [p for p in (bal["cert"], bal["key"]) if p]
    return found


def test_contract_shape(running: tuple[dict[str, Any], Path]) -> None:
    info, _ = running
    keys = ("domain", "ca_bundle", "dns", "psc", "imap", "smtp", "crl_urls", "webmail_url", "professionals", "bals")
    for key in keys:
        assert key in info
    for path in _paths(info):
        assert os.path.isabs(path) and os.path.exists(path), path
    urls = [info["psc"]["issuer"], info["psc"]["discovery_url"], info["webmail_url"], *info["crl_urls"]]
    for url in urls:
        assert urlsplit(url).hostname == "127.0.0.1", url
    for proto in ("imap", "smtp"):
        for front in ("psc", "authcli"):
            assert info[proto][front]["port"] > 0
    kinds = {b["kind"] for b in info["bals"]}
    assert kinds == {"PER", "ORG", "APP"}
    for bal in info["bals"]:
        assert (bal["cert"] is not None) == (bal["kind"] == "APP")
    assert any(p.get("ciba") == "deny" for p in info["professionals"])


def test_keys_are_private(running: tuple[dict[str, Any], Path]) -> None:
    _, state = running
    keys = list(state.rglob("*.key"))
    assert keys
    for key in keys:
        assert key.stat().st_mode & 0o077 == 0, key


def test_hosts_resolve_through_sandbox_dns(running: tuple[dict[str, Any], Path]) -> None:
    info, _ = running
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [info["dns"]["host"]]
    resolver.port = info["dns"]["port"]
    for proto in ("imap", "smtp"):
        for front in ("psc", "authcli"):
            host = info[proto][front]["host"]
            assert [r.address for r in resolver.resolve(host, "A")] == ["127.0.0.1"]
    srv = resolver.resolve(f"_imap._tcp.{info['domain']}", "SRV")
    by_priority = {r.priority: (r.target.to_text().rstrip("."), r.port) for r in srv}
    assert by_priority[10] == (info["imap"]["psc"]["host"], info["imap"]["psc"]["port"])
    assert by_priority[20] == (info["imap"]["authcli"]["host"], info["imap"]["authcli"]["port"])


def test_psc_discovery_and_crls_served(running: tuple[dict[str, Any], Path]) -> None:
    info, _ = running
    discovery = httpx2.get(info["psc"]["discovery_url"], timeout=10).json()
    assert discovery["issuer"] == info["psc"]["issuer"]
    for url in info["crl_urls"]:
        response = httpx2.get(url, timeout=10)
        assert response.status_code == 200
        crl = x509.load_der_x509_crl(response.content)
        assert crl.next_update_utc is not None


def test_app_certificate_verifies_with_served_crl(running: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    info, _ = running
    app = next(b for b in info["bals"] if b["kind"] == "APP")
    crl_pem = tmp_path / "crls.pem"
    with crl_pem.open("w") as fh:
        for url in info["crl_urls"]:
            crl = x509.load_der_x509_crl(httpx2.get(url, timeout=10).content)
            fh.write(crl.public_bytes(Encoding.PEM).decode())
    result = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", info["ca_bundle"], "-CRLfile", str(crl_pem), app["cert"]],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mssante", *args], capture_output=True, text=True, timeout=60)


def test_fault_and_journal_cli_drive_the_running_sandbox(running: tuple[dict[str, Any], Path]) -> None:
    info, state = running
    per = next(b["address"] for b in info["bals"] if b["kind"] == "PER")
    out = _cli("sandbox", "fault", "--state-dir", str(state), "--fail-auth", "2", "--code", "UNAVAILABLE", "--bal", per)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pending_auth_failures"] == 2
    out = _cli("sandbox", "fault", "--state-dir", str(state), "--psc-unavailable", "--delay", "0.5")
    state_now = json.loads(out.stdout)
    assert state_now["psc_unavailable"] is True and state_now["delay"] == 0.5
    out = _cli("sandbox", "fault", "--state-dir", str(state), "--clear")
    cleared = json.loads(out.stdout)
    assert cleared["pending_auth_failures"] == 0 and cleared["psc_unavailable"] is False
    out = _cli("sandbox", "journal", "--state-dir", str(state))
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        json.loads(line)


def test_cli_without_sandbox_is_a_one_line_error(tmp_path: Path) -> None:
    out = _cli("sandbox", "fault", "--state-dir", str(tmp_path), "--clear")
    assert out.returncode == 2
    assert "no running sandbox" in out.stderr and "Traceback" not in out.stderr
