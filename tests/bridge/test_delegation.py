"""A session delegated by its owner (an LPS) to another installation (a fleet): tokens and events, nothing more.

Real components on loopback: the mock PSC, the bridge under uvicorn (SQLite, or Redis with two
replicas: the owner on one, the delegate on the other), our client, and raw HTTP for the statuses
a non-Python client sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from mssante.bridge import Bridge, BridgeClient, BridgeTokenSource, TokenCipher
from mssante.errors import ConfigError, PSCError, UsageError
from tests.bridge._support import LOUIS, MARIE, World, running_bridge, world


@contextlib.asynccontextmanager
async def bridges(tmp: Path, state_dir: Path, cipher: TokenCipher, store: str | None
                  ) -> AsyncIterator[tuple[World, Bridge, Bridge]]:
    """One bridge on SQLite (``store`` None), or two replicas on Redis: (world, owner's, delegate's)."""
    if store is None:
        async with world(tmp, state_dir) as w, running_bridge(w, cipher=cipher) as one:
            yield w, one, one
        return
    async with world(tmp, state_dir, replicas=2) as w, running_bridge(w, 0, cipher=cipher, store=store) as a, \
            running_bridge(w, 1, cipher=cipher, store=store) as b:
        yield w, a, b


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


def raw(bridge: Bridge, installation: str, secret: str) -> httpx2.AsyncClient:
    """What a C#/Java client would send: HTTP Basic, JSON, nothing of ours."""
    return httpx2.AsyncClient(base_url=bridge.config.base_url, auth=httpx2.BasicAuth(installation, secret),
                              trust_env=False, timeout=10)


@contextlib.asynccontextmanager
async def parties(bridge: Bridge) -> AsyncIterator[tuple[str, str, BridgeTokenSource]]:
    """Installations ``cabinet`` (the LPS) and ``flotte`` (the fleet), and MARIE's session owned by ``cabinet``."""
    lps_secret = await bridge.core.add_installation("cabinet")
    fleet_secret = await bridge.core.add_installation("flotte")
    async with BridgeClient(bridge.config.base_url, "cabinet", lps_secret) as lps:
        owner = await lps.login_with_ciba(MARIE, on_binding=lambda _: None)
        yield lps_secret, fleet_secret, owner


async def ended(source: BridgeTokenSource) -> str:
    await asyncio.wait_for(source.ended.wait(), 10)
    return str(source.end_reason)


async def test_delegate_gets_tokens_and_events_until_the_owner_revokes(
        tmp_path: Path, state_dir: Path, cipher: TokenCipher, store_url: str | None) -> None:
    async with bridges(tmp_path, state_dir, cipher, store_url) as (w, owner_bridge, fleet_bridge):
        lps_secret = await owner_bridge.core.add_installation("cabinet")
        fleet_secret = await owner_bridge.core.add_installation("flotte")
        async with BridgeClient(owner_bridge.config.base_url, "cabinet", lps_secret, margin=0.5) as lps, \
                BridgeClient(fleet_bridge.config.base_url, "flotte", fleet_secret, margin=0.5) as fleet, \
                raw(fleet_bridge, "flotte", fleet_secret) as curl:
            owner = await lps.login_with_ciba(MARIE, on_binding=lambda _: None)
            sid = owner.session_id
            # before the delegation the fleet's installation gets the one 404 of an unknown session
            assert (await curl.post(f"/delegated/{sid}/token", json={})).status_code == 404

            assert await owner.delegate("flotte") == ["flotte"]
            assert await owner.delegate("flotte") == ["flotte"]  # idempotent
            assert await owner.delegations() == ["flotte"]
            stored = await fleet_bridge.core.store.get_session(sid)  # the record of either store carries it
            assert stored is not None and list(stored.delegates) == ["flotte"]

            delegate = fleet.delegated(sid)
            assert delegate.delegated and "secret" not in repr(delegate).lower()
            await asyncio.wait_for(delegate.listening.wait(), 10)
            first = await delegate.token()
            w.psc.validate_access_token(first.reveal())  # a real PSC token of MARIE's session
            assert (await owner.token()).reveal() == first.reveal()  # one PSC session, one token cache
            refreshes = w.recorder.refreshes
            renewed = await delegate.token(fresh=True)  # a refresh asked by the delegate
            assert renewed.reveal() != first.reveal() and w.recorder.refreshes == refreshes + 1
            w.psc.validate_access_token(renewed.reveal())
            answer = await curl.post(f"/delegated/{sid}/token", json={})
            assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
            assert answer.json()["token_type"] == "Bearer"

            await owner.revoke("flotte")
            assert await ended(delegate) == "delegation_revoked"  # the event stream said so, at once
            with pytest.raises(PSCError) as refused:
                await delegate.token()
            assert refused.value.oauth_error == "invalid_grant"
            assert (await curl.post(f"/delegated/{sid}/token", json={})).status_code == 404
            async with curl.stream("GET", f"/delegated/{sid}/events") as stream:
                assert stream.status_code == 404
            assert await owner.delegations() == []
            stored = await fleet_bridge.core.store.get_session(sid)
            assert stored is not None and list(stored.delegates) == [] and not stored.ended
            w.psc.validate_access_token((await owner.token(fresh=True)).reveal())  # the owner's session goes on
            assert not owner.ended.is_set()
            await owner.logout()


