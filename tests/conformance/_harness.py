"""Run the conformance suite against a fresh sandbox with the stdlib test LPS (or a broken variant)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mssante.conformance import InProcessControl, Profile, RunReport, RunSettings, choose_bal, run_job, write_latest
from mssante.sandbox.config import Lifetimes, SandboxConfig, default_config
from mssante.sandbox.runner import Sandbox
from tests.conformance._lps import LPSConfig, StdlibDriver, StdlibLPS

#: Timeouts scaled for an automated LPS that reacts within a second.
GREEN = RunSettings(time_scale=0.02, poll_interval=0.05, quiet_window=0.8, min_retry_interval=0.25,
                    unavailable_for=1.0)
#: Shorter bounds for the broken variants: they mostly wait for evidence that never comes.
RED = replace(GREEN, time_scale=0.007)


def sandbox_config() -> SandboxConfig:
    """The default sandbox with short PSC lifetimes (token-lifetimes waits two access-token lifetimes)."""
    return replace(default_config(), lifetimes=Lifetimes(access_token=4.0, refresh_token=300.0))


def holder_of(info: Mapping[str, Any], bal: str) -> str:
    return str(next(b for b in info["bals"] if b["address"].lower() == bal.lower())["holders"][0])


async def run_suite(
    state_dir: Path,
    trace_dir: Path,
    profile: Profile,
    lps: Callable[[LPSConfig], StdlibLPS] = StdlibLPS,
    *,
    cases: Sequence[str] = (),
    settings: RunSettings = GREEN,
) -> tuple[RunReport, list[str]]:
    """Start a sandbox on ``state_dir``, run the cases with the LPS built by ``lps``, return the report."""
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = InProcessControl(sb)
        bal = choose_bal(sb.info, profile, None, control.responders)
        loop = asyncio.get_running_loop()
        client_id = str(sb.info["psc"]["client_id"])

        async def mint() -> Mapping[str, Any]:
            return sb.psc.issue_tokens_for_tests(holder_of(sb.info, bal), client_id)

        def login() -> Mapping[str, Any]:  # the professional's PSC login, run in the sandbox's loop
            return asyncio.run_coroutine_threadsafe(mint(), loop).result(10)

        trace_file = trace_dir / f"traces-{profile.value}.jsonl"
        trace_file.unlink(missing_ok=True)
        cfg = LPSConfig(info=sb.info, bal=bal, profile=profile, login=login if profile is Profile.PER_ORG else None,
                        trace_file=trace_file)
        driver = StdlibDriver(lps(cfg))
        try:
            report = await run_job(control, driver, profile=profile, bal=bal, case_ids=cases, settings=settings,
                                   trace_file=trace_file, product_reference=cfg.product_reference)
        finally:
            await driver.close()
            await control.aclose()
        write_latest(report, state_dir)
    return report, cfg.errors
