"""The whole catalogue is green with the builtin LPS: ``mssante.client`` behind ``--client builtin``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mssante.client import Backoff
from mssante.conformance import (
    DriverSetup,
    InProcessControl,
    Profile,
    RunReport,
    Status,
    choose_bal,
    load_builtin_driver,
    run_job,
)
from mssante.conformance.builtin import ClientDriver, DriverTuning, create_driver
from mssante.sandbox.config import SandboxConfig, default_config
from mssante.sandbox.runner import Sandbox
from tests.conformance._harness import GREEN, holder_of

pytestmark = pytest.mark.slow

#: An automated LPS: retries spaced above GREEN.min_retry_interval (0.25 s), quick PSC checks.
FAST = DriverTuning(backoff=Backoff(initial=0.3, maximum=0.6, jitter=0.1, attempts=3), psc_check=0.2,
                    open_timeout=5.0, login_timeout=10.0, poll_interval=1.0, connect_timeout=5.0,
                    command_timeout=5.0)


def _config() -> SandboxConfig:
    """Short PSC access tokens (the next refresh reveals the end of the PSC session), quick CIBA approval."""
    base = default_config()
    return replace(base, lifetimes=replace(base.lifetimes, access_token=2.0, refresh_token=300.0,
                                           ciba_interval=0.2, ciba_approve_delay=0.3))


async def _run(state_dir: Path, trace_file: Path, profile: Profile, *, psc_login: bool = True,
               cases: Sequence[str] = ()) -> RunReport:
    async with Sandbox(_config(), state_dir) as sb:
        control = InProcessControl(sb)
        bal = choose_bal(sb.info, profile, None, control.responders)
        login: Callable[[], Awaitable[Mapping[str, Any]]] | None = None
        if profile is Profile.PER_ORG and psc_login:
            holder, client_id = holder_of(sb.info, bal), str(sb.info["psc"]["client_id"])

            async def login() -> Mapping[str, Any]:  # the professional's PSC login (CPS step)
                return sb.psc.issue_tokens_for_tests(holder, client_id)

        setup = DriverSetup(info=sb.info, bal=bal, profile=profile, login=login, trace_file=trace_file)
        hooked = load_builtin_driver(setup)  # what --client builtin finds
        assert isinstance(hooked, ClientDriver)
        await hooked.close()
        driver = create_driver(setup, tuning=FAST)
        try:
            return await run_job(control, driver, profile=profile, bal=bal, case_ids=cases, settings=GREEN,
                                 trace_file=trace_file, product_reference=setup.product_reference)
        finally:
            await driver.close()
            await control.aclose()


def _not_green(report: RunReport) -> list[tuple[str, str, str, str]]:
    return [(r.case_id, r.code, r.status.value, r.explanation) for r in report.results if r.status is not Status.PASS]


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP], ids=lambda p: p.value)
async def test_full_catalogue_is_green_with_the_client_library(
    profile: Profile, state_dir: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    report = await _run(state_dir, tmp_path / "traces.jsonl", profile)
    assert not _not_green(report)
    assert len(report.results) >= (18 if profile is Profile.PER_ORG else 16)
    assert report.client.startswith("mssante.client")
    assert time.monotonic() - started < 60


async def test_psc_login_through_ciba_when_no_login_is_given(state_dir: Path, tmp_path: Path) -> None:
    """A sandbox of another process gives no ``login``: the driver logs in through the sandbox's PSC (CIBA)."""
    report = await _run(state_dir, tmp_path / "traces.jsonl", Profile.PER_ORG, psc_login=False,
                        cases=("imap-xoauth2", "reopen-bye", "psc-logout"))
    assert not _not_green(report)
    assert [r.code for r in report.results] == ["imap-xoauth2", "reopen-bye", "psc-logout"]