async def test_the_session_end_ends_the_delegation(
        tmp_path: Path, state_dir: Path, cipher: TokenCipher, store_url: str | None) -> None:
    async with bridges(tmp_path, state_dir, cipher, store_url) as (_w, owner_bridge, fleet_bridge):
        lps_secret = await owner_bridge.core.add_installation("cabinet")
        fleet_secret = await owner_bridge.core.add_installation("flotte")
        async with BridgeClient(owner_bridge.config.base_url, "cabinet", lps_secret) as lps, \
                BridgeClient(fleet_bridge.config.base_url, "flotte", fleet_secret) as fleet, \
                raw(fleet_bridge, "flotte", fleet_secret) as curl:
            owner = await lps.login_with_ciba(MARIE, on_binding=lambda _: None)
            await owner.delegate("flotte")
            delegate = fleet.delegated(owner.session_id)
            await asyncio.wait_for(delegate.listening.wait(), 10)
            await delegate.token()
            await owner.logout()
            assert await ended(delegate) == "logout"  # session_ended reached the delegate (ECO.1.2.6)
            answer = await curl.post(f"/delegated/{owner.session_id}/token", json={})
            assert answer.status_code == 410 and answer.json()["error"] == "session_ended"
            with pytest.raises(PSCError) as refused:
                await fleet.delegated(owner.session_id, listen=False).token()
            assert refused.value.oauth_error == "invalid_grant"


