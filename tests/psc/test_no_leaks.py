"""No token, secret, code or verifier in any repr/str, nor in the logs, during the flows (ECO.1.2.5)."""

from __future__ import annotations

import logging
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from mssante.psc import TokenSet
from tests.psc.conftest import CALLBACK, CLIENT_SECRET, LIFETIMES, LOGGED_OUT, MARIE, Box, login


def _secrets_of(tokens: TokenSet) -> list[str]:
    values = [tokens.access_token.reveal()]
    values += [s.reveal() for s in (tokens.refresh_token, tokens.id_token) if s is not None]
    return values


@pytest.mark.parametrize("lifetimes", [replace(LIFETIMES, access_token=2)])
async def test_no_secret_in_reprs_or_logs(box: Box, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    psc = box.client()
    secrets = [CLIENT_SECRET]
    objects: list[object] = [psc, psc.settings]

    url, pending = await psc.begin_authorization(CALLBACK)
    with caplog.at_level(logging.WARNING, logger="httpcore2"):  # the test's browser sees the code, not us
        location = await login(url)
    secrets += [pending.code_verifier.reveal(), parse_qs(urlsplit(location).query)["code"][0]]
    tokens = await psc.complete_authorization(pending, location)
    session = psc.open_session(tokens, margin=1.0)
    await psc.userinfo(session)
    await psc.introspect(tokens.access_token)
    refreshed = await session.token(fresh=True)
    assert session.tokens is not None
    secrets += _secrets_of(tokens) + _secrets_of(session.tokens) + [refreshed.reveal()]
    objects += [pending, tokens, session, session.tokens, await psc.metadata()]

    ciba = await psc.start_ciba(MARIE)
    ciba_tokens = await box.clock.run(psc.wait_ciba(ciba, timeout=10))
    secrets += [ciba.auth_req_id.reveal(), *_secrets_of(ciba_tokens)]
    objects += [ciba, ciba_tokens]

    result = await psc.logout(session, post_logout_redirect_uri=LOGGED_OUT, state="s")
    assert result.front_channel_url is not None
    secrets.append(result.front_channel_url.reveal())
    objects += [result, session]
    logout_token = box.logout_tokens[0]
    secrets.append(logout_token)
    assert await psc.handle_backchannel_logout(logout_token) == []

    texts = [repr(o) for o in objects] + [str(o) for o in objects]
    assert "***" in repr(tokens)
    for secret in secrets:
        assert len(secret) >= 16
        for text in texts:
            assert secret not in text
        # Our loggers and httpx2/httpcore (which log URLs and headers) never carry a secret.
        # The mock's own browser-facing pages (the test's browser) are not the library's doing.
        ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mssante.sandbox")]
        for line in ours:
            assert secret not in line, (secret[:8], line[:80])
    assert any(r.name == "mssante.psc" for r in caplog.records)
