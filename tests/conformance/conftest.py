"""Fixtures of the conformance tests: one sandbox state directory (PKI made once) per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._ports import sandbox_state_dir


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sandbox state directory shared by the tests (they run one after the other); its HTTP port lies
    below the ephemeral range (tests/_ports.py)."""
    return sandbox_state_dir(tmp_path_factory.mktemp("conformance-sandbox"))
