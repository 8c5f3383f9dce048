"""A PSC access token expires at its ``exp`` claim when that comes before ``now + expires_in``.

The bridge renews by ``TokenSet.expires_at``, so this is where its 2 s-token test's margin comes from.
"""

from __future__ import annotations

import base64
import json

import pytest

from mssante.psc import TokenSet


def _jwt(payload: bytes) -> str:
    part = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{part}.c2ln"


@pytest.mark.parametrize(("token", "expected"), [
    (_jwt(json.dumps({"exp": 1_000_120, "iat": 1_000_000}).encode()), 1_000_120.0),  # Keycloak: iat truncated
    (_jwt(json.dumps({"exp": 2_000_000}).encode()), 1_000_120.9),  # a later exp never extends expires_in
    (_jwt(json.dumps({"exp": "soon"}).encode()), 1_000_120.9),
    (_jwt(json.dumps({"exp": True}).encode()), 1_000_120.9),
    (_jwt(b"[" * 5000 + b"]" * 5000), 1_000_120.9),
    (_jwt(b"\xff not json"), 1_000_120.9),
    ("opaque-token", 1_000_120.9),
])
def test_expiry_is_the_earlier_of_exp_and_expires_in(token: str, expected: float) -> None:
    body = {"access_token": token, "token_type": "Bearer", "expires_in": 120}
    assert TokenSet.from_response(body, now=1_000_000.9).expires_at == expected
