"""The référencement job: run a whole profile (or chosen cases) in order and build the report.

Between cases the job removes every injected fault, so a case never inherits another's
sabotage; the LPS's own state (its sessions, its PSC login) carries over, as it would in a
real campaign. Each case runs under a hard limit derived from its timeout, so a job always
ends and always yields a complete :class:`~mssante.conformance._model.RunReport`.

The hard limits and every wait of the cases run on the job's :class:`mssante.clock.Clock`
(``run_job(clock=...)``): a test gives a :class:`mssante.testing.FakeClock` and a whole job's
timeouts pass instantly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mssante._version import __version__
from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.conformance._cases_reactions import DEFAULT_TOKEN_LIFETIME, TOKEN_LIFETIMES
from mssante.conformance._catalogue import select_cases
from mssante.conformance._context import CaseContext, RunSettings
from mssante.conformance._control import SandboxControl
from mssante.conformance._driver import LPSDriver
from mssante.conformance._events import RunEvents
from mssante.conformance._model import CaseResult, Profile, RunReport, Verdict
from mssante.errors import ConfigError, MssanteError, UsageError

__all__ = ["LATEST_FILE", "choose_bal", "run_job", "write_latest"]

#: Where the last results go, relative to the sandbox state directory (read by the webmail).
LATEST_FILE = Path("conformance") / "latest.json"
_T = TypeVar("_T")


def _bals(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(b) for b in info.get("bals", ()) if isinstance(b, Mapping)]


def choose_bal(info: Mapping[str, Any], profile: Profile, bal: str | None, responders: Sequence[str] = ()) -> str:
    """The BAL under test: ``bal`` checked against the profile, or the first BAL of the right kind.

    Raises:
        UsageError: ``bal`` is not a BAL of the sandbox, or its kind does not match the profile.
    """
    kinds = ("PER", "ORG") if profile is Profile.PER_ORG else ("APP",)
    skip = {r.lower() for r in responders}
    if bal is not None:
        found = next((b for b in _bals(info) if str(b.get("address", "")).lower() == bal.lower()), None)
        if found is None:
            raise UsageError(f"{bal} is not a BAL of this sandbox")
        if found.get("kind") not in kinds:
            raise UsageError(f"{bal} is a BAL {found.get('kind')}; profile {profile.value} tests {'/'.join(kinds)}")
        return str(found["address"])
    for b in _bals(info):
        if b.get("kind") in kinds and str(b.get("address", "")).lower() not in skip:
            return str(b["address"])
    raise UsageError(f"the sandbox has no BAL {'/'.join(kinds)} to test")


def _peer(info: Mapping[str, Any], bal: str, responders: Sequence[str]) -> str:
    skip = {r.lower() for r in responders} | {bal.lower()}
    others = [b for b in _bals(info) if str(b.get("address", "")).lower() not in skip]
    if not others:
        raise UsageError("the sandbox needs a second BAL for the LPS to write to")
    others.sort(key=lambda b: b.get("kind") == "APP")  # a professional BAL first
    return str(others[0]["address"])


def _hard_limit(ctx: CaseContext) -> float:
    s = ctx.settings
    outlive = 0.0
    if ctx.case is not None and ctx.case.code == TOKEN_LIFETIMES:  # waits two real token lifetimes
        outlive = 2.5 * (ctx.control.access_token_lifetime() or DEFAULT_TOKEN_LIFETIME)
    return ctx.bound() * 4 + s.quiet_window + s.unavailable_for + 30.0 + outlive


async def _within(clock: Clock, seconds: float, awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable`` in this task; cancel it once ``seconds`` passed on ``clock``.

    The work stays in the calling task (as :func:`asyncio.timeout` does it), so a fake clock
    driving this task sees the case's own waits; a timer task fires the limit.

    Raises:
        TimeoutError: the limit passed first.
    """
    task = asyncio.current_task()
    assert task is not None
    fired = False

    async def alarm() -> None:
        nonlocal fired
        await clock.sleep(seconds)
        fired = True
        task.cancel()

    timer = asyncio.ensure_future(alarm())
    try:
        return await awaitable
    except asyncio.CancelledError:
        if fired and task.uncancel() == 0:
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()