async def test_a_delegate_is_refused_logout_delegation_and_other_sessions(
        tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge:
        url = bridge.config.base_url
        lps_secret = await bridge.core.add_installation("cabinet")
        fleet_secret = await bridge.core.add_installation("flotte")
        other_secret = await bridge.core.add_installation("intrus")
        async with BridgeClient(url, "cabinet", lps_secret) as lps, \
                BridgeClient(url, "flotte", fleet_secret) as fleet, raw(bridge, "flotte", fleet_secret) as curl, \
                raw(bridge, "intrus", other_secret) as intruder:
            owner = await lps.login_with_ciba(MARIE, on_binding=lambda _: None)
            other = await lps.login_with_ciba(LOUIS, on_binding=lambda _: None)  # never delegated
            sid = owner.session_id
            await owner.delegate("flotte")
            delegate = fleet.delegated(sid, listen=False)
            await delegate.token()

            # logout: refused (403, UsageError); the session goes on for everyone
            with pytest.raises(UsageError, match="delegate"):
                await delegate.logout()
            answer = await curl.delete(f"/delegated/{sid}")
            assert answer.status_code == 403 and answer.json()["error"] == "delegate_forbidden"
            assert (await curl.delete(f"/sessions/{sid}")).status_code == 404  # no secret: the owner's route is shut
            # further delegation and the list of delegates: refused
            with pytest.raises(UsageError):
                await delegate.delegate("intrus")
            with pytest.raises(UsageError):
                await delegate.delegations()
            with pytest.raises(UsageError):
                await delegate.revoke("flotte")
            for method in ("GET", "POST"):
                answer = await curl.request(method, f"/delegated/{sid}/delegations", json={"installation_id": "x"})
                assert answer.status_code == 403
            answer = await curl.post(f"/sessions/{sid}/delegations", json={"installation_id": "intrus"})
            assert answer.status_code == 404
            # another session of the owner, and this session for another installation: the one 404
            with pytest.raises(PSCError) as refused:
                await fleet.delegated(other.session_id, listen=False).token()
            assert refused.value.oauth_error == "invalid_grant"
            assert (await curl.post(f"/delegated/{other.session_id}/token", json={})).status_code == 404
            answer = await intruder.post(f"/delegated/{sid}/token", json={})
            assert answer.status_code == 404 and answer.json()["error"] == "session_not_found"
            assert (await intruder.delete(f"/delegated/{sid}")).status_code == 404  # no 403 to probe with
            # a wrong fleet secret: 401, a ConfigError for our client
            async with BridgeClient(url, "flotte", "faux") as wrong:
                with pytest.raises(ConfigError):
                    await wrong.delegated(sid, listen=False).token()

            # the owner's own mistakes: typed, with the bridge's codes
            with pytest.raises(PSCError) as bad:
                await owner.delegate("personne")
            assert bad.value.oauth_error == "installation_not_found"
            with pytest.raises(PSCError) as bad:
                await owner.delegate("cabinet")
            assert bad.value.oauth_error == "invalid_request"
            with pytest.raises(PSCError) as bad:
                await owner.revoke("intrus")
            assert bad.value.oauth_error == "delegation_not_found"
            answer = await curl.post(f"/sessions/{sid}/delegations", json={"installation_id": "../x"},
                                     headers={"X-Session-Secret": "wrong"})
            assert answer.status_code == 404  # the owner's secret first: nothing else is judged

            assert not owner.ended.is_set()
            await delegate.token(fresh=True)  # still delegated, still alive


async def test_the_openapi_document_describes_delegation(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge, \
            httpx2.AsyncClient(base_url=bridge.config.base_url, trust_env=False) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
        assert {"post", "get"} <= paths["/sessions/{session_id}/delegations"].keys()
        assert "delete" in paths["/sessions/{session_id}/delegations/{installation_id}"]
        assert paths["/delegated/{session_id}/token"]["post"]["security"] == [{"installation": []}]
        assert "403" in paths["/delegated/{session_id}"]["delete"]["responses"]


async def curl(*args: str) -> tuple[int, str]:
    """curl (software we did not write), as a Delphi/WinDev LPS's HTTP stack would call: status and body."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    body, _, status = out.decode().rpartition("\n")
    return int(status), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_handoff_with_curl(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher) as bridge, \
            parties(bridge) as (lps_secret, fleet_secret, owner):
        url = bridge.config.base_url
        assert owner._secret is not None
        sid, owner_headers = owner.session_id, ["-u", f"cabinet:{lps_secret}",
                                                "-H", f"X-Session-Secret: {owner._secret.reveal()}"]
        json_body = ["-H", "Content-Type: application/json"]
        status, body = await curl(*owner_headers, *json_body, "-d", '{"installation_id":"flotte"}',
                                  f"{url}/sessions/{sid}/delegations")
        assert status == 201 and json.loads(body)["delegates"] == ["flotte"]
        fleet = ["-u", f"flotte:{fleet_secret}"]
        status, body = await curl(*fleet, *json_body, "-d", "{}", f"{url}/delegated/{sid}/token")
        assert status == 200
        w.psc.validate_access_token(json.loads(body)["access_token"])
        status, body = await curl(*fleet, "-X", "DELETE", f"{url}/delegated/{sid}")
        assert status == 403 and json.loads(body)["error"] == "delegate_forbidden"
        # the delegate's event stream (curl -N) closes with delegation_revoked when the owner revokes
        stream = await asyncio.create_subprocess_exec(
            "curl", "-sSN", "--max-time", "30", *fleet, f"{url}/delegated/{sid}/events",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert stream.stdout is not None
        assert await asyncio.wait_for(stream.stdout.readline(), 20) == b"event: ready\n"
        status, _ = await curl(*owner_headers, "-X", "DELETE", f"{url}/sessions/{sid}/delegations/flotte")
        assert status == 204
        rest, _ = await asyncio.wait_for(stream.communicate(), 20)
        assert stream.returncode == 0  # the bridge ended the stream
        assert b'event: delegation_revoked\ndata: {"installation":"flotte"}' in rest
        status, body = await curl(*fleet, *json_body, "-d", "{}", f"{url}/delegated/{sid}/token")
        assert status == 404 and json.loads(body)["error"] == "session_not_found"
        await owner.logout()


async def test_a_revocation_whose_event_was_lost_still_closes_the_delegate_stream(
        tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    from mssante.bridge._records import RESYNC

    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher, heartbeat=0.05) as bridge, \
            parties(bridge) as (_lps_secret, fleet_secret, owner):
        await owner.delegate("flotte")
        async with raw(bridge, "flotte", fleet_secret) as http, \
                http.stream("GET", f"/delegated/{owner.session_id}/events") as stream:
            lines = stream.aiter_lines()
            assert await lines.__anext__() == "event: ready"
            # the delegation disappears from the store without its events (a replica's pub/sub lost them)
            store = bridge.core.store
            record = await store.get_session(owner.session_id)
            assert record is not None and await store.swap_session(record.bump(delegates=()), 60)
            pings = 0
            while pings < 3:  # heartbeats go on: the cached record still names the delegate
                pings += (await asyncio.wait_for(lines.__anext__(), 5)) == ": ping"
            bridge.core._on_event("", RESYNC, {})  # the subscription is back: every stream looks at the store
            line = ""
            async with asyncio.timeout(10):  # pings for ever if the stream did not look (red before the look)
                while not line.startswith("event:"):
                    line = await lines.__anext__()
            assert line == "event: delegation_revoked"
            assert await asyncio.wait_for(lines.__anext__(), 5) == 'data: {"installation":"flotte"}'
        assert not owner.ended.is_set()
