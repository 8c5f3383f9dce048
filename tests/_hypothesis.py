"""Hypothesis budgets: the everyday suite, and a ``fuzz`` profile with ten times the examples.

``HYPOTHESIS_PROFILE=fuzz bash scripts/test.sh tests/wire`` (or any subset) runs every property
with 10x its examples; tests that set their own ``max_examples`` write ``examples(N)`` so the
profile scales them too.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
#: How many times the everyday budget a profile runs.
SCALE = {"default": 1, "fuzz": 10}.get(PROFILE, 1)

# No deadline: a property is judged on its result, never on the time one example took on a
# busy machine (a deadline would make the suite depend on the machine's load).
settings.register_profile("default", deadline=None)
settings.register_profile(
    "fuzz", max_examples=100 * 10, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(PROFILE if PROFILE in ("default", "fuzz") else "default")


def examples(n: int) -> int:
    """``n`` examples in the everyday suite, ``10 * n`` under the ``fuzz`` profile."""
    return n * SCALE
