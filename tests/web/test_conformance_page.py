"""The webmail's « Conformité » page in Chromium: both profiles, case ids, French titles and verdicts, the
date, the BAL and the LPS, and live updates while a run is going (the suite's events over SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mssante.conformance import (
    DriverSetup,
    ExternalDriver,
    InProcessControl,
    Profile,
    RunEvents,
    RunSettings,
    catalogue,
    run_job,
    write_latest,
)
from mssante.conformance.builtin import create_driver
from mssante.sandbox.runner import Sandbox
from tests.conformance.test_builtin_client import FAST
from tests.web.conftest import APP, PER
from tests.web.test_browser import (
    page,  # noqa: F401 - the Chromium page fixture
    playwright_api,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
QUICK = RunSettings(time_scale=0.02, poll_interval=0.05, quiet_window=0.5, min_retry_interval=0.25,
                    unavailable_for=1.0)


async def _builtin_per_org_run(sb: Sandbox, control: InProcessControl) -> None:
    holder = next(str(b["holders"][0]) for b in sb.info["bals"] if b["address"] == PER)

    async def login() -> Mapping[str, Any]:
        return sb.psc.issue_tokens_for_tests(holder, str(sb.info["psc"]["client_id"]))

    driver = create_driver(DriverSetup(info=sb.info, bal=PER, profile=Profile.PER_ORG, login=login), tuning=FAST)
    try:
        report = await run_job(control, driver, profile=Profile.PER_ORG, bal=PER, settings=QUICK,
                               case_ids=("imap-starttls", "tls-version"), events=RunEvents(control=control))
    finally:
        await driver.close()
    write_latest(report, sb.state_dir)


async def test_conformance_page_live_and_after_runs(sandbox: Sandbox, page: Any) -> None:  # noqa: F811
    expect = playwright_api.expect
    control = InProcessControl(sandbox)
    await page.goto(sandbox.info["webmail_url"] + "conformance")
    await expect(page.get_by_role("heading", name="Résultats de conformité")).to_be_visible()
    await expect(page.get_by_text("Aucune campagne pour ce profil.")).to_have_count(2)
    await expect(page.locator("body[data-live=on]")).to_have_count(1)

    # A run of an external LPS (profile APP), at full time scale: it waits for the LPS.
    events = RunEvents(control=control)
    driver = ExternalDriver(bal=APP, profile=Profile.APP, echo=lambda _: None, announce=events.step)
    nil = next(c.id for c in catalogue(Profile.APP) if c.code == "x-mss-nil")
    job = asyncio.create_task(run_job(control, driver, profile=Profile.APP, bal=APP, case_ids=(nil,),
                                      events=events))
    live = page.locator("section.live")
    await expect(live.get_by_role("heading", name="Campagne en cours — profil app")).to_be_visible()
    row = live.locator(f"tr[data-case='{nil}']")
    await expect(row).to_contain_text("En cours…")
    await expect(row).to_contain_text("Envoyez depuis votre LPS")
    async with httpx2.AsyncClient() as http:  # the LPS says it cannot do it: the suite judges at once
        step = await http.get(sandbox.info["api_url"] + "/conformance/events", params={"run_id": events.run_id})
        ack = next(e["ack"]["url"] for e in step.json()["events"] if e["type"] == "step")
        await http.post(ack, json={"ok": False})
    await expect(page.locator("#statut-conformite")).to_have_text("Campagne terminée : NON CONFORME", timeout=20_000)
    write_latest(await asyncio.wait_for(job, 20), sandbox.state_dir)

    await _builtin_per_org_run(sandbox, control)
    await page.reload()
    per, app = page.locator("#profil-per-org"), page.locator("#profil-app")
    await expect(per.get_by_role("heading", name="BAL PER/ORG (Pro Santé Connect)")).to_be_visible()
    for section, bal in ((per, PER), (app, APP)):
        await expect(section).to_contain_text(bal)
        await expect(section.locator("dl.facts")).to_contain_text("Date")
    await expect(per).to_contain_text("mssante.client")
    await expect(app).to_contain_text("LPS externe")
    starttls = next(c for c in catalogue(Profile.PER_ORG) if c.code == "imap-starttls")
    per_row = per.locator(f"tr[data-case='{starttls.id}']")
    await expect(per_row).to_contain_text(starttls.title_fr)
    await expect(per_row.locator(".badge")).to_have_text("Conforme")
    await expect(per.locator("strong.verdict")).to_have_text("CONFORME")
    app_row = app.locator(f"tr[data-case='{nil}']")
    await expect(app_row.locator(".badge")).to_have_text("Non conforme")
    await expect(app_row).to_contain_text("X-MSS-NIL")
    await expect(app.locator("strong.verdict")).to_have_text("NON CONFORME")
    assert await page.get_by_text("pass", exact=True).count() == 0
    await page.screenshot(path=str(Path(sandbox.state_dir).parent / "conformite.png"), full_page=True)

    await page.goto(sandbox.info["webmail_url"] + "conformance?lang=en")  # the same results, in English
    await expect(page.get_by_role("heading", name="Conformance results")).to_be_visible()
    per, app = page.locator("#profil-per-org"), page.locator("#profil-app")
    await expect(per.locator(f"tr[data-case='{starttls.id}'] .badge")).to_have_text("Conformant")
    await expect(per.locator("strong.verdict")).to_have_text("CONFORMANT")
    await expect(app.locator(f"tr[data-case='{nil}'] .badge")).to_have_text("Not conformant")
    await expect(app.locator("strong.verdict")).to_have_text("NOT CONFORMANT")
    await expect(app.locator("dl.facts")).to_contain_text(" at ")  # 12/06/2026 at 08:15:02 (UTC+01:00)
    await control.aclose()
