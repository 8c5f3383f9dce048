"""PSCSession: refresh ahead of expiry, single flight, end of session (ECO.1.2.5-7), logout."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from mssante.credentials import TokenSource
from mssante.errors import AuthUnavailable, ConnectError, PSCError
from mssante.psc import AuthorizationRequest, PSCClient, PSCSession, TokenSet
from mssante.secret import Secret
from tests.psc.conftest import CALLBACK, CLIENT_ID, LIFETIMES, LOGGED_OUT, MARIE, Box, login

SHORT = replace(LIFETIMES, access_token=2)


class CountingTransport(httpx2.AsyncHTTPTransport):
    """Counts the requests per path: shows how many refreshes really hit PSC."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.fail = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.paths.append(request.url.path)
        if self.fail:
            raise httpx2.ConnectError("connection refused", request=request)
        return await super().handle_async_request(request)

    def count(self, suffix: str) -> int:
        return sum(p.endswith(suffix) for p in self.paths)


def current(session: PSCSession) -> TokenSet | None:
    """Read the property afresh (defeats mypy's narrowing across awaits)."""
    return session.tokens


async def open_session(psc: PSCClient, **kwargs: float) -> PSCSession:
    url, pending = await psc.begin_authorization(CALLBACK)
    tokens = await psc.complete_authorization(pending, await login(url))
    return psc.open_session(tokens, **kwargs)


@pytest.mark.parametrize("lifetimes", [SHORT])
async def test_refresh_ahead_of_expiry(box: Box) -> None:
    transport = CountingTransport()
    psc = box.client(transport=transport)
    session = await open_session(psc, margin=1.0)
    source: TokenSource = session  # the protocol the IMAP/SMTP client uses
    seen: list[str] = []
    refresh_tokens: list[str] = []
    for _ in range(20):  # 6 s of the shared clock, in steps of 0.3 s
        token = await source.token()
        claims = await psc.validate_access_token(token, azp=CLIENT_ID)  # valid right now, per the JWKS
        assert claims["exp"] > box.clock.now()
        assert box.mock.validate_access_token(token.reveal())["preferred_username"] == MARIE
        if not seen or seen[-1] != token.reveal():
            seen.append(token.reveal())
            assert session.tokens is not None and session.tokens.refresh_token is not None
            refresh_tokens.append(session.tokens.refresh_token.reveal())
        await box.clock.advance(0.3)
    # 2 s tokens whose exp counts from a truncated iat (as Keycloak's), refreshed once less than
    # the margin is left: six tokens over the 6 s, every one of them valid when handed out.
    assert len(seen) == 6
    assert len(set(refresh_tokens)) == len(refresh_tokens)  # rotation: always the newest refresh token
    assert transport.count("/token") == len(seen)  # one code exchange + one request per refresh
    assert not session.ended.is_set()


@pytest.mark.parametrize("lifetimes", [SHORT])
async def test_concurrent_callers_share_one_refresh(box: Box) -> None:
    transport = CountingTransport()
    psc = box.client(transport=transport)
    session = await open_session(psc, margin=1.0)
    first = await session.token()
    before = transport.count("/token")
    await box.clock.advance(1.2)  # now within the margin
    tokens = await asyncio.gather(*(session.token() for _ in range(10)))
    assert transport.count("/token") == before + 1
    assert len({t.reveal() for t in tokens}) == 1 and tokens[0] != first
    # fresh=True by several callers at once (after [AUTHENTICATIONFAILED]): still one refresh.
    fresh = await asyncio.gather(*(session.token(fresh=True) for _ in range(5)))
    assert transport.count("/token") == before + 2 and len({t.reveal() for t in fresh}) == 1


async def test_psc_session_end_gives_invalid_grant(box: Box) -> None:
    psc = box.client()
    session = await open_session(psc)
    calls: list[str] = []
    done = asyncio.Event()

    async def close_mailboxes(s: PSCSession) -> None:
        calls.append(f"async:{s.end_reason}")
        done.set()

    session.on_end(lambda s: calls.append(f"sync:{s.end_reason}"))
    session.on_end(close_mailboxes)
    assert session.tokens is not None and await session.token() == session.tokens.access_token
    assert await box.mock.end_session(MARIE) == 1  # PSC ends the SSO session (its Python API)
    with pytest.raises(PSCError) as err:
        await session.token(fresh=True)
    assert err.value.oauth_error == "invalid_grant"
    assert session.ended.is_set() and await session.wait_ended() == "invalid_grant"
    await asyncio.wait_for(done.wait(), 2)
    assert calls == ["sync:invalid_grant", "async:invalid_grant"]
    assert current(session) is None and session not in psc.sessions()  # tokens forgotten (ECO.1.2.5)
    with pytest.raises(PSCError) as err:  # and it stays over, without asking PSC again
        await session.token()
    assert err.value.oauth_error == "invalid_grant"
    late: list[str] = []
    session.on_end(lambda s: late.append("late"))
    assert late == ["late"]


