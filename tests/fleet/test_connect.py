"""The standard connector: credentials found by reference on the worker, clear errors, nothing left running."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from mssante.bridge.client import BridgeClient, BridgeTokenSource
from mssante.client import TrustSettings
from mssante.errors import ConfigError
from mssante.fleet import BALSpec, MailboxConnector

PER = BALSpec(address="marie.curie@mss.sandbox.test", kind="PER", ref="session-1")


def _tls(tmp_path: Path) -> TrustSettings:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    return TrustSettings(ca_bundle=bundle)


def _listeners() -> int:
    return sum(t.get_name() == "bridge-events" and not t.done() for t in asyncio.all_tasks())


async def test_references_that_name_nothing_are_clear_config_errors(tmp_path: Path) -> None:
    connector = MailboxConnector(tls=_tls(tmp_path), certificates=tmp_path)
    with pytest.raises(ConfigError, match=r"s-inconnue\.pem does not exist"):
        await connector.mailbox(BALSpec(address="svc@mss.sandbox.test", kind="APP", ref="s-inconnue"))
    with pytest.raises(ConfigError, match="no bridge configured for BAL PER"):
        await connector.mailbox(PER)
    async with BridgeClient("http://127.0.0.1:9", "lps", "secret") as bridge:
        with_bridge = MailboxConnector(tls=_tls(tmp_path), bridge=bridge, session_secrets=tmp_path)
        with pytest.raises(ConfigError, match="no secret for bridge session session-1 on this worker"):
            await with_bridge.mailbox(PER)


async def test_a_bridge_session_listener_is_stopped_when_the_bal_is_let_go(tmp_path: Path) -> None:
    (tmp_path / "session-1").write_text("le-secret-de-session\n")
    with socket.socket() as sock:  # a bridge that is not there: the listener retries in the background
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with BridgeClient(url, "lps", "secret") as bridge:
        connector = MailboxConnector(tls=_tls(tmp_path), bridge=bridge, session_secrets=tmp_path)
        box = await connector.mailbox(PER)
        source = box.token_source
        assert isinstance(source, BridgeTokenSource) and source.session_id == "session-1"
        assert "le-secret" not in repr(source) and _listeners() == 1
        await connector.close(box)
        assert _listeners() == 0  # nothing left running for a BAL this worker no longer watches