async def run_job(
    control: SandboxControl,
    driver: LPSDriver,
    *,
    profile: Profile,
    bal: str | None = None,
    case_ids: Sequence[str] = (),
    settings: RunSettings | None = None,
    trace_file: Path | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    events: RunEvents | None = None,
    clock: Clock = SYSTEM_CLOCK,
    product_reference: str | None = None,
) -> RunReport:
    """Run the cases of ``profile`` against the LPS behind ``driver`` and return the report.

    ``on_result`` is called after each case (the CLI prints progress with it); ``events``
    receives the machine-readable run (``--events``); ``product_reference`` is the X-MSS-NIL the
    LPS was declared with (``--product-reference``, ECO.2.4.3). The driver is not closed here: its owner
    closes it. When the sandbox stops answering, the run stops: the cases left are listed as
    not run and the report is incomplete (never CONFORME). ``clock`` paces every wait and hard
    limit (see the module docstring).

    Raises:
        UsageError: unknown case id, or a BAL that does not fit the profile.
        TransportError: the sandbox cannot be reached at the start.
        OSError: the events file cannot be written.
    """
    cases = select_cases(profile, case_ids)
    responders = control.responders
    target = choose_bal(control.info, profile, bal, responders)
    ctx = CaseContext(control=control, driver=driver, profile=profile, bal=target,
                      peer=_peer(control.info, target, responders),
                      responder=responders[0] if responders else None,
                      settings=settings or RunSettings(), trace_file=trace_file, events=events, clock=clock,
                      product_reference=product_reference)
    await control.clear_faults()
    if events is not None:
        await events.run_started(profile=profile.value, bal=target, peer=ctx.peer, lps=driver.name, cases=cases)
    results: list[CaseResult] = []
    interruption = ""
    for index, case in enumerate(cases, start=1):
        ctx.case = case
        await driver.inform(f"[{case.id}] {case.title_fr} ({', '.join(case.requirements)})")
        if events is not None:
            await events.case_started(case, index=index, total=len(cases), bound=ctx.bound(), bal=target)
        started = time.time()
        try:
            result = await _within(clock, _hard_limit(ctx), case.run(ctx))
        except TimeoutError:
            result = CaseResult.of(case, Verdict.errored(
                f"Délai maximal du cas dépassé ({_hard_limit(ctx):.0f} s) : le bac à sable ou le LPS ne répond plus."),
                started=started, ended=time.time())
        if not await _cleared(control):
            interruption = _gone(control, case.id)
            result = CaseResult.of(case, Verdict.errored(interruption), started=started, ended=time.time())
        results.append(result)
        if on_result is not None:
            on_result(result)
        if events is not None:
            await events.verdict(result)
        if interruption:
            break
    report = RunReport(profile=profile, bal=target, client=driver.name,
                       sandbox_domain=str(control.info.get("domain", "")), started_at=ctx.job_started,
                       ended_at=time.time(), results=tuple(results), tool_version=__version__,
                       not_run=tuple(c.id for c in cases[len(results):]), interruption=interruption)
    if events is not None:
        await events.ended(report)
    return report


async def _cleared(control: SandboxControl) -> bool:
    """Remove the case's faults; False when the sandbox no longer answers."""
    try:
        await control.clear_faults()
    except MssanteError:
        return await control.alive()
    return True


def _gone(control: SandboxControl, case_id: str) -> str:
    api = control.info.get("api_url", "?")
    return (f"Le bac à sable ne répond plus ({api}) pendant le cas {case_id} : la campagne s'arrête ; "
            "les cas restants ne sont pas jugés. Relancez « mssante sandbox up » puis la campagne.")


def write_latest(report: RunReport, state_dir: Path) -> Path:
    """Write ``report`` to ``STATE_DIR/conformance/latest.json`` and ``latest-<profile>.json``; the first path.

    The webmail's « Conformité » page shows the last run of each profile from the second one.
    Both are written atomically.

    Raises:
        ConfigError: the directory or a file cannot be written.
    """
    from mssante.sandbox.runner import write_json_atomically

    path = state_dir / LATEST_FILE
    data = report.to_dict()
    for target in (path.with_name(f"latest-{report.profile.value}.json"), path):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(target, data)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from exc
    return path

