"""What the HTTP hardening tests share: a trap for server-side log errors and tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mssante.bridge import TokenCipher
from tests.http._logs import LogTrap


@pytest.fixture
def log_trap() -> Iterator[LogTrap]:
    with LogTrap() as trap:
        yield trap


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mock PSC's state (its RSA key, made once)."""
    return tmp_path_factory.mktemp("psc-state")


@pytest.fixture(scope="session")
def cipher() -> TokenCipher:
    return TokenCipher.generate()
