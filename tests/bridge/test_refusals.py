"""Bad inputs get clear JSON errors: forged sessions, wrong secrets, bad state, expired CIBA, rate limits."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner

from mssante.bridge import BridgeClient, RateLimit, TokenCipher
from mssante.cli._bridge import bridge as bridge_cli
from mssante.errors import ConfigError, PSCError
from tests.bridge._support import LIFETIMES, MARIE, running_bridge, world


async def test_forged_sessions_and_bad_requests(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge:
        base = w.config().base_url
        secret = await bridge.core.add_installation("cab-a")
        other = await bridge.core.add_installation("cab-b")
        async with BridgeClient(base, "cab-a", secret) as client:
            source = await client.login_with_ciba(MARIE)
        session_secret = source._secret.reveal()
        async with httpx2.AsyncClient(base_url=base, trust_env=False) as http:
            async def token(sid: str, ssec: str, who: tuple[str, str] = ("cab-a", secret)) -> httpx2.Response:
                return await http.post(f"/sessions/{sid}/token", auth=who, headers={"X-Session-Secret": ssec})

            good = await token(source.session_id, session_secret)
            assert good.status_code == 200 and good.headers["cache-control"] == "no-store"
            forged = await token("A" * 43, session_secret)
            wrong_secret = await token(source.session_id, "B" * 43)
            stolen = await token(source.session_id, session_secret, ("cab-b", other))
            answers = {(r.status_code, r.text) for r in (forged, wrong_secret, stolen)}
            assert answers == {(404, json.dumps({"error": "session_not_found",
                                                 "message": "no such session for these credentials"},
                                                separators=(",", ":")))}
            events = await http.get(f"/sessions/{'A' * 43}/events", auth=("cab-a", secret),
                                    headers={"X-Session-Secret": session_secret})
            assert events.status_code == 404 and events.json()["error"] == "session_not_found"
            bad_installation = await token(source.session_id, session_secret, ("cab-a", "nope"))
            assert bad_installation.status_code == 401 and bad_installation.json()["error"] == "invalid_client"
            no_auth = await http.post("/logins", json={"method": "browser"})
            assert no_auth.status_code == 401 and "WWW-Authenticate" in no_auth.headers
            not_json = await http.post("/logins", content=b"{nope", auth=("cab-a", secret))
            assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_request"
            bad_method = await http.post("/logins", json={"method": "password"}, auth=("cab-a", secret))
            assert bad_method.status_code == 400
            bad_id = await http.post("/logins", json={"method": "ciba", "national_id": "x'; --"},
                                     auth=("cab-a", secret))
            assert bad_id.status_code == 400 and bad_id.json()["error"] == "invalid_request"
            unknown_login = await http.get("/logins/zzz", auth=("cab-a", secret))
            assert unknown_login.status_code == 404 and unknown_login.json()["error"] == "login_not_found"
            state = await http.get("/callback", params={"code": "abc", "state": "forged", "iss": w.psc.issuer})
            assert state.status_code == 400 and state.json()["error"] == "invalid_state"
            logout_token = await http.post("/backchannel-logout", data={"logout_token": "a.b.c"})
            assert logout_token.status_code == 400 and logout_token.json()["error"] == "invalid_request"
            missing = await http.get("/nowhere")
            assert missing.status_code == 404 and missing.json()["error"] == "not_found"
            health = (await http.get("/health")).json()
            assert health == {"status": "ok", "store": "sqlite", "sessions": 1}
            spec = (await http.get("/openapi.json")).json()
            assert spec["openapi"].startswith("3.") and "/sessions/{session_id}/token" in spec["paths"]
            # The session still works after all that.
            assert (await token(source.session_id, session_secret)).status_code == 200


async def test_expired_ciba_request(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    slow = replace(LIFETIMES, ciba_request=1, ciba_approve_delay=5)  # nobody answers within the request's life
    async with world(tmp_path, state_dir, lifetimes=slow) as w, running_bridge(w, cipher=cipher) as bridge:
        secret = await bridge.core.add_installation("cab-c")
        async with BridgeClient(w.config().base_url, "cab-c", secret) as client:
            with pytest.raises(PSCError) as info:
                await client.login_with_ciba(MARIE)
        assert info.value.oauth_error == "expired_token"


async def test_rate_limit_and_cli_installation(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    store = f"sqlite:{tmp_path / 'bridge.sqlite3'}"
    result = await asyncio.to_thread(CliRunner().invoke, bridge_cli, ["add-installation", "cab-cli", "--store", store])
    assert result.exit_code == 0, result.output
    secret = json.loads(result.output)["installation_secret"]
    assert secret.encode() not in (tmp_path / "bridge.sqlite3").read_bytes()  # only a scrypt hash
    async with world(tmp_path, state_dir) as w, \
            running_bridge(w, cipher=cipher, per_installation=RateLimit(rate=0.01, burst=5),
                           auth_failures=RateLimit(rate=0.01, burst=2)):
        async with BridgeClient(w.config().base_url, "cab-cli", "wrong") as client:
            with pytest.raises(ConfigError):
                await client.begin_browser_login()
        async with httpx2.AsyncClient(base_url=w.config().base_url, trust_env=False) as http:
            async def post(credential: str, installation: str = "cab-cli") -> int:
                return (await http.post("/logins", json={}, auth=(installation, credential))).status_code

            assert [await post(secret) for _ in range(3)] == [400] * 3  # the wrong secret did not drain the bucket
            # Refused credentials are limited per address before their scrypt check...
            assert [await post("nope"), await post("nope"), await post(secret, "other")] == [401, 429, 429]
            # ...but a credential verified before costs no scrypt and is not stopped.
            assert [await post(secret) for _ in range(3)] == [400, 400, 429]  # then its own bucket is empty
            limited = await http.post("/logins", json={}, auth=("cab-cli", secret))
            assert limited.json()["error"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
