"""A thick client logs in through the bridge (CIBA and browser) and keeps getting valid tokens."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from mssante.bridge import BridgeClient, BridgeTokenSource, TokenCipher
from mssante.errors import PSCError
from mssante.secret import Secret
from tests.bridge._support import MARIE, World, browser_login, running_bridge, world


def check_token(w: World, token: Secret) -> dict[str, object]:
    """Validate like an operator: signature against the mock's JWKS, issuer, expiry, session alive."""
    decoded = jwt.decode(token.reveal(), KeySet.import_key_set(w.psc.jwks()), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": w.psc.issuer}, exp={"essential": True}).validate(
        decoded.claims)
    w.psc.validate_access_token(token.reveal())
    return decoded.claims


async def wait_ended(source: BridgeTokenSource, within: float = 2.0) -> float:
    start = time.monotonic()
    await asyncio.wait_for(source.ended.wait(), within)
    return time.monotonic() - start


def scan(root: Path, secrets: set[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}" for s in secrets if s.encode() in data]
    return found


async def test_ciba_login_tokens_across_lifetimes_then_logout(
    tmp_path: Path, state_dir: Path, cipher: TokenCipher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge:
        secret = await bridge.core.add_installation("cabinet-1")
        ended: list[str] = []
        async with BridgeClient(w.config().base_url, "cabinet-1", secret, margin=0.5) as client:
            shown: list[str] = []
            source = await client.login_with_ciba(MARIE, on_binding=shown.append)
            assert len(shown) == 1 and shown[0].isdigit()
            source.on_end(lambda s: ended.append(str(s.end_reason)))
            await asyncio.wait_for(source.listening.wait(), 2)
            tokens = []
            deadline = time.monotonic() + 6.0  # 3 access token lifetimes (2 s)
            while time.monotonic() < deadline:
                token = await source.token()
                claims = check_token(w, token)
                assert claims["preferred_username"] == MARIE or claims.get("SubjectNameID") == MARIE
                tokens.append(token.reveal())
                await asyncio.sleep(0.25)
            assert len(set(tokens)) >= 3, "tokens must be renewed across lifetimes"
            assert w.recorder.refreshes >= 2
            fresh = await source.token(fresh=True)
            assert fresh.reveal() not in tokens
            check_token(w, fresh)

            await source.logout()
            await wait_ended(source)
            with pytest.raises(PSCError) as info:
                await source.token()
            assert info.value.oauth_error == "invalid_grant"
            assert ended == ["logout"]
            # The bridge revoked the session at PSC: the last token no longer validates.
            with pytest.raises(Exception):  # noqa: B017 - the mock's TokenRejected
                w.psc.validate_access_token(fresh.reveal())
        # ECO.1.2.5: no access token on disk or in the logs; no plaintext refresh token in SQLite.
        access = {t for t in w.recorder.issued if t.count(".") == 2}
        assert access
        assert scan(tmp_path, w.recorder.issued) == []
        assert not any(t in caplog.text for t in w.recorder.issued)
        assert w.recorder.refresh_tokens and (tmp_path / "bridge.sqlite3").exists()


async def test_browser_login_then_backchannel_logout(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge:
        secret = await bridge.core.add_installation("cabinet-2")
        async with BridgeClient(w.config().base_url, "cabinet-2", secret, margin=0.5) as client:
            pending = await client.begin_browser_login()
            callback = await browser_login(pending.url)
            assert callback.startswith(w.config().redirect_uri + "?")
            async with httpx2.AsyncClient(trust_env=False) as browser:
                page = await browser.get(callback)
                assert page.status_code == 200 and "Connexion réussie" in page.text
                source = await pending.wait(10)
                check_token(w, await source.token())
                # A replayed callback (same code and state) never reaches PSC.
                replay = await browser.get(callback)
                assert replay.status_code == 400 and replay.json()["error"] == "invalid_state"
                check_token(w, await source.token())
            await asyncio.wait_for(source.listening.wait(), 2)
            # The professional logs out at PSC: back-channel logout to the bridge, SSE to the client.
            assert await w.psc.end_session(MARIE) == 1
            await wait_ended(source)
            assert source.end_reason == "backchannel_logout"
            with pytest.raises(PSCError) as info:
                await source.token()
            assert info.value.oauth_error == "invalid_grant"
        assert scan(tmp_path, w.recorder.issued) == []


async def test_a_login_whose_session_the_store_cannot_keep_fails_at_once(tmp_path: Path, state_dir: Path,
                                                                        cipher: TokenCipher) -> None:
    """10,000 logins on a busy Redis: the store refused a session at the end of a CIBA login, the client
    waited until the login expired and the background task died unseen. Now the client hears 503 at once and
    PSC's session is not left open with nobody to end it."""
    from mssante.errors import AuthUnavailable

    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge:
        store = bridge.core.store
        real_create = store.create_session

        async def busy(*args: object, **kwargs: object) -> None:
            raise AuthUnavailable("the bridge store is unreachable (ConnectionError)")

        store.create_session = busy  # type: ignore[method-assign]
        secret = await bridge.core.add_installation("cab-busy")
        async with BridgeClient(w.config().base_url, "cab-busy", secret) as client:
            with pytest.raises(AuthUnavailable, match="log in again"):
                await asyncio.wait_for(client.login_with_ciba(MARIE), 20)
            assert w.recorder.refresh_tokens, "PSC issued tokens"
            for refresh in w.recorder.refresh_tokens:  # revoked: PSC's session ends with the failed login
                assert w.psc._realm.store.live_refresh_token(refresh) is None
            store.create_session = real_create  # type: ignore[method-assign]
            source = await client.login_with_ciba(MARIE)  # the next login works
            check_token(w, await source.token())
            await source.aclose()


async def test_a_ciba_login_polled_here_wakes_its_waiter_without_reading_the_store_meanwhile(
        tmp_path: Path, state_dir: Path, cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 logins waited on at once on Redis: each waiter read its login every 0.5 s, the pool ran dry and
    logins failed with 503. A CIBA login whose PSC polling runs in this process wakes its waiter when it ends:
    each ``GET /logins/{id}`` reads the store once before its wait and once after, however long PSC takes."""
    from mssante.bridge import _logins

    monkeypatch.setattr(_logins, "_LOCAL_STEP", 3600.0)  # the safety net out of the way: only the wake ends a wait
    calls: list[str] = []
    real_result = _logins.LoginFlows.result

    async def result(self: _logins.LoginFlows, installation_id: str, login_id: str, wait: float) -> object:
        calls.append(login_id)
        return await real_result(self, installation_id, login_id, wait)

    monkeypatch.setattr(_logins.LoginFlows, "result", result)
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge:
        store = bridge.core.store
        reads: list[str] = []
        real_get = store.get_login

        async def get_login(login_id: str) -> object:
            reads.append(login_id)
            return await real_get(login_id)

        store.get_login = get_login  # type: ignore[method-assign]
        secret = await bridge.core.add_installation("cab-wait")
        async with BridgeClient(w.config().base_url, "cab-wait", secret) as client:
            source = await asyncio.wait_for(client.login_with_ciba(MARIE), 60)  # PSC approves after 1 s
            check_token(w, await source.token())
            await source.aclose()
        assert calls and len(reads) == 2 * len(calls), (len(reads), len(calls))
