"""The requirement table: each of the 40 client-side ids is judged by a case with a red variant, or explained."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from mssante.conformance._requirements import REQUIREMENTS, requirement_table
from tests.conformance.test_red import ROWS
from tests.conformance.test_red_net import ROWS as NET_ROWS  # the network cases of issue 16

ROOT = Path(__file__).resolve().parents[2]
#: Issue 16: at least 36 of the 40 ids judged by a case that has a red variant.
MINIMUM_JUDGED = 36


def test_forty_distinct_client_side_ids() -> None:
    ids = [r.id for r in REQUIREMENTS]
    assert len(ids) == 40 == len(set(ids))
    assert all(re.fullmatch(r"ECO\.[1-4]\.\d\.\d+|SC\.MSS/CONF\.12", i) for i in ids)


def test_every_id_is_judged_or_explained() -> None:
    rows = requirement_table()
    neither = [r.requirement.id for r in rows if not r.judged and not (r.requirement.unjudged_fr
                                                                      and r.requirement.unjudged_en)]
    assert not neither, f"neither judged by a case nor explained: {neither}"
    assert sum(r.judged for r in rows) >= MINIMUM_JUDGED
    assert all(r.requirement.library for r in rows)


def test_every_judging_case_has_a_red_variant() -> None:
    red = {(profile, code) for _, profile, codes, _ in [*ROWS, *NET_ROWS] for code in codes}
    for row in requirement_table():
        for profile, case_id, code in row.cases:
            assert (profile, code) in red, (row.requirement.id, case_id, code)


def test_the_generated_pages_are_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "gen_requirements.py"), "--check"],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
