"""Helpers for tests of software built on mssante, ours and LPS editors' alike.

- :class:`FakeClock`: a :class:`mssante.clock.Clock` that moves only when the test says so, so
  token lifetimes, refresh margins and backoffs run instantly and deterministically.
"""

from __future__ import annotations

from ._clock import FakeClock

__all__ = ["FakeClock"]
