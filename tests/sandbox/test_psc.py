"""The mock PSC under a real uvicorn server, driven by Authlib's AsyncOAuth2Client over httpx2.

Time is a :class:`mssante.testing.FakeClock` shared with the server (it starts at the real time,
so the HTTP clients' own checks agree): tests move it forward instead of sleeping.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import ssl
import stat
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from mssante.errors import AuthUnavailable, TokenRejected
from mssante.sandbox.config import Lifetimes, PSCClientConfig, SandboxConfig, default_config
from mssante.sandbox.psc import BACKCHANNEL_LOGOUT_EVENT, CIBA_GRANT_TYPE, ENDPOINTS, KEY_FILE_NAME, MockPSC
from mssante.testing import FakeClock
from tests._asgi_server import ThreadedASGIServer

REALM = "/auth/realms/esante-wallet"
MARIE, LOUIS, CLAUDE = "899700000001", "899700000002", "899700000003"  # CLAUDE refuses CIBA
LIFETIMES = Lifetimes(access_token=60, refresh_token=300, sso_max=900, sso_idle=200, auth_code=30,
                      ciba_request=30, ciba_interval=2, ciba_approve_delay=5)
RP_REDIRECT = "http://127.0.0.1:48123/callback"  # registered without port: RFC 8252 §7.3
TLS = ssl.create_default_context()  # shared by the test clients: creating one per client is slow


@dataclass
class Sandbox:
    psc: MockPSC
    base: str
    clock: FakeClock
    logout_tokens: list[str] = field(default_factory=list)
    clients: list[AsyncOAuth2Client] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.psc.issuer

    def url(self, key: str) -> str:
        return f"{self.issuer}/{ENDPOINTS[key]}"

    def oauth(self, client_id: str = "rp-web", **kwargs: Any) -> AsyncOAuth2Client:
        secret = {"rp-web": "rp-web-secret", "rp-post": "rp-post-secret", "rp-nociba": "rp-nociba-secret"}[client_id]
        client = AsyncOAuth2Client(client_id, secret, scope="openid scope_all", redirect_uri=RP_REDIRECT,
                                   code_challenge_method="S256", trust_env=False, verify=TLS, leeway=5,
                                   **kwargs)
        self.clients.append(client)  # closed when the sandbox stops
        return client


def make_config(base: str, lifetimes: Lifetimes) -> SandboxConfig:
    clients = (
        PSCClientConfig(client_id="rp-web", client_secret="rp-web-secret", redirect_uris=("http://127.0.0.1/callback",),
                        post_logout_redirect_uris=("http://127.0.0.1/logged-out",),
                        backchannel_logout_uri=f"{base}/rp/backchannel"),
        PSCClientConfig(client_id="rp-post", client_secret="rp-post-secret", redirect_uris=("http://127.0.0.1/callback",),
                        backchannel_logout_uri=f"{base}/rp/backchannel"),
        PSCClientConfig(client_id="rp-nociba", client_secret="rp-nociba-secret", ciba=False,
                        redirect_uris=("https://rp.example/cb",)),
    )
    return replace(default_config(), clients=clients, lifetimes=lifetimes)


class HTTPServer(ThreadedASGIServer):
    """One uvicorn server per test module, in a thread; each test installs a fresh MockPSC in it."""

    def install(self, state_dir: Path, lifetimes: Lifetimes = LIFETIMES) -> Sandbox:
        """Serve a new MockPSC (fresh state; the RSA key in ``state_dir`` is reused) on a fake clock."""
        clock = FakeClock(start=float(int(time.time())))  # a whole second: iat is truncated, as Keycloak does
        psc = MockPSC(make_config(self.base, lifetimes), issuer=self.base + REALM, state_dir=state_dir, clock=clock)
        box = Sandbox(psc, self.base, clock)
        self.target, self.logout_tokens = psc.app, box.logout_tokens
        return box


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("psc-state")


@pytest.fixture(scope="module")
def http_server() -> Iterator[HTTPServer]:
    with HTTPServer() as server:
        yield server


@pytest.fixture
async def box(http_server: HTTPServer, state_dir: Path) -> AsyncIterator[Sandbox]:
    sandbox = http_server.install(state_dir)
    yield sandbox
    for client in sandbox.clients:
        await client.aclose()


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: list[tuple[str, str]] = []
        self.radios: dict[str, list[str]] = {}
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a["action"]
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden.append((a["name"], a["value"]))
        elif tag == "input" and a.get("type") == "radio":
            self.radios.setdefault(a["name"], []).append(a["value"])
        elif tag == "button":
            self.buttons.append((a["name"], a["value"]))


def parse_form(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    return parser


async def browser_login(box: Sandbox, rp: AsyncOAuth2Client, browser: httpx2.AsyncClient,
                        national_id: str = MARIE, **params: str) -> tuple[str, str, str]:
    """Open the authorization URL, post the login form; return (redirect location, verifier, nonce)."""
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_hex(32)
    url, _ = rp.create_authorization_url(box.url("authorization_endpoint"), code_verifier=verifier, nonce=nonce,
                                         acr_values="eidas1", **params)
    page = await browser.get(url)
    if page.status_code == 302:  # SSO: the PSC session cookie is still valid
        return page.headers["location"], verifier, nonce
    assert page.status_code == 200, page.text
    assert 'lang="fr"' in page.text and "<label" in page.text and "Se connecter" in page.text
    form = parse_form(page.text)
    assert national_id in form.radios["national_id"] and ("action", "login") in form.buttons
    data = [*form.hidden, ("national_id", national_id), ("auth_mode", "CARD"), ("action", "login")]
    answer = await browser.post(form.action, data=dict(data))
    assert answer.status_code == 302, answer.text
    return answer.headers["location"], verifier, nonce


async def code_flow(
    box: Sandbox, client_id: str = "rp-web", **kwargs: Any
) -> tuple[AsyncOAuth2Client, dict[str, Any], str]:
    rp = box.oauth(client_id, **kwargs)
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as browser:
        location, verifier, nonce = await browser_login(box, rp, browser)
    token = await rp.fetch_token(box.url("token_endpoint"), authorization_response=location, code_verifier=verifier)
    return rp, dict(token), nonce


async def verify(box: Sandbox, token: str, **claims: Any) -> jwt.Token:
    """Verify a JWT with the JWKS fetched over HTTP, as an independent relying party would."""
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        jwks = (await http.get(box.url("jwks_uri"))).json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    options = {k: {"essential": True, "value": v} for k, v in claims.items()}
    jwt.JWTClaimsRegistry(now=int(box.clock()), iss={"essential": True, "value": box.issuer},
                          exp={"essential": True}, **options).validate(decoded.claims)
    return decoded


def b64(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode()


# -- discovery and keys ---------------------------------------------------------------------------
async def test_discovery_documents(box: Sandbox) -> None:
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        wallet = (await http.get(f"{box.issuer}/.well-known/wallet-openid-configuration")).json()
        standard = (await http.get(f"{box.issuer}/.well-known/openid-configuration")).json()
    assert wallet == standard == box.psc.discovery()
    assert wallet["issuer"] == box.issuer
    assert wallet["token_endpoint"] == f"{box.base}{REALM}/protocol/openid-connect/token"
    assert wallet["introspection_endpoint"].endswith("/protocol/openid-connect/token/introspect")
    assert wallet["backchannel_authentication_endpoint"].endswith("/protocol/openid-connect/ext/ciba/auth")
    assert wallet["code_challenge_methods_supported"] == ["S256"]
    assert wallet["backchannel_token_delivery_modes_supported"] == ["poll"]
    assert "password" not in wallet["grant_types_supported"]


async def test_signing_key_is_private_and_reused(box: Sandbox, tmp_path: Path) -> None:
    first = MockPSC(default_config(), issuer=box.issuer, state_dir=tmp_path / "new")
    assert stat.S_IMODE((tmp_path / "new" / KEY_FILE_NAME).stat().st_mode) == 0o600
    again = MockPSC(default_config(), issuer=box.issuer, state_dir=tmp_path / "new")
    assert again.jwks() == first.jwks() != box.psc.jwks()
    assert set(first.jwks()["keys"][0]) == {"kty", "n", "e", "kid", "use", "alg"}  # public part only


# -- authorization code flow ----------------------------------------------------------------------
async def test_code_flow_tokens_userinfo_introspection(box: Sandbox) -> None:
    rp, token, nonce = await code_flow(box)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 60
    assert 0 < token["refresh_expires_in"] <= 200 and token["scope"] == "openid scope_all"

    access = await verify(box, token["access_token"], azp="rp-web", typ="Bearer", acr="eidas1")
    assert access.header["typ"] == "JWT" and access.header["alg"] == "RS256"
    assert access.header["kid"] == box.psc.jwks()["keys"][0]["kid"]
    c = access.claims
    assert c["sub"].startswith("f:") and c["sub"].endswith(f":{MARIE}") and c["preferred_username"] == MARIE
    assert c["sid"] == c["session_state"] == token["session_state"]
    assert c["exp"] - c["iat"] in (60, 61) and c["scope"] == "openid scope_all" and "aud" not in c
    assert {"auth_time", "jti"} <= set(c)

    ident = await verify(box, token["id_token"], aud="rp-web", nonce=nonce, acr="eidas1", sid=c["sid"])
    assert ident.header["typ"] == "JWT" and ident.claims["SubjectNameID"] == MARIE

    info = (await rp.get(box.url("userinfo_endpoint"))).json()  # Bearer added by the client
    assert info["sub"] == c["sub"] and info["SubjectNameID"] == info["preferred_username"] == MARIE
    assert (info["given_name"], info["family_name"]) == ("Marie", "CURIE")
    exercice = info["SubjectRefPro"]["exercices"][0]
    assert exercice["codeProfession"] == "10" and exercice["activities"][0]["raisonSocialeSite"]
    assert info["otherIds"][0]["origine"] == "RPPS" and info["authMode"] == "CARD"

    seen = (await rp.introspect_token(box.url("introspection_endpoint"), token=token["access_token"])).json()
    assert seen["active"] is True and seen["client_id"] == "rp-web" and seen["username"] == MARIE
    assert seen["sub"] == c["sub"] and seen["SubjectNameID"] == MARIE
    assert box.psc.validate_access_token(token["access_token"])["jti"] == c["jti"]


async def test_client_secret_post_and_sso_session(box: Sandbox) -> None:
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as browser:
        web = box.oauth("rp-web")
        location, verifier, _ = await browser_login(box, web, browser)
        first = await web.fetch_token(box.url("token_endpoint"), authorization_response=location,
                                      code_verifier=verifier)
        post = box.oauth("rp-post", token_endpoint_auth_method="client_secret_post")
        location, verifier, _ = await browser_login(box, post, browser)  # no login page this time
        assert parse_qs(urlsplit(location).query)["iss"] == [box.issuer]  # RFC 9207
        second = await post.fetch_token(box.url("token_endpoint"), authorization_response=location,
                                        code_verifier=verifier)
    assert first["session_state"] == second["session_state"]
    assert (await verify(box, second["access_token"])).claims["azp"] == "rp-post"


# -- refresh ---------------------------------------------------------------------------------------
async def test_refresh_rotation_and_reuse_revokes_family(box: Sandbox) -> None:
    rp, token, _ = await code_flow(box)
    old = token["refresh_token"]
    new = await rp.refresh_token(box.url("token_endpoint"), refresh_token=old)
    assert new["refresh_token"] != old and new["access_token"] != token["access_token"]
    await verify(box, new["access_token"], azp="rp-web")
    with pytest.raises(OAuthError) as err:
        await rp.refresh_token(box.url("token_endpoint"), refresh_token=old)
    assert err.value.error == "invalid_grant"
    # Reuse detected: the whole family is revoked (RFC 9700 §4.14.2).
    assert box.psc.introspect(new["access_token"]) == {"active": False}
    with pytest.raises(OAuthError):
        await rp.refresh_token(box.url("token_endpoint"), refresh_token=new["refresh_token"])


async def test_refresh_extends_idle_and_is_bounded_by_sso_max(box: Sandbox) -> None:
    token = box.psc.issue_tokens_for_tests(LOUIS, "rp-web")
    rp = box.oauth()
    for _ in range(5):  # 5 x 150 s = 750 s > sso_idle (200 s): each refresh extends the idle window
        await box.clock.advance(150)
        token = dict(await rp.refresh_token(box.url("token_endpoint"), refresh_token=token["refresh_token"]))
    assert 148 <= token["refresh_expires_in"] <= 150  # capped by sso_max: 900 - 750
    await box.clock.advance(151)
    with pytest.raises(OAuthError) as err:
        await rp.refresh_token(box.url("token_endpoint"), refresh_token=token["refresh_token"])
    assert err.value.error == "invalid_grant"

    idle = box.psc.issue_tokens_for_tests(LOUIS, "rp-web")
    await box.clock.advance(201)  # idle timeout without refresh
    with pytest.raises(OAuthError):
        await rp.refresh_token(box.url("token_endpoint"), refresh_token=idle["refresh_token"])


async def test_access_token_expiry_on_the_server_clock(http_server: HTTPServer, state_dir: Path) -> None:
    # A one-second token, checked in-process, by introspection and by userinfo once the clock passed it:
    # the mock PSC reads only its clock, so the test moves it instead of sleeping (it was a 1.1 s sleep
    # on the real clock, and with iat truncated the token could be expired at the first check).
    sandbox = http_server.install(state_dir, replace(LIFETIMES, access_token=1))
    token = sandbox.psc.issue_tokens_for_tests(MARIE, "rp-web")
    assert sandbox.psc.validate_access_token(token["access_token"])["azp"] == "rp-web"
    await sandbox.clock.advance(0.99)
    assert sandbox.psc.introspect(token["access_token"])["active"] is True
    await sandbox.clock.advance(0.02)
    with pytest.raises(TokenRejected, match="expired"):
        sandbox.psc.validate_access_token(token["access_token"])
    assert sandbox.psc.introspect(token["access_token"]) == {"active": False}
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        answer = await http.get(sandbox.url("userinfo_endpoint"),
                                headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 401 and 'error="invalid_token"' in answer.headers["www-authenticate"]


# -- CIBA ------------------------------------------------------------------------------------------
async def ciba_start(
    http: httpx2.AsyncClient, box: Sandbox, login_hint: str, client: str = "rp-web"
) -> httpx2.Response:
    secret = f"{client}-secret"
    return await http.post(box.url("backchannel_authentication_endpoint"), auth=(client, secret), data={
        "scope": "openid scope_all", "acr_values": "eidas1", "login_hint": login_hint,
        "binding_message": "42", "channel": "MOBILE",
    })


async def ciba_poll(http: httpx2.AsyncClient, box: Sandbox, auth_req_id: str) -> httpx2.Response:
    return await http.post(box.url("token_endpoint"), auth=("rp-web", "rp-web-secret"),
                           data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id})


async def test_ciba_pending_slow_down_then_tokens(box: Sandbox) -> None:
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        started = await ciba_start(http, box, MARIE)
        assert started.status_code == 200
        body = started.json()
        assert body["expires_in"] == 30 and body["interval"] == 2 and body["auth_req_id"]
        req_id = body["auth_req_id"]
        assert (await ciba_poll(http, box, req_id)).json()["error"] == "authorization_pending"
        fast = await ciba_poll(http, box, req_id)
        assert fast.status_code == 400 and fast.json()["error"] == "slow_down"
        await box.clock.advance(2.5)
        assert (await ciba_poll(http, box, req_id)).json()["error"] == "authorization_pending"
        await box.clock.advance(5)
    rp = box.oauth()
    token = await rp.fetch_token(box.url("token_endpoint"), grant_type=CIBA_GRANT_TYPE, auth_req_id=req_id)
    access = await verify(box, token["access_token"], azp="rp-web", preferred_username=MARIE)
    assert access.header["typ"] == "JWT" and access.claims["authMode"] == "MOBILE"
    assert token["refresh_token"] and token["session_state"] == access.claims["sid"]
    await verify(box, token["id_token"], aud="rp-web", SubjectNameID=MARIE)
    with pytest.raises(OAuthError) as err:  # an auth_req_id is redeemed once
        await rp.fetch_token(box.url("token_endpoint"), grant_type=CIBA_GRANT_TYPE, auth_req_id=req_id)
    assert err.value.error == "invalid_grant"


async def test_ciba_denied_and_expired(box: Sandbox) -> None:
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        denied = (await ciba_start(http, box, CLAUDE)).json()["auth_req_id"]
        expiring = (await ciba_start(http, box, MARIE)).json()["auth_req_id"]
        await box.clock.advance(6)
        answer = await ciba_poll(http, box, denied)
        assert answer.status_code == 400 and answer.json()["error"] == "access_denied"
        await box.clock.advance(30)
        assert (await ciba_poll(http, box, expiring)).json()["error"] == "expired_token"


# -- logout ----------------------------------------------------------------------------------------
async def test_rp_initiated_logout_sends_backchannel_and_ends_refresh(box: Sandbox) -> None:
    rp, token, _ = await code_flow(box)
    sid = (await verify(box, token["access_token"])).claims["sid"]
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        answer = await http.get(box.url("end_session_endpoint"), params={
            "id_token_hint": token["id_token"], "post_logout_redirect_uri": "http://127.0.0.1/logged-out",
            "state": "bye"})
    assert answer.status_code == 302 and answer.headers["location"] == "http://127.0.0.1/logged-out?state=bye"
    assert len(box.logout_tokens) == 1
    logout = await verify(box, box.logout_tokens[0], aud="rp-web", sid=sid)
    assert logout.header["typ"] == "logout+jwt"
    assert logout.claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}} and "nonce" not in logout.claims
    assert logout.claims["sub"].endswith(MARIE)
    with pytest.raises(OAuthError) as err:
        await rp.refresh_token(box.url("token_endpoint"), refresh_token=token["refresh_token"])
    assert err.value.error == "invalid_grant"
    seen = await rp.introspect_token(box.url("introspection_endpoint"), token=token["access_token"])
    assert seen.json() == {"active": False}
    with pytest.raises(TokenRejected):
        box.psc.validate_access_token(token["access_token"])


async def test_end_session_api_by_national_id(box: Sandbox) -> None:
    web = box.psc.issue_tokens_for_tests(LOUIS, "rp-web")
    post = box.psc.issue_tokens_for_tests(LOUIS, "rp-post")
    other = box.psc.issue_tokens_for_tests(MARIE, "rp-web")
    assert await box.psc.end_session(LOUIS) == 2
    audiences = sorted(json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "==")).get("aud")
                       for t in box.logout_tokens)
    assert audiences == ["rp-post", "rp-web"]
    assert box.psc.introspect(web["access_token"]) == box.psc.introspect(post["refresh_token"]) == {"active": False}
    assert box.psc.introspect(other["access_token"])["active"] is True
    assert await box.psc.end_session(other["session_state"]) == 1
    assert await box.psc.end_session(other["session_state"]) == 0


# -- in-process validation and fault switch ---------------------------------------------------------
async def test_validate_access_token_refuses_forgeries(box: Sandbox, state_dir: Path) -> None:
    real = box.psc.issue_tokens_for_tests(MARIE, "rp-web")["access_token"]
    claims = dict(jwt.decode(real, KeySet.import_key_set(box.psc.jwks())).claims)
    kid = box.psc.jwks()["keys"][0]["kid"]
    ours = RSAKey.import_key(json.loads((state_dir / KEY_FILE_NAME).read_text()))
    other = RSAKey.generate_key(2048, private=True)
    forged = {
        "alg none": f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT', 'kid': kid}))}.{b64(json.dumps(claims))}.",
        "HS256": jwt.encode({"alg": "HS256", "kid": kid}, claims, OctKey.import_key("k" * 32), algorithms=["HS256"]),
        "other key": jwt.encode({"alg": "RS256", "kid": kid}, claims, other),
        "other issuer": jwt.encode({"alg": "RS256", "kid": kid}, {**claims, "iss": "https://evil.example"}, ours),
        "unknown jti": jwt.encode({"alg": "RS256", "kid": kid}, {**claims, "jti": "x"}, ours),
        "garbage": "not.a.jwt",
    }
    for name, token in forged.items():
        with pytest.raises(TokenRejected):
            box.psc.validate_access_token(token)
        assert box.psc.introspect(token) == {"active": False}, name
    await box.clock.advance(61)
    with pytest.raises(TokenRejected, match="expired"):
        box.psc.validate_access_token(real)


async def test_unavailable_switch(box: Sandbox) -> None:
    token = box.psc.issue_tokens_for_tests(MARIE, "rp-web")
    box.psc.unavailable = True
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        answer = await http.post(box.url("token_endpoint"), data={"grant_type": "refresh_token"})
        assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable"
        assert (await http.get(box.url("jwks_uri"))).status_code == 503
    with pytest.raises(AuthUnavailable):
        box.psc.validate_access_token(token["access_token"])
    with pytest.raises(AuthUnavailable):
        box.psc.introspect(token["access_token"])
    box.psc.unavailable = False
    assert box.psc.introspect(token["access_token"])["active"] is True


async def test_tokens_and_secrets_are_never_logged(box: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rp, token, _ = await code_flow(box)
    new = await rp.refresh_token(box.url("token_endpoint"), refresh_token=token["refresh_token"])
    await rp.introspect_token(box.url("introspection_endpoint"), token=new["access_token"])
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:  # an error path too
        await http.post(box.url("token_endpoint"), auth=("rp-web", "wrong"), data={"grant_type": "refresh_token"})
    server_side = [r for r in caplog.records if r.name.startswith(("authlib.oauth2", "mssante", "uvicorn"))]
    assert any(r.name.startswith("authlib.oauth2") for r in server_side)  # Authlib did log at DEBUG
    text = "\n".join(r.getMessage() for r in server_side)
    for secret in (token["access_token"], token["refresh_token"], token["id_token"], new["access_token"],
                   new["refresh_token"], "rp-web-secret"):
        assert secret not in text


async def test_store_purges_at_intervals_not_at_every_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 logins must not scan every session, grant and token 10,000 times (the purge was O(n) per login)."""
    from mssante.sandbox.psc.store import Store

    clock = FakeClock()
    store = Store(LIFETIMES, clock)
    purges: list[float] = []
    real = store._purge
    monkeypatch.setattr(store, "_purge", lambda now: (purges.append(now), real(now)))
    pro = default_config().professionals[0]
    sessions = [store.new_session(pro, "mobile") for _ in range(100)]
    assert len(purges) == 1 and len({s.sid for s in sessions}) == 100
    await clock.advance(30)  # the purge interval
    store.new_session(pro, "mobile")
    assert len(purges) == 2
