"""BAL APP credentials as PKCS#12 (.p12/.pfx, what Windows certificate stores export) and encrypted PEM keys.

The PKCS#12 files are made by the ``openssl`` command line (software we did not write), as an editor's
export would be: OpenSSL 3's defaults (AES-256, PBKDF2) and the TripleDES-SHA1 form of Windows' exports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mssante.client import Mailbox, TrustSettings
from mssante.credentials import CertificateFileError, ClientCertificate
from mssante.errors import ConfigError
from mssante.sandbox.config import default_config
from mssante.sandbox.pki import TestPKI
from mssante.sandbox.pki.records import IssuedCert
from mssante.secret import Secret

from .test_mailbox_support import APP, options, resolver, running_sandbox, trust

PASSWORD = "Mot-de-passe-export-2026!"
WINDOWS = ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"]


def export_p12(path: Path, cert: Path, key: Path | None, password: str, *, chain: Path | None = None,
               extra: list[str] | None = None) -> Path:
    """``openssl pkcs12 -export``: the certificate, its key (unless None) and chain, under ``password``."""
    argv = ["openssl", "pkcs12", "-export", "-out", str(path), "-in", str(cert), "-passout", "env:P12_PASSWORD"]
    argv += ["-inkey", str(key)] if key is not None else ["-nokeys"]
    argv += ["-certfile", str(chain)] if chain is not None else []
    subprocess.run(argv + (extra or []), check=True, capture_output=True, timeout=30,
                   env={**os.environ, "P12_PASSWORD": password})
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.load_or_create(tmp_path_factory.mktemp("pki"), server_names=default_config().server_names,
                                  crl_base_url="http://127.0.0.1:9")


@pytest.fixture(scope="module")
def issued(pki: TestPKI) -> IssuedCert:
    return pki.issue_client_cert(default_config().structures[0], "DPI")


def _settings(pki: TestPKI) -> TrustSettings:
    return TrustSettings(ca_bundle=pki.ca_bundle_path)


@pytest.mark.parametrize("form", ["openssl3", "windows-3des", "legacy-rc2"])
async def test_a_pkcs12_logs_in_to_the_authcli_front(sandbox_state: Path, tmp_path: Path, form: str) -> None:
    async with running_sandbox(sandbox_state) as sb:
        bal = next(b for b in sb.info["bals"] if b["address"] == APP)
        chain = Path(sb.info["ca_bundle"])
        extra = {"openssl3": None, "windows-3des": WINDOWS, "legacy-rc2": ["-legacy"]}[form]
        try:  # -legacy: RC2-40 certificates, 3DES key, as OpenSSL 1.x and older Windows exported them
            p12 = export_p12(tmp_path / "structure.pfx", Path(bal["cert"]), Path(bal["key"]), PASSWORD, chain=chain,
                             extra=extra)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"openssl cannot export this form here: {exc.stderr.decode(errors='replace')[:200]}")
        cert = ClientCertificate.from_pkcs12(p12, PASSWORD)
        assert PASSWORD not in repr(cert)
        async with Mailbox(APP, kind="APP", credentials=cert, resolver=resolver(sb), tls=trust(sb),
                           options=options(sb)) as box:
            uid = await box.append("INBOX", b"Subject: p12\r\n\r\nbonjour\r\n")
            assert uid is not None and b"bonjour" in (await box.fetch(uid)).raw


def _refused(cert: ClientCertificate, pki: TestPKI, match: str) -> CertificateFileError:
    with pytest.raises(ConfigError, match=match) as caught:
        _settings(pki).context(cert)
    assert isinstance(caught.value, CertificateFileError) and caught.value.fault == "config"
    for text in (str(caught.value), repr(caught.value), repr(cert)):
        assert PASSWORD not in text and "mauvais" not in text
    return caught.value  # type: ignore[return-value]  # checked above


def test_pkcs12_errors_are_clear_config_errors(tmp_path: Path, pki: TestPKI, issued: IssuedCert) -> None:
    p12 = export_p12(tmp_path / "s.p12", issued.cert_path, issued.key_path, PASSWORD)
    _settings(pki).context(ClientCertificate.from_pkcs12(p12, Secret(PASSWORD)))  # the right password opens it
    wrong = _refused(ClientCertificate.from_pkcs12(p12, "mauvais"), pki, "the password does not open this PKCS#12")
    assert (wrong.problem, wrong.path) == ("wrong_password", p12)  # a stable code for programs (the CLI's advice)
    assert _refused(ClientCertificate.from_pkcs12(p12), pki, "this PKCS#12 file needs a password").problem == \
        "password_needed"
    pem_named_p12 = tmp_path / "pem.p12"
    pem_named_p12.write_bytes(issued.cert_path.read_bytes())
    _refused(ClientCertificate.from_pkcs12(pem_named_p12, PASSWORD), pki, r"not a PKCS#12 .*\(it is a PEM file")
    junk = tmp_path / "junk.pfx"
    junk.write_bytes(b"\x30\x03\x02\x01\x07" + os.urandom(64))
    _refused(ClientCertificate.from_pkcs12(junk, PASSWORD), pki, r"not a PKCS#12 \(\.p12/\.pfx\) file$")
    certs_only = export_p12(tmp_path / "certs-only.p12", issued.cert_path, None, PASSWORD)
    _refused(ClientCertificate.from_pkcs12(certs_only, PASSWORD), pki, "holds no private key")
    with pytest.raises(ConfigError, match="does not exist"):
        ClientCertificate.from_pkcs12(tmp_path / "absent.p12", PASSWORD)


def test_unusable_certificates_are_refused_before_any_connection(tmp_path: Path, pki: TestPKI,
                                                                 issued: IssuedCert) -> None:
    negatives = pki.issue_negative_certs()
    expired = export_p12(tmp_path / "expired.p12", negatives["expired"].cert_path, negatives["expired"].key_path,
                         PASSWORD)
    late = _refused(ClientCertificate.from_pkcs12(expired, PASSWORD), pki, r"expired on \d{4}-\d\d-\d\d: renew it")
    assert late.problem == "expired" and late.date == negatives["expired"].certificate().not_valid_after_utc
    signing = negatives["no_clientauth"]
    _refused(ClientCertificate(cert=signing.cert_path, key=signing.key_path), pki, "not for client authentication")
    # a certificate with another certificate's key (a mixed-up export)
    key = serialization.load_pem_private_key(negatives["revoked"].key_path.read_bytes(), None)
    mixed = tmp_path / "mixed.p12"
    mixed.write_bytes(pkcs12.serialize_key_and_certificates(
        b"mixed", key, None, [issued.certificate()],  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(PASSWORD.encode())))
    _refused(ClientCertificate.from_pkcs12(mixed, PASSWORD), pki, "holds no certificate for its key")
    _refused(ClientCertificate(cert=issued.cert_path, key=negatives["revoked"].key_path), pki,
             "does not belong to the certificate")
    assert issued.certificate().not_valid_after_utc > datetime.now(UTC) + timedelta(days=30)  # the good one is fine


def test_an_encrypted_pem_key_needs_its_password(tmp_path: Path, pki: TestPKI, issued: IssuedCert) -> None:
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), None)
    encrypted = tmp_path / "s.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(PASSWORD.encode())))
    _settings(pki).context(ClientCertificate(cert=issued.cert_path, key=encrypted, password=Secret(PASSWORD)))
    # without a password OpenSSL would prompt on the terminal (a worker would hang): refused instead
    _refused(ClientCertificate(cert=issued.cert_path, key=encrypted), pki, "encrypted and no password was given")
    _refused(ClientCertificate(cert=issued.cert_path, key=encrypted, password=Secret("mauvais")), pki,
             "the password does not open this private key")
    _refused(ClientCertificate(cert=issued.cert_path, key=issued.cert_path), pki, "holds no usable PEM private key")


@pytest.fixture
def opened_and_removed() -> Iterator[tuple[list[str], dict[str, bytes]]]:
    """Every file Python opens (its path), and what a file held when removed, while the fixture is active."""
    opened: list[str] = []
    removed: dict[str, bytes] = {}
    state = {"on": True, "inside": False}

    def hook(event: str, args: tuple[object, ...]) -> None:
        if not state["on"] or state["inside"]:
            return
        if event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            opened.append(os.fsdecode(args[0]))
        elif event == "os.remove" and isinstance(args[0], str | os.PathLike):
            state["inside"] = True
            try:
                removed[os.fspath(args[0])] = Path(args[0]).read_bytes()
            finally:
                state["inside"] = False

    sys.addaudithook(hook)  # audit hooks cannot be removed: this one switches itself off
    try:
        yield opened, removed
    finally:
        state["on"] = False


def test_the_key_is_never_written_in_clear(tmp_path: Path, pki: TestPKI, issued: IssuedCert,
                                           monkeypatch: pytest.MonkeyPatch,
                                           opened_and_removed: tuple[list[str], dict[str, bytes]]) -> None:
    p12 = export_p12(tmp_path / "s.p12", issued.cert_path, issued.key_path, PASSWORD)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    opened, removed = opened_and_removed
    cert = ClientCertificate.from_pkcs12(p12, PASSWORD)
    settings = TrustSettings(ca_bundle=pki.ca_bundle_path)
    settings.context(cert)
    # Linux: an anonymous memory file, nothing under any directory but the PKCS#12 itself is read
    assert [p for p in opened if p != str(p12) and p != str(pki.ca_bundle_path)] == []
    assert list(scratch.iterdir()) == [] and removed == {}
    # Where there is no memfd_create: a 0600 temporary file, holding the key encrypted only, removed at once
    monkeypatch.delattr(os, "memfd_create")
    settings.context(cert)
    [(path, held)] = removed.items()
    assert Path(path).parent == scratch and list(scratch.iterdir()) == []
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in held and b"-----BEGIN PRIVATE KEY-----" not in held
    assert x509.load_pem_x509_certificates(held)[0] == issued.certificate()
