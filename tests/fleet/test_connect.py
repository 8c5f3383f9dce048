"""The standard connector: credentials found by reference on the worker, clear errors, nothing left running."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from mssante.bridge.client import BridgeClient, BridgeTokenSource
from mssante.client import TrustSettings
from mssante.credentials import ClientCertificate
from mssante.errors import ConfigError
from mssante.fleet import BALSpec, MailboxConnector
from mssante.sandbox.config import default_config
from mssante.sandbox.pki import TestPKI

PER = BALSpec(address="marie.curie@mss.sandbox.test", kind="PER", ref="session-1")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """The sandbox's test PKI (CAs and an APP certificate), without running the sandbox."""
    return TestPKI.load_or_create(tmp_path_factory.mktemp("pki"), server_names=default_config().server_names,
                                  crl_base_url="http://127.0.0.1:9")


def _tls(pki: TestPKI) -> TrustSettings:
    return TrustSettings(ca_bundle=pki.ca_bundle_path)


def _listeners() -> int:
    return sum(t.get_name() == "bridge-events" and not t.done() for t in asyncio.all_tasks())


async def test_references_that_name_nothing_are_clear_config_errors(tmp_path: Path, pki: TestPKI) -> None:
    connector = MailboxConnector(tls=_tls(pki), certificates=tmp_path)
    with pytest.raises(ConfigError, match=r"s-inconnue\.pem does not exist"):
        await connector.mailbox(BALSpec(address="svc@mss.sandbox.test", kind="APP", ref="s-inconnue"))
    with pytest.raises(ConfigError, match="no bridge configured for BAL PER"):
        await connector.mailbox(PER)
    async with BridgeClient("http://127.0.0.1:9", "lps", "secret") as bridge:
        with_bridge = MailboxConnector(tls=_tls(pki), bridge=bridge, session_secrets=tmp_path)
        with pytest.raises(ConfigError, match="no secret for bridge session session-1 on this worker"):
            await with_bridge.mailbox(PER)


async def test_a_bridge_session_listener_is_stopped_when_the_bal_is_let_go(tmp_path: Path, pki: TestPKI
                                                                          ) -> None:
    (tmp_path / "session-1").write_text("le-secret-de-session\n")
    with socket.socket() as sock:  # a bridge that is not there: the listener retries in the background
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with BridgeClient(url, "lps", "secret") as bridge:
        connector = MailboxConnector(tls=_tls(pki), bridge=bridge, session_secrets=tmp_path)
        box = await connector.mailbox(PER)
        source = box.token_source
        assert isinstance(source, BridgeTokenSource) and source.session_id == "session-1"
        assert "le-secret" not in repr(source) and _listeners() == 1
        # an ORG BAL of the same professional's session shares the token source and its listener
        org = await connector.mailbox(BALSpec(address="secretariat@mss.sandbox.test", kind="ORG", ref="session-1"))
        assert org.token_source is source and _listeners() == 1
        await connector.close(box)
        assert _listeners() == 1  # still used by the ORG BAL
        await connector.close(org)
        assert _listeners() == 0  # nothing left running for BALs this worker no longer watches


async def test_one_tls_context_per_certificate_not_per_bal(tmp_path: Path, pki: TestPKI) -> None:
    bal = pki.issue_client_cert(default_config().structures[0], "DPI")
    certs = tmp_path / "certs"
    certs.mkdir()
    for ref in ("s1", "s2"):
        (certs / f"{ref}.pem").symlink_to(bal.cert_path)
        (certs / f"{ref}.key").symlink_to(bal.key_path)
    connector = MailboxConnector(tls=_tls(pki), certificates=certs)
    boxes = [await connector.mailbox(BALSpec(address=f"svc{i}@mss.sandbox.test", kind="APP", ref=ref))
             for i, ref in enumerate(("s1", "s1", "s1", "s2"))]
    trusts = [connector.trust(ClientCertificate(cert=certs / f"{ref}.pem", key=certs / f"{ref}.key"))
              for ref in ("s1", "s2")]
    s1, s2 = (t.ssl_context for t in trusts)
    assert s1 is not None and s2 is not None and s1 is not s2  # one context per structure
    assert all(t.crls is trusts[0].crls and t.bundle is trusts[0].bundle for t in trusts)  # one CRL cache in all
    assert connector.trust() is connector.trust() and connector.trust().ssl_context not in (s1, s2)
    used = [box._sessions._trust for box in boxes]  # what each mailbox builds its TLS client from
    assert used == [trusts[0]] * 3 + [trusts[1]] and used[0] is used[1] is used[2]
    with pytest.raises(ConfigError, match="does not exist"):
        await connector.mailbox(BALSpec(address="svc9@mss.sandbox.test", kind="APP", ref="s3"))
