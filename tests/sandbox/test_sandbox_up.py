"""`mssante sandbox up` as a user runs it: a real process, its sandbox.json contract, clean stop."""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import shutil
import signal
import ssl
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

from mssante.trust import BASELINE_CIPHERS

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
    assert "aucun bac à sable lancé" in out.stderr and "Traceback" not in out.stderr


def test_curl_reads_a_per_bal_with_only_sandbox_token_and_sandbox_hosts(
    running: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    """A stock client, no trick: --resolve built from `sandbox hosts`, the bearer from `sandbox token`."""
    info, state = running
    per = next(b["address"] for b in info["bals"] if b["kind"] == "PER")
    raw = (f"From: sil.labo@{info['domain']}\r\nTo: {per}\r\nSubject: Lu par curl\r\n"
           f"Message-ID: <curl-1@{info['domain']}>\r\n\r\nBonjour curl.\r\n").encode()
    stored = httpx2.post(f"{info['api_url']}/bals/{per}/messages", content=raw,
                         headers={"Content-Type": "message/rfc822"}, timeout=10).json()
    script = r"""
set -eu
M="$PYTHON -m mssante"
HOSTS=$($M sandbox hosts --state-dir "$STATE")
RESOLVE=$(printf '%s\n' "$HOSTS" | awk '!/^#/ {printf "--resolve %s:%s:%s ", $2, $NF, $1}')
IMAP=$(printf '%s\n' "$HOSTS" | awk '/IMAP front psc/ {print $2 ":" $NF}')
TOKEN=$($M sandbox token --state-dir "$STATE" "$BAL")
curl -sS --ssl-reqd --cacert "$CA" $RESOLVE --user "$BAL" --oauth2-bearer "$TOKEN" \
  --login-options AUTH=XOAUTH2 "imap://$IMAP/INBOX;UID=$UID_"
"""
    env = {**os.environ, "PYTHON": sys.executable, "STATE": str(state), "BAL": per, "CA": info["ca_bundle"],
           "UID_": str(stored["uid"])}
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert "Subject: Lu par curl" in out.stdout and "Bonjour curl." in out.stdout
    hosts = _cli("sandbox", "hosts", "--state-dir", str(state)).stdout.splitlines()
    assert hosts[0].startswith("#") and all(line.split()[0] == "127.0.0.1" for line in hosts[1:])
    assert {line.split()[1] for line in hosts[1:]} == {info[p][f]["host"] for p in ("imap", "smtp")
                                                       for f in ("psc", "authcli")}


def test_sandbox_token_checks_who(running: tuple[dict[str, Any], Path]) -> None:
    info, state = running
    out = _cli("sandbox", "token", "--state-dir", str(state), "000000000000")
    assert out.returncode == 2 and "aucun professionnel" in out.stderr and "Traceback" not in out.stderr
    app = next(b["address"] for b in info["bals"] if b["kind"] == "APP")
    out = _cli("sandbox", "token", "--state-dir", str(state), app)
    assert out.returncode == 2 and "BAL APP" in out.stderr
    nid = info["professionals"][0]["national_id"]
    token = _cli("sandbox", "token", "--state-dir", str(state), nid).stdout.strip()
    assert token.count(".") == 2 and "\n" not in token  # one JWT, nothing else on stdout


def test_psc_curl_recipes_of_the_guide(running: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    """docs/examples/psc_curl.sh: discovery, CIBA (scope_all, acr_values=eidas1), refresh, code + PKCE."""
    info, state = running
    script = Path(__file__).resolve().parents[2] / "docs" / "examples" / "psc_curl.sh"
    nid = info["professionals"][0]["national_id"]
    out = subprocess.run(["sh", str(script), str(state / "sandbox.json"), nid], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for line in ("CIBA: access token of", "refresh: new access token of", "code + PKCE: access token of"):
        assert line in out.stdout
    for name in ("tokens.json", "refreshed.json", "code-tokens.json"):
        assert '"access_token"' in (tmp_path / name).read_text()


def test_pinned_ports_survive_a_restart(tmp_path: Path) -> None:
    """[ports] in the configuration: an LPS configured once keeps working after `sandbox up` restarts."""
    import socket

    from tests.conformance._separate import separate_sandbox

    def free() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    ports = {name: free() for name in ("dns", "imap_psc", "imap_authcli", "smtp_psc", "smtp_authcli")}
    config = "[ports]\n" + "".join(f"{k} = {v}\n" for k, v in ports.items())
    state = tmp_path / "state"
    state.mkdir()
    seen = []
    for _ in range(2):
        with separate_sandbox(state, config) as sb:
            seen.append((sb.info["dns"]["port"], sb.info["imap"]["psc"]["port"], sb.info["smtp"]["authcli"]["port"],
                         sb.info["api_url"]))
    assert seen[0] == seen[1] == (ports["dns"], ports["imap_psc"], ports["smtp_authcli"], seen[0][3])


@pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp is not installed (apt-get install msmtp)")
def test_msmtp_sends_with_passwordeval_sandbox_token(running: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    """msmtp, as documented: XOAUTH2 with `passwordeval "mssante sandbox token ..."`, STARTTLS, the sandbox CA."""
    info, state = running
    per = next(b["address"] for b in info["bals"] if b["kind"] == "PER")
    org = next(b["address"] for b in info["bals"] if b["kind"] == "ORG")
    smtp = info["smtp"]["psc"]
    rc = tmp_path / "msmtprc"
    rc.write_text(
        "account sandbox\nhost 127.0.0.1\n"
        f"tls_host_override {smtp['host']}\nport {smtp['port']}\ntls on\ntls_starttls on\n"
        f"tls_trust_file {info['ca_bundle']}\nauth xoauth2\nuser {per}\nfrom {per}\n"
        f'passwordeval "{sys.executable} -m mssante sandbox token --state-dir {state} {per}"\n', encoding="utf-8")
    rc.chmod(0o600)
    message = f"From: {per}\r\nTo: {org}\r\nSubject: Envoi msmtp\r\nX-MSS-NIL: MSMTP-TEST\r\n\r\nCorps.\r\n"
    out = subprocess.run(["msmtp", "-C", str(rc), "-a", "sandbox", org], input=message, capture_output=True,
                         text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    listed = httpx2.get(f"{info['api_url']}/bals/{org}/messages", timeout=10).json()["messages"]
    assert any(m["subject"] == "Envoi msmtp" for m in listed)


def test_fault_cli_drives_the_bench_faults(running: tuple[dict[str, Any], Path]) -> None:
    info, state = running
    per = next(b["address"] for b in info["bals"] if b["kind"] == "PER")
    out = _cli("sandbox", "fault", "--state-dir", str(state), "--reject-next-token", "--bal", per,
               "--crl-outage", "503")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["token_gate"]["bal"] == per and shown["crl_outage"] == {"mode": "503", "requests": 0}
    assert httpx2.get(info["crl_urls"][0], timeout=10).status_code == 503
    out = _cli("sandbox", "fault", "--state-dir", str(state), "--crl-outage", "off",
               "--end-psc-sessions", info["professionals"][0]["national_id"])
    assert out.returncode == 0, out.stderr
    assert "PSC terminée" in out.stderr and httpx2.get(info["crl_urls"][0], timeout=10).status_code == 200
    out = _cli("sandbox", "fault", "--state-dir", str(state), "--clear")
    assert json.loads(out.stdout)["token_gate"] is None
    out = _cli("sandbox", "fault", "--state-dir", str(state), "--reject-next-token")
    assert out.returncode == 2 and "--bal" in out.stderr


def _starttls_imap(info: dict[str, Any]) -> str:
    """STARTTLS on the PSC IMAP front with a correct client (TLS >= 1.2, ECO.1.1.3 suites): version or error."""
    ctx = ssl.create_default_context(cafile=info["ca_bundle"])
    ctx.set_ciphers(BASELINE_CIPHERS)
    imap = imaplib.IMAP4("127.0.0.1", info["imap"]["psc"]["port"], timeout=10)
    imap.host = info["imap"]["psc"]["host"]  # server_hostname for the host name check
    try:
        imap.starttls(ssl_context=ctx)
        return str(imap.sock.version())  # type: ignore[attr-defined]
    except ssl.SSLError as exc:
        return str(exc.reason)
    finally:
        with contextlib.suppress(OSError):
            imap.shutdown()


def test_fault_cli_serves_the_tls_probe_and_the_api_shows_hellos_and_dns(running: tuple[dict[str, Any], Path]) -> None:
    info, state = running
    t0 = time.time()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [info["dns"]["host"]], info["dns"]["port"]
    resolver.resolve(f"_imap._tcp.{info['domain']}", "SRV")
    for mode, refused in (("old-tls", "UNSUPPORTED_PROTOCOL"), ("weak-suites", "SSLV3_ALERT_HANDSHAKE_FAILURE")):
        out = _cli("sandbox", "fault", "--state-dir", str(state), "--tls-probe", mode)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["tls_probe"] == mode
        assert _starttls_imap(info) in (refused, "TLSV1_ALERT_PROTOCOL_VERSION")
    out = _cli("sandbox", "fault", "--state-dir", str(state), "--tls-probe", "off")
    assert json.loads(out.stdout)["tls_probe"] is None
    assert _starttls_imap(info) in ("TLSv1.2", "TLSv1.3")
    hellos = httpx2.get(f"{info['api_url']}/tls/client-hellos", params={"since": t0}, timeout=10).json()
    assert [h["probe"] for h in hellos["client_hellos"]] == [True, True, False]
    assert all(h["server_name"] == info["imap"]["psc"]["host"] for h in hellos["client_hellos"])
    queries = httpx2.get(f"{info['api_url']}/dns/queries", params={"since": t0}, timeout=10).json()["queries"]
    assert [(q["name"], q["type"]) for q in queries] == [(f"_imap._tcp.{info['domain']}", "SRV")]
