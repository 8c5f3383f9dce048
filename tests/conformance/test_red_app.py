"""Every case of the APP profile turns red for a broken LPS (the rows of test_red.py whose profile is APP).

A module of its own so that xdist deals it to another worker than the PER/ORG rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.conformance import Profile
from tests.conformance._lps import StdlibLPS
from tests.conformance.test_red import check_red, rows_of

pytestmark = pytest.mark.slow


@rows_of(Profile.APP)
async def test_broken_lps_turns_the_case_red(
    variant: type[StdlibLPS], profile: Profile, codes: tuple[str, ...], marker: str, state_dir: Path, tmp_path: Path
) -> None:
    await check_red(variant, profile, codes, marker, state_dir, tmp_path)
