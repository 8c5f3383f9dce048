"""Sandbox test PKI: profiles checked by the system openssl, CRLs, revocation, negatives, TLS."""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mssante.errors import CertificateError, ConfigError, RevocationError, UsageError
from mssante.sandbox.config import Structure, default_config
from mssante.sandbox.pki import ORG_CA_FILE, ROOT_FILE, IssuedCert, TestPKI

CONFIG = default_config()
HOSPITAL = CONFIG.structures[0]  # 1750000001, Paris (75)
LAB = CONFIG.structures[1]  # 318751275100020, Côte-d'Or (21)
BASE_URL = "http://127.0.0.1:18080"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    state = tmp_path_factory.mktemp("pki") / "state"
    return TestPKI.load_or_create(state, server_names=CONFIG.server_names, crl_base_url=BASE_URL)


@pytest.fixture(scope="module")
def negatives(pki: TestPKI) -> dict[str, IssuedCert]:
    return pki.issue_negative_certs(HOSPITAL, cn="DPI HOPITAL")


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30, check=False)


def verify(pki: TestPKI, cert: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    """openssl verify against the root, the ORG CA as untrusted intermediate, and the ORG CRL."""
    return openssl(
        "verify", "-CAfile", pki.root_cert_path, "-untrusted", pki.org_ca_cert_path,
        "-crl_check", "-CRLfile", pki.state_dir / "crl" / f"{ORG_CA_FILE}.pem", *extra, cert,
    )


def crl_number(pki: TestPKI, name: str = f"{ORG_CA_FILE}.crl") -> int:
    crl = x509.load_der_x509_crl(pki.crl_bytes(name))
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


# ------------------------------------------------------------------ CAs, files, reload


def test_ca_names_and_extensions(pki: TestPKI) -> None:
    root, org = pki.root_cert, pki.org_ca_cert
    # Same attribute order as IGC Santé TEST (psc-igc.md §4.2), distinct names.
    assert [a.oid for a in org.subject] == [
        NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME,
    ]
    assert root.subject.rfc4514_string() == (
        "CN=TEST AC RACINE IGC-SANTE ELEMENTAIRE SIMULATION,OU=IGC-SANTE TEST SIMULATION,"
        "OU=0002 000000000,O=MSSANTE SANDBOX,C=FR"
    )
    assert "ORGANISATIONS SIMULATION" in org.subject.rfc4514_string()
    assert org.issuer == root.subject
    bc = org.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length is None
    for ca in (root, org):
        ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
        assert ca.public_key().key_size >= 3072  # type: ignore[union-attr]
    dp = org.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name == [x509.UniformResourceIdentifier(f"{BASE_URL}/crl/{ROOT_FILE}.crl")]
    with pytest.raises(x509.ExtensionNotFound):
        root.extensions.get_extension_for_class(x509.CRLDistributionPoints)  # roots have no CRL DP (§4.2)


def test_files_are_private(pki: TestPKI, negatives: dict[str, IssuedCert]) -> None:
    pki.issue_client_cert(HOSPITAL, "DPI HOPITAL")
    keys = list(pki.state_dir.rglob("*.key"))
    assert len(keys) >= 8
    for path in [pki.state_dir, *pki.state_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_reload_reuses_ca_and_refuses_other_url(pki: TestPKI) -> None:
    again = TestPKI.load_or_create(pki.state_dir, server_names=CONFIG.server_names, crl_base_url=BASE_URL + "/")
    assert again.root_cert == pki.root_cert and again.org_ca_cert == pki.org_ca_cert
    server_before = pki.server_cert_path.read_bytes()
    assert TestPKI.load(pki.state_dir).server_cert_path.read_bytes() == server_before
    with pytest.raises(ConfigError, match="publishes its CRLs at"):
        TestPKI.load_or_create(pki.state_dir, server_names=CONFIG.server_names, crl_base_url="http://other:1")
    # New host names: only the server certificate changes, trust is kept; then restore.
    TestPKI.load_or_create(pki.state_dir, server_names=["other.test"])
    assert pki.server_cert_path.read_bytes() != server_before
    TestPKI.load_or_create(pki.state_dir, server_names=CONFIG.server_names)
    assert TestPKI.load(pki.state_dir).org_ca_cert == pki.org_ca_cert


def test_load_without_state_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no sandbox PKI"):
        TestPKI.load(tmp_path)
    with pytest.raises(ConfigError, match="crl_base_url is needed"):
        TestPKI.load_or_create(tmp_path, server_names=["a.test"])


def test_bundles(pki: TestPKI) -> None:
    assert pki.ca_bundle_path.read_bytes().count(b"BEGIN CERTIFICATE") == 2
    with_crls = pki.ca_bundle_with_crls_path.read_bytes()
    assert with_crls.count(b"BEGIN CERTIFICATE") == 2 and with_crls.count(b"BEGIN X509 CRL") == 2


# ------------------------------------------------------------------ leaves seen by openssl


def test_auth_cli_profile_in_openssl_text(pki: TestPKI) -> None:
    cert = pki.issue_client_cert(LAB, "SIL LABO")
    out = openssl("x509", "-noout", "-text", "-in", cert.cert_path).stdout
    # openssl prints the subject in encoding order: C, ST, O, OU, CN (psc-igc.md §4.3).
    assert "Subject: C = FR, ST = C\\C3\\B4te-d'Or (21), O = LABORATOIRE DE BIOLOGIE TEST, " \
           "OU = 318751275100020, CN = SIL LABO" in out
    assert "TLS Web Client Authentication" in out and "TLS Web Server Authentication" not in out
    assert "X509v3 Key Usage: critical\n                Digital Signature\n" in out
    assert "Public-Key: (2048 bit)" in out and "sha256WithRSAEncryption" in out
    assert f"URI:{BASE_URL}/crl/{ORG_CA_FILE}.crl" in out
    assert f"CA Issuers - URI:{BASE_URL}/ac/{ORG_CA_FILE}.cer" in out
    c = cert.certificate()
    assert c.not_valid_after_utc - c.not_valid_before_utc >= timedelta(days=3 * 365)
    assert "Subject Alternative Name" not in out


def test_server_cert_covers_hosts(pki: TestPKI) -> None:
    out = openssl("x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage,keyUsage", "-in",
                  pki.server_cert_path).stdout
    for name in CONFIG.server_names:
        assert f"DNS:{name}" in out
    assert "IP Address:127.0.0.1" in out
    assert "TLS Web Server Authentication" in out and "Client Authentication" not in out
    assert "Digital Signature, Key Encipherment" in out
    assert verify(pki, pki.server_cert_path, "-purpose", "sslserver").returncode == 0


def test_o_is_truncated_to_64(pki: TestPKI) -> None:
    long = Structure(national_id="1750000099", name="CENTRE HOSPITALIER " + "TRES " * 20, departement="Sarthe (72)")
    subject = pki.issue_client_cert(long, "X").certificate().subject
    assert len(subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value) == 64
    with pytest.raises(ConfigError):
        pki.issue_client_cert(long, "C" * 65)


def test_openssl_accepts_fresh_then_refuses_revoked(pki: TestPKI) -> None:
    cert = pki.issue_client_cert(HOSPITAL, "TO BE REVOKED")
    ok = verify(pki, cert.cert_path, "-purpose", "sslclient")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bundle_ok = openssl("verify", "-CAfile", pki.ca_bundle_path, "-crl_check_all", "-CRLfile",
                        pki.state_dir / "crl" / f"{ORG_CA_FILE}.pem", "-CRLfile",
                        pki.state_dir / "crl" / f"{ROOT_FILE}.pem", cert.cert_path)
    assert bundle_ok.returncode == 0, bundle_ok.stderr
    assert pki.check_client_certificate(cert.der()).common_name == "TO BE REVOKED"
    before = crl_number(pki)

    outcome = pki.revoke(cert.cert_path, reason="keyCompromise")

    assert outcome.newly_revoked and outcome.serial == cert.serial
    assert crl_number(pki) == before + 1
    refused = verify(pki, cert.cert_path)
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr
    with pytest.raises(RevocationError, match=r"revoked on .* keyCompromise") as info:
        pki.check_client_certificate(cert.der())
    assert info.value.requirement == "RFC 5280 §6.3.3"
    # Revoking again changes nothing; a new issue for that subject gives a fresh certificate.
    assert not pki.revoke(cert.serial).newly_revoked
    assert crl_number(pki) == before + 1
    fresh = pki.issue_client_cert(HOSPITAL, "TO BE REVOKED")
    assert fresh.serial != cert.serial and verify(pki, fresh.cert_path).returncode == 0


def test_issue_reuses_existing(pki: TestPKI) -> None:
    first = pki.issue_client_cert(HOSPITAL, "DPI HOPITAL")
    assert pki.issue_client_cert(HOSPITAL, "DPI HOPITAL") == first
    assert pki.issue_client_cert(HOSPITAL, "OTHER SERVICE").serial != first.serial


def test_crls_der_and_publication(pki: TestPKI) -> None:
    assert set(pki.crl_names) == {f"{n}.{e}" for n in (ROOT_FILE, ORG_CA_FILE) for e in ("crl", "pem")}
    for ca, name in ((pki.root_cert, ROOT_FILE), (pki.org_ca_cert, ORG_CA_FILE)):
        der = pki.crl_bytes(f"{name}.crl")
        text = openssl("crl", "-inform", "DER", "-noout", "-text", "-in", _write(pki, der))
        assert text.returncode == 0 and "Next Update:" in text.stdout and "X509v3 CRL Number" in text.stdout
        crl = x509.load_der_x509_crl(der)
        assert crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        assert pki.published(f"/crl/{name}.crl") == (der, "application/pkix-crl")
        assert pki.published(f"/ac/{name}.cer") == (ca.public_bytes(Encoding.DER), "application/pkix-cert")
    assert pki.crl_url(f"{ORG_CA_FILE}.crl") == f"{BASE_URL}/crl/{ORG_CA_FILE}.crl"
    assert pki.published("/crl/../index.json") is None and pki.published("/other") is None
    with pytest.raises(UsageError):
        pki.crl_bytes("index.json")


def _write(pki: TestPKI, data: bytes) -> Path:
    path = pki.state_dir.parent / "blob.der"
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ negative certificates


@pytest.mark.parametrize(
    ("kind", "error", "message", "openssl_error"),
    [
        ("expired", CertificateError, "expired on", "certificate has expired"),
        ("foreign", CertificateError, "not by the sandbox ORG CA", "unable to get local issuer certificate"),
        ("impostor", CertificateError, "signature does not verify", "certificate signature failure"),
        ("no_clientauth", CertificateError, "lacks clientAuth", "unsuitable certificate purpose"),
        ("revoked", RevocationError, "keyCompromise", "certificate revoked"),
    ],
)
def test_negative_certs_refused(
    pki: TestPKI, negatives: dict[str, IssuedCert], kind: str, error: type[Exception], message: str,
    openssl_error: str,
) -> None:
    cert = negatives[kind]
    with pytest.raises(error, match=message) as info:
        pki.check_client_certificate(cert.der())
    assert info.value.requirement  # type: ignore[attr-defined]
    result = verify(pki, cert.cert_path, "-purpose", "sslclient")
    assert result.returncode != 0 and openssl_error in result.stdout + result.stderr
    if kind in ("expired", "no_clientauth", "revoked"):  # otherwise well-formed: same subject as a good one
        assert cert.certificate().subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
            HOSPITAL.national_id
        )


def test_negative_certs_are_stable(pki: TestPKI, negatives: dict[str, IssuedCert]) -> None:
    assert pki.issue_negative_certs(HOSPITAL, cn="DPI HOPITAL") == negatives
    foreign = negatives["foreign"]
    assert openssl("verify", "-CAfile", foreign.issuer_path, foreign.cert_path).returncode == 0  # valid elsewhere
    eku = negatives["no_clientauth"].certificate().extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]


