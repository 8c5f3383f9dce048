"""The connector's delegate path without a sandbox: one source per session, nothing kept once the BALs are let go."""

from __future__ import annotations

import socket

from mssante.bridge.client import BridgeClient, BridgeTokenSource
from mssante.fleet import BALSpec, MailboxConnector
from mssante.sandbox.pki import TestPKI
from tests.fleet.test_connect import PER, _listeners, _tls, pki  # noqa: F401 - pki is a fixture


async def test_a_delegated_session_source_is_shared_then_forgotten(pki: TestPKI) -> None:  # noqa: F811
    with socket.socket() as sock:  # a bridge that is not there: the listener retries in the background
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with BridgeClient(url, "flotte", "secret-de-la-flotte") as bridge:
        connector = MailboxConnector(tls=_tls(pki), bridge=bridge)  # no session_secrets: delegation
        box = await connector.mailbox(PER)
        source = box.token_source
        assert isinstance(source, BridgeTokenSource) and source.delegated and source.session_id == "session-1"
        assert "secret" not in repr(source) and _listeners() == 1
        org = await connector.mailbox(BALSpec(address="secretariat@mss.sandbox.test", kind="ORG", ref="session-1"))
        assert org.token_source is source and _listeners() == 1
        # the bridge says the session ended: both mailboxes end with the reason it gave
        source._end("delegation_revoked")
        assert "delegated to this installation (delegation_revoked)" in str(box.end_reason)
        assert org.end_reason == box.end_reason
        await connector.close(box)
        await connector.close(org)
        assert _listeners() == 0 and not connector._sources and not connector._boxes and not bridge._sources
