"""The ``tls_probe`` fault: the four fronts serve the probe at STARTTLS; ClientHellos are recorded."""

from __future__ import annotations

import asyncio
import functools
import ssl
import subprocess
import time
import warnings
from pathlib import Path

import pytest

from mssante.sandbox.api.faults import apply_faults, bench_faults, faults_json
from mssante.sandbox.fronts.probe import ALLOWED_SUITES, TLS_PROBES, suite_name
from mssante.sandbox.runner import Sandbox
from mssante.trust import BASELINE_CIPHERS
from tests.conformance._harness import sandbox_config
from tests.conformance._lps_net import tls_context
from tests.conformance.test_bad_server_cert import _imap_peer, _smtp_peer

pytestmark = pytest.mark.slow


def _lax(cert: tuple[str, str] | None) -> ssl.SSLContext:
    """A client that accepts anything: TLS 1.0 up, every suite (OpenSSL 3: security level 0), no check."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


async def test_the_fronts_serve_the_probe_and_record_client_hellos(state_dir: Path) -> None:
    async with Sandbox(sandbox_config(), state_dir) as sb:
        info = sb.info
        app = next(b for b in info["bals"] if b["cert"])
        client_cert = (app["cert"], app["key"])
        fronts = ((_imap_peer, "psc", None), (_imap_peer, "authcli", client_cert), (_smtp_peer, "psc", None),
                  (_smtp_peer, "authcli", client_cert))
        for mode in TLS_PROBES:
            t0 = time.time()
            apply_faults(sb, {"tls_probe": mode})
            assert faults_json(sb)["tls_probe"] == mode
            for peer, front, cert in fronts:
                correct = functools.partial(tls_context, info, *(cert or (None, None)))
                with pytest.raises(ssl.SSLError):  # no shared version (old-tls) or suite (weak-suites)
                    await asyncio.to_thread(peer, info, front, correct)
                assert await asyncio.to_thread(peer, info, front, functools.partial(_lax, cert))
            hellos = bench_faults(sb).hellos.since(t0)
            assert len(hellos) == 8 and all(h.probe for h in hellos)
            lax = hellos[1].hello
            assert {0x0301, 0x0302} <= set(lax.versions)
            assert {suite_name(c) for c in lax.suites} - {suite_name(c) for c in ALLOWED_SUITES}
        sb.faults.clear()  # the fronts' own clear ends the probe too
        assert faults_json(sb)["tls_probe"] is None
        t1 = time.time()
        assert await asyncio.to_thread(_imap_peer, info, "psc", lambda: tls_context(info))
        [hello] = bench_faults(sb).hellos.since(t1)
        assert not hello.probe and set(hello.hello.suites) - {0x00FF} <= ALLOWED_SUITES
        with pytest.raises(Exception, match="tls_probe"):
            apply_faults(sb, {"tls_probe": "weak"})


def _s_client(port: int, host: str, *options: str) -> str:
    """``openssl s_client -starttls imap``: its output (the negotiated protocol and cipher, or the failure)."""
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "imap",
                           "-servername", host, *options], input="", capture_output=True, text=True, timeout=30,
                          check=False)
    return done.stdout + done.stderr


async def test_openssl_and_curl_refuse_the_probe_unless_told_to_accept_weak_tls(state_dir: Path) -> None:
    """Software we did not write: OpenSSL's s_client refuses the TLS 1.0/1.1 probe with its defaults (it
    completes it when told ``-tls1_1 -cipher ALL:@SECLEVEL=0``); restricted to the ECO.1.1.3 suites,
    s_client and curl refuse the weak-suites probe. (curl's default suites do reach it: a stock
    client would fail ``tls-ciphers``, as the rule says.)"""
    async with Sandbox(sandbox_config(), state_dir) as sb:
        ep = sb.info["imap"]["psc"]
        port, host = int(ep["port"]), str(ep["host"])
        apply_faults(sb, {"tls_probe": "old-tls"})
        refused = await asyncio.to_thread(_s_client, port, host)
        assert "Cipher is (NONE)" in refused, refused
        accepted = await asyncio.to_thread(_s_client, port, host, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0")
        assert "Cipher is (NONE)" not in accepted and "Protocol  : TLSv1.1" in accepted, accepted
        apply_faults(sb, {"tls_probe": "weak-suites"})
        refused = await asyncio.to_thread(_s_client, port, host, "-cipher", BASELINE_CIPHERS)
        assert "Cipher is (NONE)" in refused and "handshake failure" in refused, refused
        curl = await asyncio.to_thread(
            subprocess.run, ["curl", "--silent", "--show-error", "--ssl-reqd", "--cacert", sb.info["ca_bundle"],
                             "--connect-to", f"{host}:{port}:127.0.0.1:{port}", "--ciphers", BASELINE_CIPHERS,
                             f"imap://{host}:{port}/"], capture_output=True, text=True, timeout=30, check=False)
        assert curl.returncode == 35, curl.stderr  # SSL connect error: no shared suite
        apply_faults(sb, {"tls_probe": None})
        assert "Cipher is (NONE)" not in await asyncio.to_thread(_s_client, port, host, "-cipher", BASELINE_CIPHERS)
