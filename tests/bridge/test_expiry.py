"""The bridge renews a PSC access token by its ``exp`` claim when that comes before ``now + expires_in``."""

from __future__ import annotations

import base64
import json

import pytest

from mssante.bridge._core import expiry
from mssante.psc import TokenSet
from mssante.secret import Secret


def _jwt(payload: bytes) -> Secret:
    part = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return Secret(f"eyJhbGciOiJSUzI1NiJ9.{part}.c2ln")


@pytest.mark.parametrize(("token", "expected"), [
    (_jwt(json.dumps({"exp": 1_000_120, "iat": 1_000_000}).encode()), 1_000_120.0),  # Keycloak: iat truncated
    (_jwt(json.dumps({"exp": 2_000_000}).encode()), 1_000_120.9),  # a later exp never extends expires_in
    (_jwt(json.dumps({"exp": "soon"}).encode()), 1_000_120.9),
    (_jwt(json.dumps({"exp": True}).encode()), 1_000_120.9),
    (_jwt(b"[" * 5000 + b"]" * 5000), 1_000_120.9),
    (_jwt(b"\xff not json"), 1_000_120.9),
    (Secret("opaque-token"), 1_000_120.9),
])
def test_expiry_is_the_earlier_of_exp_and_expires_in(token: Secret, expected: float) -> None:
    assert expiry(TokenSet(access_token=token, expires_at=1_000_120.9)) == expected
