"""Unit checks without the mock: discovery rules, error mapping, token set parsing, logout tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from mssante.errors import AuthUnavailable, ConnectError, PSCError, RemoteProtocolError, UsageError
from mssante.psc import BACKCHANNEL_LOGOUT_EVENT, AuthorizationRequest, PSCClient, PSCSettings, TokenSet
from mssante.secret import Secret

ISSUER = "https://psc.test/auth/realms/esante-wallet"
KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "k1"})


def document(**changes: Any) -> dict[str, Any]:
    doc = {"issuer": ISSUER, "authorization_endpoint": "https://wallet.psc.test/auth",
           "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/certs"}
    return {k: v for k, v in (doc | changes).items() if v is not None}


def client(handler: Callable[[httpx2.Request], httpx2.Response]) -> PSCClient:
    settings = PSCSettings(issuer=ISSUER, client_id="rp", client_secret=Secret("s" * 32))
    return PSCClient(settings, transport=httpx2.MockTransport(handler))


def serving(doc: dict[str, Any], *, wallet_status: int = 200) -> Callable[[httpx2.Request], httpx2.Response]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path.endswith("wallet-openid-configuration"):
            return httpx2.Response(wallet_status, json=doc if wallet_status == 200 else {})
        if path.endswith("openid-configuration"):
            return httpx2.Response(200, json=doc)
        if path.endswith("/certs"):
            return httpx2.Response(200, json={"keys": [KEY.as_dict(private=False)]})
        return httpx2.Response(404)
    return handler


async def test_discovery_fallback_and_checks() -> None:
    async with client(serving(document(), wallet_status=404)) as psc:  # standard name as fallback
        assert (await psc.metadata()).endpoint("jwks_uri") == f"{ISSUER}/certs"
    for doc, code in [(document(issuer=ISSUER + "/"), "invalid_issuer"),
                      (document(token_endpoint="http://psc.test/token"), "invalid_discovery"),
                      (document(jwks_uri=None), "invalid_discovery")]:
        async with client(serving(doc)) as psc:
            with pytest.raises(PSCError) as err:
                await psc.metadata()
            assert err.value.oauth_error == code
    async with client(serving(document())) as psc:
        meta = await psc.metadata()
        assert await psc.metadata() is meta  # cached
        with pytest.raises(PSCError, match="no userinfo_endpoint"):
            meta.endpoint("userinfo_endpoint")


async def test_error_mapping() -> None:
    async with client(lambda r: httpx2.Response(503, json={"error": "temporarily_unavailable"})) as psc:
        with pytest.raises(AuthUnavailable):
            await psc.metadata()
    async with client(lambda r: httpx2.Response(502, text="<html>bad gateway</html>")) as psc:
        with pytest.raises(AuthUnavailable):
            await psc.metadata()
    async with client(lambda r: httpx2.Response(200, text="not json")) as psc:
        with pytest.raises(RemoteProtocolError):
            await psc.metadata()

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    async with client(refuse) as psc:
        with pytest.raises(ConnectError):
            await psc.metadata()


def test_token_set_parsing() -> None:
    now = 1000.0
    first = TokenSet.from_response({"access_token": "a1", "refresh_token": "r1", "expires_in": 120,
                                    "refresh_expires_in": 1800, "session_state": "sid"}, now=now)
    assert first.expires_at == 1120 and first.refresh_expires_at == 2800 and first.session_state == "sid"
    second = TokenSet.from_response({"access_token": "a2", "expires_in": 120}, now=now + 100, previous=first)
    assert second.refresh_token == Secret("r1") and second.refresh_expires_at == 2800  # not rotated: kept
    assert "a1" not in repr(first) and "r1" not in str(second)
    with pytest.raises(RemoteProtocolError):
        TokenSet.from_response({"access_token": "a", "token_type": "mac"}, now=now)
    with pytest.raises(RemoteProtocolError):
        TokenSet.from_response({"token_type": "Bearer"}, now=now)
    assert TokenSet.from_response({"access_token": "a"}, now=now).expires_at == now + 60


def test_authorization_request_storage() -> None:
    with pytest.raises(UsageError):
        AuthorizationRequest.from_dict({"state": "s"})
    with pytest.raises(UsageError):
        AuthorizationRequest.from_dict({"state": "", "nonce": "n", "code_verifier": "v", "redirect_uri": "u",
                                        "created_at": 0})


async def test_begin_authorization_refuses_overrides() -> None:
    async with client(serving(document())) as psc:
        with pytest.raises(UsageError):
            await psc.begin_authorization("https://rp.test/cb", extra={"scope": "openid"})
        url, _ = await psc.begin_authorization("https://rp.test/cb", extra={"kc_idp_hint": "psc"})
        assert url.startswith("https://wallet.psc.test/auth?") and "kc_idp_hint=psc" in url


def logout_token(**changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "rp", "iat": now, "exp": now + 120, "jti": f"j-{time.monotonic_ns()}",
              "sid": "sid-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}
    claims = {k: v for k, v in (claims | changes).items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1", "typ": "logout+jwt"}, claims, KEY)


async def test_logout_token_rules() -> None:
    async with client(serving(document())) as psc:
        assert await psc.handle_backchannel_logout(logout_token()) == []  # valid, no session known
        refused = [
            logout_token(nonce="n"),  # §2.6 step 6
            logout_token(events={"other": {}}),  # §2.6 step 5
            logout_token(events=None),
            logout_token(sid=None),  # neither sid nor sub
            logout_token(aud="other-rp"),
            logout_token(iss="https://evil.example"),
            logout_token(iat=int(time.time()) - 3600, exp=None),  # too old
            logout_token(jti=None),
        ]
        for token in refused:
            with pytest.raises(PSCError) as err:
                await psc.handle_backchannel_logout(token)
            assert err.value.oauth_error == "invalid_logout_token"
