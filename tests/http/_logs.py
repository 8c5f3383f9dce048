"""Server logs as test evidence: a traceback or an error in the log is a failure (issue 13)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


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


@contextlib.contextmanager
def no_log_errors() -> Iterator[LogTrap]:
    """Fail when the servers (or anything) logged an error or a traceback meanwhile (issue 13: never a traceback)."""
    with LogTrap() as trap:
        yield trap
    assert trap.failures() == [], "errors or tracebacks in the log"
