"""The webmail in a real Chromium (playwright): PSC login, live new mail, XDM/CDA view, compose.

Screenshots go to the test's temporary directory; with ``MSSANTE_DOCS_SCREENSHOTS=1`` they
refresh the documentation's ``docs/img/webmail-*.png`` instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mssante.sandbox.runner import Sandbox
from tests.web.conftest import APP, INS, PER, xdm_message

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.async_api",
                                     reason="playwright is not installed (pip install playwright)")
if shutil.which(str(CHROMIUM)) is None:
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go."""
    if os.environ.get("MSSANTE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG
    return tmp_path


@pytest.fixture
async def page(sandbox: Sandbox) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR")
        tab = await context.new_page()
        tab.set_default_timeout(10_000)
        problems: list[str] = []  # CSP violations, script errors
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(str(e)))
        try:
            yield tab
            assert problems == [], problems
        finally:
            await context.close()
            await browser.close()


async def login_as_marie(page: Any, sandbox: Sandbox) -> None:
    expect = playwright_api.expect
    await page.goto(sandbox.info["webmail_url"])
    await page.get_by_role("button", name="Se connecter avec Pro Santé Connect").click()
    await expect(page.get_by_role("heading", name="Connexion à Pro Santé Connect")).to_be_visible()
    await page.get_by_label("Marie CURIE", exact=False).check()
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.get_by_role("heading", name="Boîte de réception")).to_be_visible()
    await expect(page.locator("body[data-live=on]")).to_have_count(1)  # the event stream is open


async def test_live_mail_and_cda_view(sandbox: Sandbox, page: Any, shots: Path) -> None:
    expect = playwright_api.expect
    await login_as_marie(page, sandbox)
    await expect(page.get_by_text("Aucun message dans ce dossier.")).to_be_visible()
    await page.evaluate("window.__noReload = true")
    await sandbox.store.deliver(PER, xdm_message())
    row = page.locator("#liste-messages tbody tr")
    await expect(row).to_have_count(1)
    await expect(row.first).to_contain_text("XDM")
    await expect(page.locator("#statut-direct")).to_contain_text("Nouveau message")
    await expect(page.locator("#compte-INBOX")).to_have_text("1 messages")  # folder count, updated out of band
    assert await page.evaluate("window.__noReload === true"), "the list must update without a page load"
    await _accessibility_basics(page)
    await page.screenshot(path=str(shots / "webmail-liste.png"))

    await row.first.get_by_role("link").click()
    await expect(page.get_by_role("heading", name="Archive XDM : IHE_XDM.ZIP")).to_be_visible()
    table = page.locator("#entetes-xmss")
    await expect(table.get_by_role("row", name="X-MSS-CODECDA")).to_contain_text("11502-2")
    await expect(table.get_by_role("row", name="X-MSS-INS")).to_contain_text("O")
    document = page.get_by_role("article")
    await expect(document).to_contain_text(INS)
    await expect(document).to_contain_text("PAT-TROIS")
    await expect(document.get_by_role("heading", name="Examens de biologie")).to_be_visible()
    await expect(document.get_by_role("cell", name="Hémoglobine [Masse/volume] Sang")).to_be_visible()
    await _accessibility_basics(page)
    await page.screenshot(path=str(shots / "webmail-message-cda.png"), full_page=True)
    assert (shots / "webmail-message-cda.png").stat().st_size > 10_000


async def test_compose_with_attachment_reaches_the_app_bal(sandbox: Sandbox, page: Any) -> None:
    expect = playwright_api.expect
    await login_as_marie(page, sandbox)
    await page.get_by_role("link", name="Nouveau message").click()
    await page.get_by_label("À").fill(APP)
    await page.get_by_label("Objet", exact=False).fill("Demande de dossier")
    await page.get_by_label("Message").fill("Bonjour,\nmerci de m'envoyer le dossier.")
    await page.get_by_label("Pièces jointes").set_input_files(
        files=[{"name": "ordonnance.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n%test\n"}])
    await page.get_by_label("Demander un accusé de lecture (MDN)").check()
    await page.get_by_role("button", name="Envoyer").click()
    await expect(page.get_by_role("heading", name="Message envoyé")).to_be_visible()
    async with httpx2.AsyncClient(base_url=sandbox.info["api_url"], timeout=10) as api:
        for _ in range(50):
            listing = (await api.get(f"/bals/{APP}/messages")).json()
            if listing["count"]:
                break
            await asyncio.sleep(0.1)
    message = listing["messages"][0]
    assert message["subject"] == "Demande de dossier" and message["from"]["address"] == PER
    assert message["mdn_requested"] is True
    assert [(a["filename"], a["content_type"]) for a in message["attachments"]] == [("ordonnance.pdf",
                                                                                       "application/pdf")]
    await page.get_by_role("link", name="Voir les envoyés").click()
    await expect(page.locator("#liste-messages tbody tr")).to_have_count(1)


async def test_french_by_default_and_english_by_the_switch(sandbox: Sandbox) -> None:
    """An English browser still gets French; the banner's switch gives English, kept across pages and live news."""
    expect = playwright_api.expect
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = await browser.new_context(locale="en-US")  # Accept-Language: en-US
        page = await context.new_page()
        page.set_default_timeout(10_000)
        try:
            await page.goto(sandbox.info["webmail_url"])
            assert await page.evaluate("document.documentElement.lang") == "fr"
            await expect(page.get_by_role("heading", level=1)).to_have_text("Webmail du bac à sable MSSanté")
            await page.get_by_role("link", name="English").click()
            assert await page.evaluate("document.documentElement.lang") == "en"
            await expect(page.get_by_role("heading", level=1)).to_have_text("MSSanté sandbox webmail")
            await page.get_by_role("button", name="Log in with Pro Santé Connect").click()
            await page.get_by_label("Marie CURIE", exact=False).check()  # the mock PSC's own page
            await page.get_by_role("button", name="Se connecter").click()
            await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()  # the choice was kept
            await expect(page.get_by_text("No message in this folder.")).to_be_visible()
            await expect(page.locator("body[data-live=on]")).to_have_count(1)
            await sandbox.store.deliver(PER, xdm_message())
            await expect(page.locator("#statut-direct")).to_contain_text("New message: ")
            await page.locator("#liste-messages tbody tr").first.get_by_role("link").click()
            await expect(page.get_by_role("heading", name="XDM archive: IHE_XDM.ZIP")).to_be_visible()
            await expect(page.get_by_role("heading", name="MSSanté headers (X-MSS)")).to_be_visible()
            await page.get_by_role("link", name="Français").click()
            await expect(page.get_by_role("heading", name="Archive XDM : IHE_XDM.ZIP")).to_be_visible()
        finally:
            await context.close()
            await browser.close()


async def _accessibility_basics(page: Any) -> None:
    """Landmarks, language, labelled controls, named links: what a screen reader needs first."""
    problems = await page.evaluate("""() => {
        const out = [];
        if (document.documentElement.lang !== 'fr') out.push('lang');
        if (!document.querySelector('main')) out.push('main landmark');
        if (!document.querySelector('header')) out.push('banner');
        for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
            if (!el.labels || el.labels.length === 0) out.push('unlabelled ' + (el.name || el.id));
        }
        for (const a of document.querySelectorAll('a')) {
            if (!a.textContent.trim() && !a.getAttribute('aria-label')) out.push('empty link ' + a.href);
        }
        if (document.querySelectorAll('h1').length !== 1) out.push('one h1');
        return out;
    }""")
    assert problems == []
