from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mssante.bridge import TokenCipher
from tests.bridge._support import redis_server
from tests.http._logs import no_log_errors


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("psc-state")  # the mock's RSA key, made once


@pytest.fixture(scope="session")
def cipher() -> TokenCipher:
    return TokenCipher.generate()


@pytest.fixture(autouse=True)
def _no_log_errors() -> Iterator[None]:
    """No test of this package may leave an error or a traceback in the log."""
    with no_log_errors():
        yield


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis server of our own on loopback for the module (skips when Debian's redis-server is absent)."""
    with redis_server() as url:
        if url is None:
            pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
        yield url
