from __future__ import annotations

from pathlib import Path

import pytest

from mssante.bridge import TokenCipher


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("psc-state")  # the mock's RSA key, made once


@pytest.fixture(scope="session")
def cipher() -> TokenCipher:
    return TokenCipher.generate()
