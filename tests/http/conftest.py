"""What the HTTP hardening tests share: a trap for server-side log errors and tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mssante.bridge import TokenCipher


class LogTrap(logging.Handler):
    """Collects WARNING and above from the root logger and uvicorn's (which does not propagate)."""

    LOGGERS = ("", "uvicorn")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def failures(self) -> list[str]:
        """Records that betray a bug: a traceback, or an ERROR (uvicorn's "Exception in ASGI application")."""
        return [f"{r.name}: {r.getMessage()} ({r.exc_info[0].__name__ if r.exc_info and r.exc_info[0] else ''})"
                for r in self.records if r.exc_info or r.levelno >= logging.ERROR]

    def __enter__(self) -> LogTrap:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


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