def test_revoke_refusals(pki: TestPKI, negatives: dict[str, IssuedCert]) -> None:
    with pytest.raises(UsageError, match="not issued by the sandbox CAs"):
        pki.revoke(negatives["foreign"].cert_path)
    with pytest.raises(UsageError, match="foreign CA"):
        pki.revoke(negatives["impostor"].serial)
    with pytest.raises(UsageError, match="root CA cannot be revoked"):
        pki.revoke(pki.root_cert.serial_number)
    with pytest.raises(UsageError, match="was not issued"):
        pki.revoke(12345)
    with pytest.raises(UsageError, match="unknown revocation reason"):
        pki.revoke(12345, reason="bored")
    with pytest.raises(CertificateError, match="not a DER"):
        pki.check_client_certificate(b"garbage")


# ------------------------------------------------------------------ clock


def test_injected_clock(tmp_path: Path) -> None:
    t0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
    now = [t0]
    p = TestPKI.load_or_create(tmp_path, server_names=["a.test"], crl_base_url=BASE_URL, clock=lambda: now[0])
    cert = p.issue_client_cert(HOSPITAL, "CLOCK")
    assert cert.certificate().not_valid_before_utc <= t0 < cert.certificate().not_valid_after_utc
    assert p.check_client_certificate(cert.der()).structure_id == HOSPITAL.national_id
    number = crl_number(p)
    now[0] = t0 + timedelta(days=5)  # past half the CRL's 7-day life: re-issued on next read
    crl = x509.load_der_x509_crl(p.crl_bytes(f"{ORG_CA_FILE}.crl"))
    assert crl_number(p) == number + 1 and crl.last_update_utc == now[0]
    now[0] = t0 + timedelta(days=4 * 365)
    with pytest.raises(CertificateError, match="expired") as info:
        p.check_client_certificate(cert.der())
    assert info.value.requirement == "RFC 5280 §4.1.2.5"
    assert p.issue_client_cert(HOSPITAL, "CLOCK").serial != cert.serial  # expired: not reused