async def test_network_failure_keeps_the_session(box: Box) -> None:
    transport = CountingTransport()
    psc = box.client(transport=transport)
    session = await open_session(psc)
    box.mock.unavailable = True  # 503 temporarily_unavailable
    with pytest.raises(AuthUnavailable):
        await session.token(fresh=True)
    box.mock.unavailable = False
    transport.fail = True  # connection refused
    with pytest.raises(AuthUnavailable) as err:
        await session.token(fresh=True)
    assert isinstance(err.value.__cause__, ConnectError)
    transport.fail = False
    assert await session.token(fresh=True)
    assert not session.ended.is_set()  # ECO.1.2.7: retry later while the PSC session lives


@pytest.mark.parametrize("lifetimes", [replace(LIFETIMES, refresh_token=1.5, sso_idle=1.5)])
async def test_session_ends_when_the_refresh_token_expires(box: Box) -> None:
    session = await open_session(box.client())
    assert session.tokens is not None and session.tokens.refresh_expires_at is not None
    await box.clock.advance(session.tokens.refresh_expires_at - box.clock.now() - 0.01)
    assert not session.ended.is_set()
    await box.clock.advance(0.01)  # the refresh token's expiry, with no activity at all
    assert session.ended.is_set() and await session.wait_ended() == "refresh_expired"  # ECO.1.2.6


async def test_logout_front_and_back_channel(box: Box) -> None:
    psc = box.client()
    session = await open_session(psc)
    tokens = session.tokens
    assert tokens is not None and tokens.refresh_token is not None and tokens.id_token is not None
    result = await psc.logout(session, post_logout_redirect_uri=LOGGED_OUT, state="bye")
    assert result.revoked and result.ended_at_psc and session.end_reason == "logout"
    assert result.front_channel_url is not None
    url = urlsplit(result.front_channel_url.reveal())
    query = parse_qs(url.query)
    assert url.path.endswith("/protocol/openid-connect/logout")
    assert query["id_token_hint"] == [tokens.id_token.reveal()] and query["state"] == ["bye"]
    assert query["post_logout_redirect_uri"] == [LOGGED_OUT] and query["client_id"] == [CLIENT_ID]
    assert (await psc.introspect(tokens.refresh_token)) == {"active": False}
    assert (await psc.introspect(tokens.access_token)) == {"active": False}
    # The server-side end-session made PSC send a back-channel logout token to our receiver.
    assert len(box.logout_tokens) == 1
    assert await psc.handle_backchannel_logout(box.logout_tokens[0]) == []  # already ended here


async def test_backchannel_logout_ends_the_session(box: Box) -> None:
    psc = box.client()
    marie = await open_session(psc)
    other = psc.open_session(await psc.complete_authorization(*(await _second_login(psc))))
    assert marie.sid != other.sid
    assert await box.mock.end_session(marie.sid or "") == 1
    assert len(box.logout_tokens) == 1
    ended = await psc.handle_backchannel_logout(box.logout_tokens[0])
    assert ended == [marie] and marie.end_reason == "backchannel_logout" and not other.ended.is_set()
    with pytest.raises(PSCError) as err:  # replay of the same jti
        await psc.handle_backchannel_logout(box.logout_tokens[0])
    assert err.value.oauth_error == "invalid_logout_token"
    with pytest.raises(PSCError) as err:  # an ID token is not a logout token (no events)
        await psc.handle_backchannel_logout((other.tokens.id_token or Secret("x")).reveal() if other.tokens else "")
    assert err.value.oauth_error == "invalid_logout_token"


async def _second_login(psc: PSCClient) -> tuple[AuthorizationRequest, str]:
    url, pending = await psc.begin_authorization(CALLBACK)
    return pending, await login(url)  # a new browser: a new PSC session
