"""Progress on long work (issue 13, item 8), drawn with rich on stderr, on a terminal only.

Nothing is drawn when stderr is not a terminal (CI logs, pipes, a harness reading the output),
nor when the command writes machine output (``--json``, ``--events -``): :func:`disable` says
so. The display is transient: once the work ends, only the command's own lines stay.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["CaseProgress", "disable", "enabled", "progress_status", "reset"]

_disabled = False


def disable() -> None:
    """No progress display for the rest of this command (machine output was asked for)."""
    global _disabled
    _disabled = True


def reset() -> None:
    """Progress allowed again (a new command starts in this process)."""
    global _disabled
    _disabled = False


def _console() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


def enabled() -> bool:
    """A progress display may be drawn: stderr is a terminal and no machine output was asked for."""
    if _disabled:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


@contextlib.contextmanager
def progress_status(text: str) -> Iterator[None]:
    """A spinner with ``text`` while the block runs (nothing at all when :func:`enabled` is false)."""
    if not enabled():
        yield
        return
    with _console().status(text, spinner="dots"):
        yield


class CaseProgress:
    """``n/N`` cases, the last case id and the elapsed time, while a conformance run goes on."""

    def __init__(self, total: int, label: str) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._total, self._label = total, label

    def __enter__(self) -> CaseProgress:
        if enabled():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=_console(), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=self._total)
        return self

    def done(self, case_id: str) -> None:
        """One more case finished."""
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=f"{self._label} · {case_id}")

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
