"""Run the main CLI in-process and get its exit code (what a shell would see)."""

from __future__ import annotations

import mssante.cli


def exit_code(argv: list[str]) -> int:
    """``mssante ARGV``'s exit code, its output left to pytest's capture."""
    try:
        mssante.cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
