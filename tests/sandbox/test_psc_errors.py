"""Error answers of the mock PSC: OAuth error JSON, redirects with error, never a 500."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from authlib.integrations.httpx_client import OAuthError
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.sandbox.psc import ENDPOINTS
from tests._hypothesis import examples
from tests.sandbox.test_psc import (
    CLAUDE,
    MARIE,
    REALM,
    RP_REDIRECT,
    TLS,
    HTTPServer,
    Sandbox,
    box,
    ciba_start,
    code_flow,
    http_server,
    parse_form,
    state_dir,
)

_GOOD = {
    "response_type": "code", "client_id": "rp-web", "redirect_uri": RP_REDIRECT, "scope": "openid scope_all",
    "state": "st-1", "nonce": "n-1", "acr_values": "eidas1", "code_challenge_method": "S256",
    "code_challenge": create_s256_code_challenge("v" * 50),
}


__all__ = ["box", "http_server", "state_dir"]  # fixtures shared with test_psc


async def authorize(box: Sandbox, **changes: str | None) -> httpx2.Response:
    params = {k: v for k, v in {**_GOOD, **changes}.items() if v is not None}
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as browser:
        return await browser.get(f"{box.url('authorization_endpoint')}?{urlencode(params)}")


def redirect_error(answer: httpx2.Response) -> dict[str, list[str]]:
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(RP_REDIRECT)
    return parse_qs(urlsplit(location).query)


# -- authorization request ------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "error"), [
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),  # PKCE is mandatory
    ({"code_challenge_method": "plain"}, "invalid_request"),  # only S256
    ({"acr_values": "eidas2"}, "invalid_request"),
    ({"acr_values": None}, "invalid_request"),
    ({"scope": "openid"}, "invalid_scope"),  # scope_all missing
    ({"scope": "scope_all"}, "invalid_scope"),  # openid missing
    ({"scope": "openid scope_all admin"}, "invalid_scope"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"prompt": "none"}, "login_required"),
])
async def test_authorization_errors_redirect_to_the_client(box: Sandbox, changes: dict[str, str | None],
                                                           error: str) -> None:
    query = redirect_error(await authorize(box, **changes))
    assert query["error"] == [error] and query["state"] == ["st-1"] and query["iss"] == [box.issuer]


@pytest.mark.parametrize("changes", [
    {"redirect_uri": "http://127.0.0.1:9999/elsewhere"},
    {"redirect_uri": "http://localhost:9999/callback"},  # loopback rule is for IP literals only
    {"redirect_uri": "https://evil.example/callback"},
    {"redirect_uri": None},
    {"client_id": "nobody"},
])
async def test_bad_redirect_uri_or_client_is_never_followed(box: Sandbox, changes: dict[str, str | None]) -> None:
    answer = await authorize(box, **changes)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert 'lang="fr"' in answer.text


async def test_login_page_cancel_and_unknown_professional(box: Sandbox) -> None:
    page = await authorize(box)
    form = parse_form(page.text)
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as browser:
        unknown = await browser.post(form.action, data={**dict(form.hidden), "national_id": "800000000000"})
        assert unknown.status_code == 400 and 'role="alert"' in unknown.text
        cancel = await browser.post(form.action, data={**dict(form.hidden), "action": "cancel"})
    assert redirect_error(cancel)["error"] == ["access_denied"]


# -- token endpoint ------------------------------------------------------------------------------
async def _code(box: Sandbox, verifier: str) -> str:
    rp = box.oauth()
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as browser:
        verifier_url, _ = rp.create_authorization_url(box.url("authorization_endpoint"), code_verifier=verifier,
                                                      nonce="n", acr_values="eidas1")
        form = parse_form((await browser.get(verifier_url)).text)
        answer = await browser.post(form.action, data={**dict(form.hidden), "national_id": MARIE})
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


async def token_call(box: Sandbox, data: dict[str, str], auth: tuple[str, str] | None = ("rp-web", "rp-web-secret"),
                     ) -> httpx2.Response:
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        return await http.post(box.url("token_endpoint"), data=data, auth=auth)


async def test_wrong_client_secret(box: Sandbox) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await _code(box, verifier)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": RP_REDIRECT, "code_verifier": verifier}
    answer = await token_call(box, data, auth=("rp-web", "wrong"))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")
    posted = await token_call(box, {**data, "client_id": "rp-web", "client_secret": "wrong"}, auth=None)
    assert posted.status_code in (400, 401) and posted.json()["error"] == "invalid_client"
    assert (await token_call(box, data)).status_code == 200  # the code survived the failed attempts


async def test_code_verifier_missing_or_wrong(box: Sandbox) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await _code(box, verifier)
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": RP_REDIRECT}
    assert (await token_call(box, base)).json()["error"] == "invalid_request"
    wrong = await token_call(box, {**base, "code_verifier": secrets.token_urlsafe(48)})
    assert wrong.json()["error"] == "invalid_grant"


async def test_replayed_code_is_refused_and_revokes_its_tokens(box: Sandbox) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await _code(box, verifier)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": RP_REDIRECT, "code_verifier": verifier}
    first = await token_call(box, data)
    assert first.status_code == 200
    replay = await token_call(box, data)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert box.psc.introspect(first.json()["access_token"]) == {"active": False}  # RFC 6749 §4.1.2


async def test_redirect_uri_must_match_at_the_token_endpoint(box: Sandbox) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await _code(box, verifier)
    answer = await token_call(box, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                    "redirect_uri": "http://127.0.0.1:1/callback"})
    assert answer.json()["error"] == "invalid_grant"


async def test_expired_code(box: Sandbox) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await _code(box, verifier)
    await box.clock.advance(31)
    answer = await token_call(box, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                    "redirect_uri": RP_REDIRECT})
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(("data", "auth", "error"), [
    ({"grant_type": "password", "username": "u", "password": "p"}, ("rp-web", "rp-web-secret"),
     "unsupported_grant_type"),
    ({"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": "x"}, ("rp-nociba", "rp-nociba-secret"),
     "unauthorized_client"),
    ({"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": "unknown"}, ("rp-web", "rp-web-secret"),
     "invalid_grant"),
    ({"grant_type": "refresh_token", "refresh_token": "forged"}, ("rp-web", "rp-web-secret"), "invalid_grant"),
    ({"grant_type": "refresh_token"}, ("rp-web", "rp-web-secret"), "invalid_request"),
    ({"grant_type": "refresh_token", "refresh_token": "x"}, ("nobody", "x"), "invalid_client"),
])
async def test_token_endpoint_errors(box: Sandbox, data: dict[str, str], auth: tuple[str, str], error: str) -> None:
    answer = await token_call(box, data, auth)
    assert answer.status_code in (400, 401) and answer.json()["error"] == error
    assert answer.headers["cache-control"] == "no-store"


async def test_refresh_token_of_another_client(box: Sandbox) -> None:
    token = box.psc.issue_tokens_for_tests(MARIE, "rp-post")
    answer = await token_call(box, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert answer.json()["error"] == "invalid_grant"


# -- CIBA request errors ---------------------------------------------------------------------------
async def test_ciba_request_errors(box: Sandbox) -> None:
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        unknown = await ciba_start(http, box, "899799999999")
        assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_user_id"
        nociba = await ciba_start(http, box, MARIE, client="rp-nociba")
        assert nociba.json()["error"] == "unauthorized_client"
        url = box.url("backchannel_authentication_endpoint")
        bad_scope = await http.post(url, auth=("rp-web", "rp-web-secret"),
                                    data={"scope": "openid", "acr_values": "eidas1", "login_hint": MARIE})
        assert bad_scope.json()["error"] == "invalid_scope"
        bad_secret = await http.post(url, auth=("rp-web", "nope"), data={"login_hint": CLAUDE})
        assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"


# -- other endpoints ------------------------------------------------------------------------------
async def test_userinfo_introspection_revocation_errors(box: Sandbox) -> None:
    token = box.psc.issue_tokens_for_tests(MARIE, "rp-web")
    async with httpx2.AsyncClient(trust_env=False, verify=TLS) as http:
        bare = await http.get(box.url("userinfo_endpoint"))
        assert bare.status_code == 401 and bare.headers["www-authenticate"].startswith("Bearer")
        intro = await http.post(box.url("introspection_endpoint"), data={"token": token["access_token"]},
                                auth=("rp-web", "bad"))
        assert intro.status_code == 401 and intro.json()["error"] == "invalid_client"
        revoke = await http.post(box.url("revocation_endpoint"), data={"token": token["access_token"]},
                                 auth=("rp-web", "rp-web-secret"))
        assert revoke.status_code == 200
        # RFC 7662 §2.2: a revoked token is inactive, and another client may ask.
        seen = await http.post(box.url("introspection_endpoint"), data={"token": token["access_token"]},
                               auth=("rp-post", "rp-post-secret"))
        assert seen.json() == {"active": False}
        refresh = await http.post(box.url("revocation_endpoint"), data={"token": token["refresh_token"]},
                                  auth=("rp-web", "rp-web-secret"))
        assert refresh.status_code == 200 and box.psc.introspect(token["refresh_token"]) == {"active": False}
        logout = await http.get(box.url("end_session_endpoint"),
                                params={"post_logout_redirect_uri": "https://evil.example/", "client_id": "rp-web"})
        assert logout.status_code == 400 and "location" not in logout.headers


async def test_errors_do_not_disturb_a_good_session(box: Sandbox) -> None:
    _, token, _ = await code_flow(box)
    with pytest.raises(OAuthError):
        await box.oauth().refresh_token(box.url("token_endpoint"), refresh_token="nope")
    assert box.psc.introspect(token["access_token"])["active"] is True


# -- garbage never yields a 500 ---------------------------------------------------------------------
_NAMES = st.sampled_from(["grant_type", "code", "client_id", "client_secret", "redirect_uri", "code_verifier",
                          "refresh_token", "auth_req_id", "scope", "token"]) | st.text(max_size=8)
_GRANTS = st.sampled_from(["authorization_code", "refresh_token", "urn:openid:params:grant-type:ciba", ""])
_ASCII = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def garbage_client() -> Iterator[httpx2.Client]:
    with httpx2.Client(trust_env=False, verify=TLS) as http:
        yield http


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.lists(st.tuples(_NAMES, st.one_of(_GRANTS, st.text(max_size=60))), max_size=6),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                  "application/json", "text/plain"]),
    authorization=st.one_of(st.none(), _ASCII.map(lambda s: "Basic " + s), _ASCII),
)
def test_garbage_never_causes_a_500(
    http_server: HTTPServer, state_dir: Path, garbage_client: httpx2.Client,
    fields: list[tuple[str, str]], raw: bytes | None, content_type: str, authorization: str | None,
) -> None:
    body = raw if raw is not None else urlencode(fields).encode()
    headers = {"content-type": content_type}
    if authorization is not None:
        headers["authorization"] = authorization
    if http_server.target is None:
        http_server.install(state_dir)
    base = http_server.base + REALM
    for key in ("token_endpoint", "introspection_endpoint", "backchannel_authentication_endpoint"):
        answer = garbage_client.post(f"{base}/{ENDPOINTS[key]}", content=body, headers=headers)
        assert answer.status_code < 500, (key, answer.text)
        assert "error" in answer.json() or answer.json().get("active") is False