# ------------------------------------------------------------------ TLS over 127.0.0.1


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> dict[str, object]:
    """One TLS connection over loopback; returns what each side saw."""
    seen: dict[str, object] = {}
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["server_peer_der"] = tls.getpeercert(binary_form=True)
                seen["server_name"] = tls.server_hostname
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen["server_error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                client_ctx.wrap_socket(raw, server_hostname=hostname) as tls:
            seen["client_peer"] = tls.getpeercert()
            seen["client_read"] = tls.recv(2)
    except (ssl.SSLError, OSError) as exc:
        seen["client_error"] = exc
    finally:
        thread.join(10)
        listener.close()
    return seen


def test_tls_handshake_with_client_cert(pki: TestPKI) -> None:
    client = pki.issue_client_cert(HOSPITAL, "DPI HOPITAL")
    server_ctx = pki.server_ssl_context(require_client_cert=True)
    assert server_ctx.minimum_version == ssl.TLSVersion.TLSv1_2 and server_ctx.verify_mode == ssl.CERT_OPTIONAL
    seen = _handshake(server_ctx, pki.client_ssl_context(client), CONFIG.host_name("imap", "authcli"))
    assert seen.get("client_read") == b"ok", seen
    san = dict(seen["client_peer"])["subjectAltName"]  # type: ignore[call-overload]
    assert ("DNS", CONFIG.host_name("imap", "authcli")) in san
    der = seen["server_peer_der"]
    assert isinstance(der, bytes)
    identity = pki.check_client_certificate(der)
    assert (identity.country, identity.state, identity.organization, identity.structure_id, identity.common_name) == (
        "FR", "Paris (75)", HOSPITAL.name, HOSPITAL.national_id, "DPI HOPITAL"
    )


def test_tls_without_client_cert_and_wrong_host(pki: TestPKI) -> None:
    seen = _handshake(pki.server_ssl_context(require_client_cert=True), pki.client_ssl_context(), "127.0.0.1")
    assert seen.get("client_read") == b"ok" and seen["server_peer_der"] is None  # CERT_OPTIONAL: SASL decides
    bad = _handshake(pki.server_ssl_context(), pki.client_ssl_context(), "imap.elsewhere.test")
    assert isinstance(bad.get("client_error"), ssl.SSLCertVerificationError)


def test_tls_crl_check_in_handshake(pki: TestPKI, negatives: dict[str, IssuedCert]) -> None:
    revoked_client = pki.client_ssl_context(negatives["revoked"])
    lax = _handshake(pki.server_ssl_context(require_client_cert=True), revoked_client, "127.0.0.1")
    assert lax.get("client_read") == b"ok"  # default: revocation left to check_client_certificate
    strict = pki.server_ssl_context(require_client_cert=True, check_crl=True)
    refused = _handshake(strict, pki.client_ssl_context(negatives["revoked"]), "127.0.0.1")
    assert "certificate revoked" in str(refused.get("server_error")), refused
    good = _handshake(strict, pki.client_ssl_context(pki.issue_client_cert(HOSPITAL, "DPI HOPITAL")), "127.0.0.1")
    assert good.get("client_read") == b"ok", good
