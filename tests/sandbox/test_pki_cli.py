"""``mssante sandbox pki`` commands, and revocation from another process while the sandbox runs."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mssante.cli._pki import parse_serial, resolve_pki_dir
from mssante.cli._pki import pki as pki_group
from mssante.errors import ConfigError, RevocationError, UsageError
from mssante.sandbox.config import default_config
from mssante.sandbox.pki import ORG_CA_FILE, TestPKI

CONFIG = default_config()
HOSPITAL = CONFIG.structures[0]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    state = tmp_path_factory.mktemp("pki-cli") / "pki"  # as `mssante sandbox up`: STATE_DIR/pki
    return TestPKI.load_or_create(state, server_names=CONFIG.server_names, crl_base_url="http://crl.sandbox.test")


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(pki_group, list(args))
    return result.exit_code, result.output, result.exception


def org_crl_serials(pki: TestPKI) -> set[int]:
    return {r.serial_number for r in x509.load_der_x509_crl(pki.crl_bytes(f"{ORG_CA_FILE}.crl"))}


def test_issue_prints_paths_and_reuses(pki: TestPKI) -> None:
    code, out, exc = run("issue", "--state-dir", str(pki.state_dir), "--structure-id", HOSPITAL.national_id,
                         "--cn", "DPI HOPITAL")
    assert code == 0 and exc is None, out
    lines = dict(line.split(":", 1) for line in out.splitlines())
    cert_path, key_path = Path(lines["certificate"].strip()), Path(lines["key"].strip())
    assert cert_path.exists() and key_path.exists()
    der = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(Encoding.DER)
    assert pki.check_client_certificate(der).common_name == "DPI HOPITAL"
    assert run("issue", "--state-dir", str(pki.state_dir), "--structure-id", HOSPITAL.national_id,
               "--cn", "DPI HOPITAL")[1] == out  # same certificate again


def test_issue_unknown_structure(pki: TestPKI) -> None:
    code, _out, exc = run("issue", "--state-dir", str(pki.state_dir), "--structure-id", "1750009999")
    assert isinstance(exc, ConfigError) and "not in the sandbox configuration" in str(exc)
    code, out, exc = run("issue", "--state-dir", str(pki.state_dir), "--structure-id", "1750009999",
                         "--name", "CLINIQUE HORS CONFIG", "--departement", "Sarthe (72)")
    assert code == 0 and exc is None, out


def test_show_lists_certificates(pki: TestPKI) -> None:
    issued = pki.issue_client_cert(HOSPITAL, "SHOWN")
    code, out, exc = run("show", "--state-dir", str(pki.state_dir))
    assert code == 0 and exc is None
    assert "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS SIMULATION" in out
    assert f"{issued.serial:X}" in out and "CN=SHOWN" in out
    assert "http://crl.sandbox.test/crl/ACI-EL-ORG-SIM.crl" in out


def test_revoke_by_serial_and_errors(pki: TestPKI) -> None:
    issued = pki.issue_client_cert(HOSPITAL, "CLI REVOKE")
    hex_serial = f"{issued.serial:X}"
    hex_serial = "0" * (len(hex_serial) % 2) + hex_serial
    serial_text = ":".join(hex_serial[i:i + 2] for i in range(0, len(hex_serial), 2))  # openssl -text style
    code, out, exc = run("revoke", "--state-dir", str(pki.state_dir), "--serial", serial_text,
                         "--reason", "superseded")
    assert code == 0 and exc is None and "revoked serial" in out, out
    assert issued.serial in org_crl_serials(pki)
    assert "already revoked" in run("revoke", "--state-dir", str(pki.state_dir), str(issued.cert_path))[1]
    assert isinstance(run("revoke", "--state-dir", str(pki.state_dir))[2], UsageError)
    assert isinstance(run("revoke", "--state-dir", str(pki.state_dir), "--serial", "zz")[2], UsageError)
    assert isinstance(run("show", "--state-dir", str(pki.state_dir.parent / "nothing"))[2], ConfigError)


def test_state_dir_may_be_the_sandbox_state_directory(pki: TestPKI) -> None:
    sandbox_dir = pki.state_dir.parent  # what `mssante sandbox up --state-dir` and the other commands take
    assert resolve_pki_dir(sandbox_dir) == pki.state_dir
    assert resolve_pki_dir(pki.state_dir) == pki.state_dir
    code, out, exc = run("show", "--state-dir", str(sandbox_dir))
    assert code == 0 and exc is None, out
    assert f"state directory: {pki.state_dir}" in out
    code, out, exc = run("issue", "--state-dir", str(sandbox_dir), "--structure-id", HOSPITAL.national_id,
                         "--cn", "VIA SANDBOX DIR")
    assert code == 0 and exc is None, out
    assert Path(dict(line.split(":", 1) for line in out.splitlines())["certificate"].strip()).is_relative_to(
        pki.state_dir)
    issued = pki.issue_client_cert(HOSPITAL, "REVOKE VIA SANDBOX DIR")
    code, out, exc = run("revoke", "--state-dir", str(sandbox_dir), "--serial", f"{issued.serial:X}")
    assert code == 0 and exc is None and "revoked serial" in out, out
    assert issued.serial in org_crl_serials(pki)


def test_state_dir_prefers_its_own_index_and_reports_the_given_directory(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "index.json").write_text("{}", encoding="utf-8")
    (tmp_path / "index.json").write_text("{}", encoding="utf-8")
    assert resolve_pki_dir(tmp_path) == tmp_path  # a PKI directory that happens to hold a pki/ sub-directory
    empty = tmp_path / "empty"
    (empty / "pki").mkdir(parents=True)  # a sandbox that never started: no index anywhere
    assert resolve_pki_dir(empty) == empty
    code, _out, exc = run("show", "--state-dir", str(empty))
    assert code != 0 and isinstance(exc, ConfigError) and str(empty) in str(exc)


def test_parse_serial() -> None:
    assert parse_serial("0x1F") == parse_serial("1f") == parse_serial("1F") == 31
    assert parse_serial("01:00") == 256
    with pytest.raises(UsageError):
        parse_serial("")


def test_revoke_from_another_process_is_seen_at_once(pki: TestPKI) -> None:
    issued = pki.issue_client_cert(HOSPITAL, "OTHER PROCESS")
    assert pki.check_client_certificate(issued.der()).common_name == "OTHER PROCESS"
    script = (
        "import sys; from mssante.cli._pki import pki; "
        "pki(['revoke', '--state-dir', sys.argv[1], sys.argv[2]], standalone_mode=False)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(pki.state_dir), str(issued.cert_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    with pytest.raises(RevocationError):
        pki.check_client_certificate(issued.der())  # same in-memory object as the running sandbox


def test_concurrent_revocations_all_land(pki: TestPKI) -> None:
    certs = [pki.issue_client_cert(HOSPITAL, f"PARALLEL {i}") for i in range(4)]
    before = x509.load_der_x509_crl(pki.crl_bytes(f"{ORG_CA_FILE}.crl"))
    number = before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    errors: list[BaseException] = []

    def revoke(serial: int) -> None:
        try:
            TestPKI.load(pki.state_dir).revoke(serial)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=revoke, args=(c.serial,)) for c in certs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert {c.serial for c in certs} <= org_crl_serials(pki)
    after = x509.load_der_x509_crl(pki.crl_bytes(f"{ORG_CA_FILE}.crl"))
    assert after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 4
