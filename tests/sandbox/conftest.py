"""Fixtures shared by the SMTP front test modules (test_smtp_front*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sandbox._smtp_env import Env, Material, build_material, start_env


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    """The PKI, mock PSC and tokens of one test module."""
    return build_material(tmp_path_factory.mktemp("smtp-material"))


@pytest.fixture
async def psc(material: Material) -> AsyncIterator[Env]:
    """A submission front in PSC mode (XOAUTH2 / OAUTHBEARER)."""
    env = await start_env(material, "psc")
    yield env
    await env.front.aclose()


@pytest.fixture
async def authcli(material: Material) -> AsyncIterator[Env]:
    """A submission front in AUTH_CLI mode (client certificate + PLAIN)."""
    env = await start_env(material, "authcli")
    yield env
    await env.front.aclose()
