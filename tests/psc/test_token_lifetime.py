"""Access tokens carry exactly the configured lifetime, as Keycloak (PSC) does: ``exp - iat == 120``."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mssante.errors import TokenRejected
from mssante.sandbox.config import default_config
from mssante.sandbox.psc import MockPSC

MARIE = "899700000001"


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("start", [1_767_225_600.0, 1_767_225_600.001, 1_767_225_600.5, 1_767_225_600.999])
def test_access_and_id_tokens_live_exactly_the_configured_lifetime(start: float, tmp_path: Path) -> None:
    clock = Clock(start)
    config = default_config()
    mock = MockPSC(config, issuer="http://127.0.0.1:9/auth/realms/esante-wallet", state_dir=tmp_path, clock=clock)
    answer = mock.issue_tokens_for_tests(MARIE, config.clients[0].client_id)
    access, id_token = _claims(answer["access_token"]), _claims(answer["id_token"])
    assert config.lifetimes.access_token == 120
    assert access["iat"] == int(start) and access["exp"] - access["iat"] == 120
    assert answer["expires_in"] == 120
    assert (id_token["iat"], id_token["exp"]) == (access["iat"], access["exp"])
    # The token is refused at its exp, not a second later (RFC 7519 §4.1.4), and accepted just before.
    clock.now = access["exp"] - 0.001
    mock.validate_access_token(answer["access_token"])
    assert mock.introspect(answer["access_token"])["active"] is True
    clock.now = access["exp"]
    with pytest.raises(TokenRejected, match="expired"):
        mock.validate_access_token(answer["access_token"])
    assert mock.introspect(answer["access_token"])["active"] is False


def test_a_short_test_lifetime_is_whole_seconds_too(tmp_path: Path) -> None:
    config = replace(default_config(), lifetimes=replace(default_config().lifetimes, access_token=2))
    mock = MockPSC(config, issuer="http://127.0.0.1:9/auth/realms/esante-wallet", state_dir=tmp_path,
                   clock=Clock(1_767_225_600.75))
    access = _claims(mock.issue_tokens_for_tests(MARIE, config.clients[0].client_id)["access_token"])
    assert access["exp"] - access["iat"] == 2
