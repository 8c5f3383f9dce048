"""The two-terminal setup: ``mssante sandbox up`` started first, the suite driving it through its API.

Every case runs: the API ends a professional's PSC sessions, refuses the next token of a BAL
for good (token freshness) and simulates a CRL outage (ECO.1.1.7). The builtin LPS logs in
by CIBA on the sandbox's PSC, as an LPS of another process must, and learns the end of its
PSC session through the channels a real LPS has (refresh refused, access token refused). The same
through the documented command line: tests/conformance/test_two_terminals_cli.py (its own module, so
that xdist deals it to another worker).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.conformance import DriverSetup, HTTPControl, Profile, Status, choose_bal, run_job
from mssante.conformance.builtin import create_driver
from tests.conformance._harness import GREEN
from tests.conformance._separate import separate_sandbox
from tests.conformance.test_builtin_client import FAST

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP], ids=lambda p: p.value)
async def test_builtin_client_passes_every_case_against_a_separate_sandbox(
    profile: Profile, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with separate_sandbox(state) as sb:
        control = HTTPControl(sb.info, state)
        bal = choose_bal(sb.info, profile, None, control.responders)
        setup = DriverSetup(info=sb.info, bal=bal, profile=profile, login=None, trace_file=tmp_path / "traces.jsonl")
        driver = create_driver(setup, tuning=FAST)
        try:
            report = await run_job(control, driver, profile=profile, bal=bal, settings=GREEN,
                                   trace_file=tmp_path / "traces.jsonl", product_reference=setup.product_reference)
        finally:
            await driver.close()
    not_green = [(r.case_id, r.code, r.status.value, r.explanation) for r in report.results
                 if r.status is not Status.PASS]
    assert not_green == []
    assert report.count(Status.ERROR) == 0 and report.count(Status.SKIPPED) == 0
    codes = {r.code for r in report.results}
    assert "crl-outage" in codes
    if profile is Profile.PER_ORG:
        assert {"psc-logout", "authenticationfailed"} <= codes
        fresh = next(r for r in report.results if r.code == "authenticationfailed")
        assert "avec un nouveau jeton" in fresh.explanation
