"""Settings shared by the whole suite: Hypothesis profiles (see tests/_hypothesis.py)."""

from __future__ import annotations

import tests._hypothesis  # noqa: F401 - registers and loads the Hypothesis profile
