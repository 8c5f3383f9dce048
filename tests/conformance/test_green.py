"""The whole catalogue is green against the sandbox with a correct (stdlib) LPS, and its CR renders."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mssante.conformance import Profile, Status, from_json, to_html, to_json, to_junit
from tests.conformance._harness import run_suite

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP], ids=lambda p: p.value)
async def test_full_catalogue_is_green(profile: Profile, state_dir: Path, tmp_path: Path) -> None:
    report, lps_errors = await run_suite(state_dir, tmp_path, profile)
    not_green = [(r.case_id, r.code, r.status.value, r.explanation) for r in report.results
                 if r.status is not Status.PASS]
    assert not not_green
    assert len(report.results) >= (18 if profile is Profile.PER_ORG else 16)
    assert not lps_errors
    assert all(r.evidence for r in report.results)
    # The CR of a real run: every case in the HTML, no failure in JUnit, JSON as written to latest.json.
    page = to_html(report)
    HTMLParser().feed(page)
    assert all(f'id="{r.case_id}"' in page for r in report.results)
    suite = ET.fromstring(to_junit(report)).find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    latest = (state_dir / "conformance" / "latest.json").read_text(encoding="utf-8")
    assert from_json(latest) == report == from_json(to_json(report))
