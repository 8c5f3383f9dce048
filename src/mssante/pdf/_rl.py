"""The one door to ReportLab: imports through here are typed ``Any`` (ReportLab ships no type hints)."""

from __future__ import annotations

import importlib
from typing import Any

from mssante.errors import ConfigError

__all__ = ["rl"]


def rl(module: str) -> Any:
    """Import and return a ReportLab module, e.g. ``rl("reportlab.platypus")``.

    Raises:
        ConfigError: ReportLab is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"PDF rendering needs reportlab (pip install 'reportlab>=4.4,<6'): {exc}") from None
