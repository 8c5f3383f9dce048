"""The ``bad_server_certificate`` fault: both fronts serve the chosen bad certificate at STARTTLS."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import imaplib
import smtplib
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from mssante.sandbox.api.faults import apply_faults, faults_json
from mssante.sandbox.fronts.faults import BAD_SERVER_CERTIFICATES
from mssante.sandbox.runner import Sandbox
from tests.conformance._harness import sandbox_config
from tests.conformance._lps_net import tls_context

pytestmark = pytest.mark.slow


Context = Callable[[], ssl.SSLContext]  # built in the worker thread: it downloads the CRLs


def _imap_peer(info: dict[str, Any], front: str, make: Context) -> bytes | None:
    """STARTTLS on an IMAP front; the server certificate (DER), or raise the verification error."""
    ctx = make()
    ep = info["imap"][front]
    imap = imaplib.IMAP4("127.0.0.1", ep["port"], timeout=10)
    imap.host = ep["host"]  # server_hostname for the host name check
    try:
        imap.starttls(ssl_context=ctx)
        return imap.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined,no-any-return]
    finally:
        with contextlib.suppress(OSError):
            imap.shutdown()


def _smtp_peer(info: dict[str, Any], front: str, make: Context) -> bytes | None:
    ctx = make()
    ep = info["smtp"][front]
    smtp = smtplib.SMTP("127.0.0.1", ep["port"], timeout=10)
    smtp._host = ep["host"]  # type: ignore[attr-defined]  # server_hostname for STARTTLS
    try:
        smtp.ehlo()
        smtp.starttls(context=ctx)
        return smtp.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    finally:
        smtp.close()


def _lax(cert: tuple[str, str] | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


async def test_fronts_serve_the_bad_certificate_and_the_api_sets_it(state_dir: Path) -> None:
    async with Sandbox(sandbox_config(), state_dir) as sb:
        info = sb.info
        app = next(b for b in info["bals"] if b["cert"])
        client_cert = (app["cert"], app["key"])
        assert faults_json(sb)["bad_server_certificate"] is None
        real = await asyncio.to_thread(_imap_peer, info, "psc", lambda: tls_context(info))
        assert real
        for kind in BAD_SERVER_CERTIFICATES:
            apply_faults(sb, {"bad_server_certificate": kind})
            assert faults_json(sb)["bad_server_certificate"] == kind
            for peer, front, cert in ((_imap_peer, "psc", None), (_imap_peer, "authcli", client_cert),
                                      (_smtp_peer, "psc", None), (_smtp_peer, "authcli", client_cert)):
                # The verifying test LPS (chain, host name, CRL) refuses the handshake...
                verifying = functools.partial(tls_context, info, *(cert or (None, None)))
                with pytest.raises(ssl.SSLCertVerificationError):
                    await asyncio.to_thread(peer, info, front, verifying)
                    pytest.fail(f"{kind} certificate accepted on {peer.__name__} {front}")
                # ...and a client that checks nothing sees the bad certificate itself.
                der = await asyncio.to_thread(peer, info, front, functools.partial(_lax, cert))
                assert der and der != real, (kind, front)
                served = x509.load_der_x509_certificate(der)
                assert (served.not_valid_after_utc.timestamp() < time.time()) is (kind == "expired")
        sb.faults.clear()
        assert faults_json(sb)["bad_server_certificate"] is None
        assert await asyncio.to_thread(_imap_peer, info, "psc", lambda: tls_context(info)) == real
        with pytest.raises(Exception, match="bad_server_certificate"):
            apply_faults(sb, {"bad_server_certificate": "self-signed"})
