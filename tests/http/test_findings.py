"""Issue 13's HTTP findings, each on real servers over loopback: a 4xx answer and no traceback in the log.

* the bridge: deeply nested JSON on ``POST /logins`` and ``POST /sessions/{id}/token`` (RecursionError);
  malformed forms on the unauthenticated ``POST /backchannel-logout`` (Starlette's 400 turned 500);
* the mock PSC: ``response_type=%00`` ("unexpected ValueError" from Authlib's error description check);
* the sandbox API: a malformed chunked POST (a ``ClientDisconnect`` traceback).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx2
import pytest

from mssante.bridge import BridgeClient, TokenCipher
from mssante.sandbox.config import default_config
from mssante.sandbox.runner import Sandbox
from tests.bridge._support import MARIE, running_bridge, world
from tests.http._logs import LogTrap

NESTED = [b"[" * 5000 + b"]" * 5000, b'{"method": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2000 + b"}"]


async def test_bridge_refuses_nested_json_and_malformed_forms(tmp_path: Path, state_dir: Path,
                                                               cipher: TokenCipher, log_trap: LogTrap) -> None:
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge:
        base = w.config().base_url
        secret = await bridge.core.add_installation("cab-a")
        async with BridgeClient(base, "cab-a", secret) as client:
            source = await client.login_with_ciba(MARIE)
        auth = ("cab-a", secret)
        session = {"X-Session-Secret": source._secret.reveal()}
        async with httpx2.AsyncClient(base_url=base, trust_env=False, timeout=10) as http:
            for body in NESTED:
                for path, headers in (("/logins", {}), (f"/sessions/{source.session_id}/token", session)):
                    answer = await http.post(path, content=body, auth=auth,
                                             headers={**headers, "Content-Type": "application/json"})
                    assert answer.status_code == 400, (path, answer.text)
                    assert answer.json()["error"] == "invalid_request"
            forms: list[tuple[bytes, str]] = [
                (b"&".join(b"f%d=1" % i for i in range(1001)), "application/x-www-form-urlencoded"),
                (b"--x\r\n\r\n", "multipart/form-data"),  # no boundary parameter
                (b"--b\r\nContent-Disposition: form-data; name=\"logout_token\"\r\n\r\n" + b"a" * (1 << 20)
                 + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"),
                (b"logout_token=" + b"a" * (1 << 20), "application/x-www-form-urlencoded"),
            ]
            for body, ctype in forms:
                answer = await http.post("/backchannel-logout", content=body, headers={"Content-Type": ctype})
                assert 400 <= answer.status_code < 500, (ctype, answer.status_code, answer.text)
                assert answer.headers["content-type"] == "application/json"
                assert answer.json()["error"] in ("invalid_request", "too_large", "unsupported_media_type")
            # The well-formed path still works: a bad token is refused, as before.
            refused = await http.post("/backchannel-logout", data={"logout_token": "a.b.c"})
            assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert log_trap.failures() == []


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("params", [
    {"response_type": "\x00"},
    {"response_type": "\x00", "client_id": "rp-bridge", "redirect_uri": "http://127.0.0.1/callback",
     "scope": "openid scope_all"},
    {"response_type": "code", "client_id": "rp-bridge", "redirect_uri": 'http://127.0.0.1/"\\é',
     "scope": "openid scope_all"},
])
async def test_mock_psc_refuses_control_characters_without_error(
        method: str, params: dict[str, str], tmp_path: Path, log_trap: LogTrap) -> None:
    from tests.psc.conftest import REALM, make_mock

    mock = make_mock("http://127.0.0.1:1", tmp_path, default_config().lifetimes)
    url = f"http://127.0.0.1:1{REALM}/protocol/openid-connect/auth"
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(mock.app)) as http:
        answer = await (http.get(url, params=params) if method == "GET" else http.post(url, data=params))
    assert answer.status_code == 400, answer.text
    assert log_trap.failures() == []
    if answer.headers["content-type"].startswith("application/json"):
        assert answer.json()["error"] == "invalid_request"
    else:
        assert "Requête refusée" in answer.text


async def test_sandbox_api_malformed_chunked_post_leaves_no_traceback(tmp_path: Path, log_trap: LogTrap) -> None:
    async with Sandbox(default_config(), tmp_path / "state") as sandbox:
        port = int(sandbox.info["webmail_url"].rstrip("/").rsplit(":", 1)[1])
        for path in ("/api/faults", "/api/bals/marie.curie@mss.sandbox.test/messages"):
            request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\nzz-not-a-chunk-size\r\n\r\n").encode()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.startswith(b"HTTP/1.1 400"), status
            writer.close()
            await writer.wait_closed()
        await _idle(sandbox)
    assert log_trap.failures() == []


async def _idle(sandbox: Sandbox) -> None:
    """Wait until the sandbox's HTTP server has finished every request task (the handlers are done)."""
    assert sandbox.http is not None
    state = sandbox.http.server_state()
    deadline = time.monotonic() + 10
    while state.tasks or state.connections:
        assert time.monotonic() < deadline, "requests still running"
        await asyncio.sleep(0.01)


PART = b'--b\r\nContent-Disposition: form-data; name="f"; filename="f"\r\n\r\nx'


@pytest.mark.parametrize(("ctype", "body", "complete"), [
    (b"multipart/form-data; boundary=b", PART + b"\r\n--b--\r\n", True),
    (b'multipart/form-data; boundary="a b"', b"preamble\r\n--a b\r\n\r\n1\r\n--a b--", True),
    (b"multipart/form-data; BOUNDARY=b", b"--b--", True),
    (b"multipart/form-data; boundary=b", PART, False),
    (b"multipart/form-data", b"--b--\r\n", False),
    (b"multipart/form-data; boundary=", b"----\r\n", False),
    (b"multipart/form-data; boundary=b", b"--b---", True),  # an epilogue may follow (RFC 2046 §5.1.1)
])
def test_a_multipart_body_must_be_complete(ctype: bytes, body: bytes, complete: bool) -> None:
    """Starlette leaves an unfinished part's temporary file open: such bodies never reach it."""
    from mssante._asgi_guard import _complete_multipart

    assert _complete_multipart(ctype, body) is complete
