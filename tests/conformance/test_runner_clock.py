"""The conformance job waits on its clock: a FakeClock runs minutes of case timeouts instantly.

A real sandbox and the real runner; the LPS is an external one nobody drives (it only prints the
instructions), or one whose session never opens. With the default timings (a case waits minutes
for a person), the job still ends at once, because every deadline, poll and quiet window is
waited on the injected clock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.clock import Clock
from mssante.conformance import InProcessControl, Profile, RunSettings, Status, catalogue, choose_bal, run_job
from mssante.conformance._driver import ExternalDriver, SendRequest
from mssante.conformance._runner import _within
from mssante.sandbox.runner import Sandbox
from mssante.testing import FakeClock
from tests.conformance._harness import sandbox_config

PER = Profile.PER_ORG


class _StuckLPS(ExternalDriver):
    """An LPS whose IMAP session never opens: the action waits forever (on the job's clock)."""

    def __init__(self, clock: Clock, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._clock = clock

    @property
    def name(self) -> str:
        return "LPS bloqué"

    async def open_session(self, *, fresh: bool = False) -> None:
        await self._clock.sleep(10**9)

    async def send_message(self, request: SendRequest) -> None:
        await self._clock.sleep(10**9)


async def test_a_silent_lps_is_judged_after_the_full_timeouts_without_waiting_them(state_dir: Path) -> None:
    clock = FakeClock()
    said: list[str] = []
    settings = RunSettings()  # the timings for a person at the keyboard: minutes per case
    async with Sandbox(sandbox_config(), state_dir) as sb, asyncio.timeout(120):
        control = InProcessControl(sb)
        bal = choose_bal(sb.info, PER, None, control.responders)
        driver = ExternalDriver(bal=bal, profile=PER, echo=said.append)
        start = clock.now()
        report = await clock.run(run_job(control, driver, profile=PER, bal=bal, settings=settings, clock=clock,
                                         case_ids=("authorizationfailed", "imap-xoauth2")), timeout=90)
    results = {r.code: r for r in report.results}
    assert {code: r.status for code, r in results.items()} == {
        "imap-xoauth2": Status.FAIL, "authorizationfailed": Status.FAIL}
    assert "Aucune session IMAP" in results["imap-xoauth2"].explanation
    assert "Aucune tentative" in results["authorizationfailed"].explanation
    assert said  # the instructions were given
    # Both cases waited their whole bound (minutes), and the first its quiet window too, on the fake clock.
    timeouts = {c.code: c.timeout for c in catalogue(PER)}
    waited = timeouts["authorizationfailed"] + settings.quiet_window + timeouts["imap-xoauth2"]
    assert clock.now() - start >= waited >= 400


async def test_the_hard_limit_of_a_case_runs_on_the_clock(state_dir: Path) -> None:
    clock = FakeClock()
    settings = RunSettings(time_scale=0.5)
    async with Sandbox(sandbox_config(), state_dir) as sb, asyncio.timeout(120):
        control = InProcessControl(sb)
        bal = choose_bal(sb.info, PER, None, control.responders)
        driver = _StuckLPS(clock, bal=bal, profile=PER, echo=lambda _: None)
        report = await clock.run(run_job(control, driver, profile=PER, bal=bal, settings=settings, clock=clock,
                                         case_ids=("authorizationfailed", "unavailable")), timeout=90)
    assert [r.status for r in report.results] == [Status.ERROR, Status.ERROR]
    assert all("Délai maximal du cas dépassé" in r.explanation for r in report.results)
    assert not report.not_run and not report.interruption  # the job went on after the first limit
    # The limit is the scaled timeout x 4 plus the quiet and unavailable spells plus 30 s: 290 s of fake time.
    assert all("(290 s)" in r.explanation for r in report.results)


async def test_within_times_out_on_the_clock_and_lets_other_cancellations_through() -> None:
    clock = FakeClock()

    async def slow(seconds: float) -> str:
        await clock.sleep(seconds)
        return "done"

    assert await clock.run(_within(clock, 10, slow(5))) == "done"
    assert clock.sleepers == 0  # the alarm is gone once the work is done
    with pytest.raises(TimeoutError):
        await clock.run(_within(clock, 10, slow(20)))
    # A cancellation from outside stays a cancellation, not a timeout.
    task = asyncio.ensure_future(_within(clock, 10, slow(20)))
    await clock.wait_for_sleepers(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert clock.sleepers == 0
