"""The TLS probe: ClientHellos parsed and recorded, weak contexts a correct client cannot talk to,
and the impostor chain (IGC Santé's names, other keys)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
import threading
import warnings

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from mssante.sandbox.fronts.probe import (
    ALLOWED_SUITES,
    TLS_PROBES,
    HelloLog,
    HelloRecord,
    needs_non_rsa_certificate,
    parse_client_hello,
    probe_context,
    suite_name,
    version_name,
)
from mssante.sandbox.pki import TestPKI
from mssante.trust import BASELINE_CIPHERS

NAMES = ["imap.psc.mss.sandbox.test", "smtp.psc.mss.sandbox.test"]


def _vector(length_size: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_size, "big") + data


def _hello(legacy: int, suites: list[int], versions: list[int] | None, sni: str | None) -> bytes:
    extensions = b""
    if sni is not None:
        entry = b"\x00" + _vector(2, sni.encode())
        extensions += struct.pack("!H", 0) + _vector(2, _vector(2, entry))
    if versions is not None:
        extensions += struct.pack("!H", 43) + _vector(2, _vector(1, b"".join(struct.pack("!H", v) for v in versions)))
    body = (struct.pack("!H", legacy) + bytes(32) + _vector(1, b"") + _vector(2, b"".join(struct.pack("!H", s)
            for s in suites)) + _vector(1, b"\x00") + _vector(2, extensions))
    return b"\x01" + _vector(3, body)


_u16 = st.integers(0, 0xFFFF)


def _grease(v: int) -> bool:
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


@given(legacy=_u16, suites=st.lists(_u16, max_size=40), versions=st.none() | st.lists(_u16, min_size=1, max_size=6),
       sni=st.none() | st.from_regex(r"[a-z0-9.-]{1,60}", fullmatch=True))
def test_a_client_hello_reads_back_what_it_offers_grease_aside(
    legacy: int, suites: list[int], versions: list[int] | None, sni: str | None
) -> None:
    hello = parse_client_hello(_hello(legacy, suites, versions, sni))
    assert hello.legacy_version == legacy
    assert hello.suites == tuple(s for s in suites if not _grease(s))
    wanted = tuple(v for v in versions if not _grease(v)) if versions is not None else ()
    assert hello.versions == (wanted or (legacy,))
    assert hello.server_name == sni


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_client_hello(data)


def test_a_truncated_hello_is_refused() -> None:
    whole = _hello(0x0303, [0xC030, 0x1301], [0x0304, 0x0303], "imap.psc.mss.sandbox.test")
    for cut in range(len(whole)):
        with pytest.raises(ValueError):
            parse_client_hello(whole[:cut])


def test_names() -> None:
    assert suite_name(0xC02F) == "ECDHE-RSA-AES128-GCM-SHA256"
    assert suite_name(0x00FF) == "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"
    assert suite_name(0xFFFE) == "0xFFFE"
    assert version_name(0x0302) == "TLSv1.1"
    assert needs_non_rsa_certificate(0xC02B) and needs_non_rsa_certificate(0x0032)  # ECDHE-ECDSA, DHE-DSS
    assert not any(needs_non_rsa_certificate(c) for c in (0xC030, 0xC014, 0x009C, 0x1301, 0xFFFE))
    record = HelloRecord(at=1.5, probe=True, hello=parse_client_hello(_hello(0x0303, [0xC030], [0x0304], None)))
    assert HelloRecord.from_json(record.to_json()) == record


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.load_or_create(tmp_path_factory.mktemp("probe") / "pki", server_names=NAMES,
                                  crl_base_url="http://127.0.0.1:9")


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[str, str] | str:
    """(version, cipher) of a completed handshake over a socket pair, or the client's error."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)

    def serve() -> None:
        try:
            with server.wrap_socket(a, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            a.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(b, server_hostname=NAMES[0]) as tls:
            tls.send(b"x")
            version, cipher = tls.version(), tls.cipher()
            assert version is not None and cipher is not None
            return version, cipher[0]
    except ssl.SSLError as exc:
        return exc.reason or str(exc)
    finally:
        b.close()
        thread.join(10)


def _client(pki: TestPKI, ciphers: str = BASELINE_CIPHERS, old: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
    ctx.set_ciphers(ciphers)
    if old:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


def test_a_correct_client_cannot_talk_to_either_probe_and_a_lax_one_can(pki: TestPKI) -> None:
    log = HelloLog()
    probes = {}
    for mode in TLS_PROBES:
        probes[mode] = probe_context(mode, pki.server_cert_path, pki.server_key_path)
        assert log.install(probes[mode], probe=True)
    for mode in TLS_PROBES:  # TLS >= 1.2 and the four ECO.1.1.3 suites: no shared version or suite
        assert isinstance(_handshake(probes[mode], _client(pki)), str)
    lax = _client(pki, "ALL:@SECLEVEL=0", old=True)
    assert _handshake(probes["old-tls"], lax)[0] in ("TLSv1", "TLSv1.1")
    version, cipher = _handshake(probes["weak-suites"], lax)
    assert version == "TLSv1.2" and cipher not in {suite_name(c) for c in ALLOWED_SUITES}
    hellos = log.since(0)
    assert len(hellos) == 4 and all(h.probe and h.hello.server_name == NAMES[0] for h in hellos)
    correct, lax_hello = hellos[0].hello, hellos[2].hello
    assert set(correct.suites) - {0x00FF} <= ALLOWED_SUITES and set(correct.versions) == {0x0303, 0x0304}
    assert {0x0301, 0x0302} <= set(lax_hello.versions) and set(lax_hello.suites) - ALLOWED_SUITES - {0x00FF}
    # The real front context still works with a correct client.
    assert _handshake(pki.server_ssl_context(), _client(pki))[0] in ("TLSv1.2", "TLSv1.3")


def test_the_impostor_chain_has_igc_names_and_other_keys(pki: TestPKI) -> None:
    chain, _key = pki.ensure_bad_server_certs()["impostor"]
    leaf, impostor_ca = x509.load_pem_x509_certificates(chain.read_bytes())
    real_root, real_ca = x509.load_pem_x509_certificates(pki.ca_bundle_path.read_bytes())
    assert impostor_ca.subject == real_ca.subject and impostor_ca.issuer == real_root.subject
    assert leaf.issuer == real_ca.subject
    assert impostor_ca.public_key() != real_ca.public_key()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(NAMES) <= set(san.get_values_for_type(x509.DNSName))
    done = subprocess.run(["openssl", "verify", "-CAfile", str(pki.ca_bundle_path), "-untrusted", str(chain),
                           str(chain)], capture_output=True, text=True, check=False)
    assert done.returncode != 0, done.stdout
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain, chain.with_suffix(".key"))
    assert _handshake(server, _client(pki)) == "CERTIFICATE_VERIFY_FAILED"
