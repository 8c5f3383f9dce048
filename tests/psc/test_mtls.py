"""mTLS client authentication (``tls_client_auth``, RFC 8705 §2.1.1) with an ORG AUTH_CLI certificate.

The mock PSC cannot see client certificates through uvicorn (the ASGI scope does not carry
them), so it cannot *accept* tls_client_auth. What is shown here: the settings checks, the
SSLContext reaching httpx2, the form on the wire (client_id, no secret), and a real TLS
handshake against a server that requires a client certificate.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn

from mssante.errors import ConfigError, MssanteError, PSCError
from mssante.psc import PSCClient, PSCSettings, mtls_context
from mssante.sandbox.config import default_config
from mssante.sandbox.pki import IssuedCert, TestPKI
from mssante.trust import client_ssl_context
from tests.psc.conftest import CLIENT_ID, REALM, make_mock

ISSUER = "https://psc.test/auth/realms/esante-wallet"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestPKI, IssuedCert]:
    pki = TestPKI.load_or_create(tmp_path_factory.mktemp("pki"), server_names=["psc.sandbox.test"],
                                 crl_base_url="http://127.0.0.1:9/pki")
    return pki, pki.issue_client_cert(default_config().structures[0], cn="BRIDGE PSC")


def test_settings_checks(pki: tuple[TestPKI, IssuedCert]) -> None:
    with pytest.raises(ConfigError, match="ssl_context"):
        PSCSettings(issuer=ISSUER, client_id="c", auth_method="tls_client_auth")
    ctx = mtls_context(pki[1].cert_path, pki[1].key_path, ca_bundle=pki[0].ca_bundle_path)
    with pytest.raises(ConfigError, match="https"):
        PSCSettings(issuer="http://127.0.0.1:1" + REALM, client_id="c", auth_method="tls_client_auth", ssl_context=ctx)
    lax = ssl.create_default_context()
    lax.check_hostname, lax.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(ConfigError, match="verify"):
        PSCSettings(issuer=ISSUER, client_id="c", auth_method="tls_client_auth", ssl_context=lax)
    with pytest.raises(ConfigError, match="client_secret"):
        PSCSettings(issuer=ISSUER, client_id="c")  # client_secret_basic without a secret
    with pytest.raises(ConfigError):
        mtls_context(Path("/nonexistent.pem"))
    ok = PSCSettings.production("c", auth_method="tls_client_auth", ssl_context=ctx)
    assert ok.client_secret is None and ok.ssl_context is ctx


async def test_context_and_form_on_the_wire(pki: tuple[TestPKI, IssuedCert]) -> None:
    ctx = mtls_context(pki[1].cert_path, pki[1].key_path, ca_bundle=pki[0].ca_bundle_path)
    settings = PSCSettings(issuer=ISSUER, client_id=CLIENT_ID, auth_method="tls_client_auth", ssl_context=ctx)
    assert PSCClient(settings)._http.client._transport._pool._ssl_context is ctx  # type: ignore[attr-defined]

    sent: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        if request.url.path.endswith("wallet-openid-configuration"):
            return httpx2.Response(200, json={"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth",
                                              "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/certs",
                                              "introspection_endpoint": f"{ISSUER}/introspect"})
        return httpx2.Response(200, json={"active": False})

    async with PSCClient(settings, transport=httpx2.MockTransport(answer)) as psc:
        assert await psc.introspect("some-token") == {"active": False}
    form = httpx2.QueryParams(sent[-1].content.decode())
    assert form["client_id"] == CLIENT_ID and form["token"] == "some-token" and "client_secret" not in form
    assert "authorization" not in sent[-1].headers


class TLSServer:
    """The mock PSC over https on 127.0.0.1, requiring a client certificate in the handshake."""

    def __init__(self, pki: TestPKI, state_dir: Path) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.mock = make_mock(self.base, state_dir, default_config().lifetimes)
        config = uvicorn.Config(self.mock.app, log_level="warning", lifespan="off", ws="none", http="h11",
                                ssl_certfile=str(pki.server_cert_path), ssl_keyfile=str(pki.server_key_path),
                                ssl_ca_certs=str(pki.ca_bundle_path), ssl_cert_reqs=ssl.CERT_REQUIRED)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])))


@pytest.fixture(scope="module")
def tls_server(pki: tuple[TestPKI, IssuedCert], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = TLSServer(pki[0], tmp_path_factory.mktemp("tls-psc"))
    server.thread.start()
    deadline = time.monotonic() + 10
    while not server.server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield server
    server.server.should_exit = True
    server.thread.join(10)
    server.sock.close()


async def test_real_handshake_with_the_client_certificate(pki: tuple[TestPKI, IssuedCert], tls_server: Any) -> None:
    issuer = tls_server.mock.issuer
    with_cert = mtls_context(pki[1].cert_path, pki[1].key_path, ca_bundle=pki[0].ca_bundle_path)
    settings = PSCSettings(issuer=issuer, client_id=CLIENT_ID, auth_method="tls_client_auth", ssl_context=with_cert)
    async with PSCClient(settings) as psc:
        assert (await psc.metadata()).issuer == issuer  # TLS with our certificate went through
        with pytest.raises(PSCError) as err:  # the mock only knows secrets: it refuses, over mTLS
            await psc.introspect("x")
        assert err.value.oauth_error == "invalid_client"

    without = client_ssl_context(ca_bundle=pki[0].ca_bundle_path, ciphers=None)
    plain = PSCSettings(issuer=issuer, client_id=CLIENT_ID, client_secret="s", ssl_context=without)  # type: ignore[arg-type]
    async with PSCClient(plain) as psc:
        with pytest.raises(MssanteError):  # no certificate: the server ends the handshake
            await psc.metadata()
