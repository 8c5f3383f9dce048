"""Authorization code flow with PKCE against the mock PSC, and its error paths."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from mssante.errors import ConfigError, PSCError
from mssante.psc import AuthorizationRequest, PSCClient, TokenSet
from mssante.sandbox.psc import KEY_FILE_NAME
from tests.psc.conftest import CALLBACK, CLIENT_ID, CLIENT_SECRET, MARIE, Box, login


async def code_flow(psc: PSCClient, national_id: str = MARIE) -> tuple[TokenSet, AuthorizationRequest, str]:
    url, pending = await psc.begin_authorization(CALLBACK)
    location = await login(url, national_id)
    return await psc.complete_authorization(pending, location), pending, location


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_end_to_end(box: Box) -> None:
    psc = box.client()
    url, pending = await psc.begin_authorization(CALLBACK)
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["openid scope_all"] and query["acr_values"] == ["eidas1"]
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [CLIENT_ID]
    assert query["state"] == [pending.state.reveal()] and query["nonce"] == [pending.nonce.reveal()]
    assert pending.code_verifier.reveal() not in url

    stored = json.dumps(pending.to_dict())  # server-side storage round trip
    location = await login(url)
    assert location.startswith(CALLBACK)
    tokens = await psc.complete_authorization(AuthorizationRequest.from_dict(json.loads(stored)), location)

    assert tokens.id_claims["nonce"] == pending.nonce.reveal() and tokens.id_claims["acr"] == "eidas1"
    assert tokens.national_id == MARIE and tokens.scope == "openid scope_all"
    assert tokens.refresh_token and tokens.session_state == tokens.id_claims["sid"]
    assert 55 < tokens.expires_at - time.time() <= 60
    assert tokens.refresh_expires_at is not None and tokens.refresh_expires_at > tokens.expires_at
    claims = await psc.validate_id_token(tokens.id_token or "", nonce=pending.nonce.reveal())
    assert claims["SubjectNameID"] == MARIE

    info = await psc.userinfo(tokens.access_token)
    assert info["SubjectNameID"] == MARIE and info["sub"] == tokens.subject
    seen = await psc.introspect(tokens.access_token)
    assert seen["active"] is True and seen["client_id"] == CLIENT_ID and seen["username"] == MARIE
    access = await psc.validate_access_token(tokens.access_token, azp=CLIENT_ID)
    assert access["preferred_username"] == MARIE and access["sid"] == tokens.session_state

    meta = await psc.metadata()
    assert meta.issuer == box.issuer and meta.endpoint("token_endpoint").endswith("/protocol/openid-connect/token")


async def test_client_secret_post(box: Box) -> None:
    tokens, _, _ = await code_flow(box.client(auth_method="client_secret_post"))
    assert tokens.national_id == MARIE


async def test_wrong_or_missing_state(box: Box) -> None:
    psc = box.client()
    url, pending = await psc.begin_authorization(CALLBACK)
    location = await login(url)
    for bad in (with_query(location, state="forged"), location.replace("state=", "x=")):
        with pytest.raises(PSCError) as err:
            await psc.complete_authorization(pending, bad)
        assert err.value.oauth_error == "invalid_state"
    _, other = await psc.begin_authorization(CALLBACK)  # another browser's request
    with pytest.raises(PSCError) as err:
        await psc.complete_authorization(other, location)
    assert err.value.oauth_error == "invalid_state"


async def test_replayed_code(box: Box) -> None:
    psc = box.client()
    tokens, pending, location = await code_flow(psc)
    with pytest.raises(PSCError) as err:
        await psc.complete_authorization(pending, location)
    assert err.value.oauth_error == "invalid_grant"
    # RFC 6749 §4.1.2: the mock revokes what the code produced.
    assert (await psc.introspect(tokens.access_token)) == {"active": False}


async def test_access_denied_callback(box: Box) -> None:
    psc = box.client()
    url, pending = await psc.begin_authorization(CALLBACK)
    location = await login(url, action="cancel")
    with pytest.raises(PSCError) as err:
        await psc.complete_authorization(pending, location)
    assert err.value.oauth_error == "access_denied"


async def test_wrong_client_secret(box: Box) -> None:
    psc = box.client(client_secret="not-the-secret")
    url, pending = await psc.begin_authorization(CALLBACK)
    location = await login(url)
    with pytest.raises(PSCError) as err:
        await psc.complete_authorization(pending, location)
    assert err.value.oauth_error == "invalid_client"
    with pytest.raises(PSCError) as err:
        await psc.introspect("whatever")
    assert err.value.oauth_error == "invalid_client"


async def test_callback_iss_mismatch_and_missing_code(box: Box) -> None:
    psc = box.client()
    url, pending = await psc.begin_authorization(CALLBACK)
    location = await login(url)
    with pytest.raises(PSCError) as err:  # RFC 9207: a mix-up attack would show another iss
        await psc.complete_authorization(pending, with_query(location, iss="https://evil.example/realm"))
    assert err.value.oauth_error == "invalid_issuer"
    no_code = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items() if k != "code"}
    with pytest.raises(PSCError) as err:
        await psc.complete_authorization(pending, no_code)
    assert err.value.oauth_error == "invalid_callback"


async def test_issuer_mismatch_in_discovery(box: Box) -> None:
    # Same server reached as "localhost": the discovery document names 127.0.0.1 (OIDC Discovery §4.3).
    psc = box.client()
    other = PSCClient(psc.settings.with_changes(issuer=box.issuer.replace("127.0.0.1", "localhost")))
    box.clients.append(other)
    with pytest.raises(PSCError) as err:
        await other.begin_authorization(CALLBACK)
    assert err.value.oauth_error == "invalid_issuer"


def test_insecure_urls_refused() -> None:
    from mssante.psc import PSCSettings

    with pytest.raises(ConfigError):
        PSCSettings(issuer="http://psc.example/auth/realms/esante-wallet", client_id="x", client_secret="s")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        PSCSettings(issuer="https://psc.example/realm/", client_id="x", client_secret="s")  # type: ignore[arg-type]
    ok = PSCSettings.bac_a_sable("x", client_secret="s")
    assert ok.issuer == "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet" and not ok.loopback
    assert ok.discovery_urls[0].endswith("/.well-known/wallet-openid-configuration")
    assert PSCSettings.production("x", client_secret="s").issuer.startswith("https://auth.esw.esante.gouv.fr/")


# -- ID token forgeries ------------------------------------------------------------------------------
def _claims(box: Box, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": box.issuer, "aud": CLIENT_ID, "sub": f"f:x:{MARIE}", "iat": now, "exp": now + 60,
            "acr": "eidas1", "nonce": "n-1", "SubjectNameID": MARIE}
    return {k: v for k, v in (base | changes).items() if v is not None}


async def test_forged_and_expired_id_tokens(box: Box, psc_state_dir: Any) -> None:
    psc = box.client()
    real_key = RSAKey.import_key(json.loads((psc_state_dir / KEY_FILE_NAME).read_text()))
    kid = box.mock.jwks()["keys"][0]["kid"]
    other_key = RSAKey.generate_key(2048, private=True)
    header = {"alg": "RS256", "kid": kid}
    good = jwt.encode(header, _claims(box), real_key)
    assert (await psc.validate_id_token(good, nonce="n-1"))["sub"] == f"f:x:{MARIE}"

    forged = {
        "other key": jwt.encode(header, _claims(box), other_key),
        "expired": jwt.encode(header, _claims(box, iat=int(time.time()) - 600, exp=int(time.time()) - 120), real_key),
        "other issuer": jwt.encode(header, _claims(box, iss="https://evil.example"), real_key),
        "other audience": jwt.encode(header, _claims(box, aud="someone-else"), real_key),
        "no acr": jwt.encode(header, _claims(box, acr=None), real_key),
        "wrong nonce": jwt.encode(header, _claims(box, nonce="n-2"), real_key),
        "unknown kid": jwt.encode({"alg": "RS256", "kid": "nope"}, _claims(box), other_key),
        "HS256 wrong secret": jwt.encode({"alg": "HS256"}, _claims(box), OctKey.import_key("x" * 40),
                                         algorithms=["HS256"]),
        "alg none": "eyJhbGciOiJub25lIn0." + good.split(".")[1] + ".",  # {"alg":"none"}
        "garbage": "not-a-jwt",
    }
    for name, token in forged.items():
        with pytest.raises(PSCError) as err:
            await psc.validate_id_token(token, nonce="n-1")
        assert err.value.oauth_error == "invalid_id_token", name
    # HS256 keyed by the client secret is accepted, as real PSC may sign ID tokens (psc-igc.md §1.5).
    hs = jwt.encode({"alg": "HS256"}, _claims(box), OctKey.import_key(CLIENT_SECRET), algorithms=["HS256"])
    assert (await psc.validate_id_token(hs, nonce="n-1"))["acr"] == "eidas1"
    strict = box.client(id_token_algorithms=("RS256",))
    with pytest.raises(PSCError, match="not allowed"):
        await strict.validate_id_token(hs, nonce="n-1")


async def test_forged_access_token(box: Box, psc_state_dir: Any) -> None:
    psc = box.client()
    kid = box.mock.jwks()["keys"][0]["kid"]
    now = int(time.time())
    claims = {"iss": box.issuer, "iat": now, "exp": now + 60, "typ": "Bearer", "azp": CLIENT_ID}
    forged = jwt.encode({"alg": "RS256", "kid": kid}, claims, RSAKey.generate_key(2048, private=True))
    with pytest.raises(PSCError) as err:
        await psc.validate_access_token(forged)
    assert err.value.oauth_error == "invalid_token"
    with pytest.raises(PSCError) as err:
        await psc.userinfo(forged)
    assert err.value.oauth_error == "invalid_token"
