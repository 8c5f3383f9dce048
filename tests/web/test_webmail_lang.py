"""The webmail's language: French by default (whatever the browser asks), English on request, remembered."""

from __future__ import annotations

import re

import httpx2

from mssante._i18n import translator
from mssante.message import check_message
from mssante.sandbox.runner import Sandbox
from tests.web.conftest import APP, plain_message, xdm_message

MISSING_NIL = "X-MSS-NIL (product reference) is missing"


async def test_french_by_default_even_for_an_english_browser(api: httpx2.AsyncClient) -> None:
    home = await api.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="fr">' in home.text
    assert "Webmail du bac à sable MSSanté" in home.text and "Se connecter avec Pro Santé Connect" in home.text
    assert 'hreflang="en">English</a>' in home.text  # the switch offers the other language
    assert "mssante_lang" not in home.headers.get("set-cookie", "")


async def test_english_on_request_then_remembered(api: httpx2.AsyncClient) -> None:
    home = await api.get("/?lang=en")
    assert '<html lang="en">' in home.text
    assert "MSSanté sandbox webmail" in home.text and "Log in with Pro Santé Connect" in home.text
    assert "Bac à sable" not in home.text and "Connexion" not in home.text
    assert "mssante_lang=en" in home.headers["set-cookie"]
    journal = await api.get("/journal")  # the cookie carries the choice
    assert '<html lang="en">' in journal.text and "<h1>Session journal</h1>" in journal.text
    back = await api.get("/journal?lang=fr")
    assert "<h1>Journal des sessions</h1>" in back.text and "mssante_lang=fr" in back.headers["set-cookie"]


async def test_error_pages_in_both_languages(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    await api.post("/login/app", data={"bal": APP})
    missing = await api.get(f"/mail/{APP}/INBOX/999")
    assert missing.status_code == 404 and "Introuvable" in missing.text
    missing_en = await api.get(f"/mail/{APP}/INBOX/999?lang=en")
    assert missing_en.status_code == 404 and "<h1>Not found</h1>" in missing_en.text
    journal = await api.get("/journal")  # the English choice stays
    assert "No session recorded." in journal.text
    journal = await api.get("/journal?lang=fr")
    assert "Aucune session enregistrée." in journal.text


async def test_findings_shown_in_the_page_language(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    raw = plain_message("Sans référence produit", to=APP)
    assert MISSING_NIL in [f.message for f in check_message(raw).findings]
    french = translator("fr").finding(MISSING_NIL)
    assert french != MISSING_NIL
    await sandbox.store.deliver(APP, raw)
    listing = await api.post("/login/app", data={"bal": APP}, follow_redirects=True)
    assert "1 écart<" in listing.text  # one deviation: the singular, not "écart(s)"
    uid = re.search(rf"/mail/{re.escape(APP)}/INBOX/(\d+)", listing.text)
    assert uid
    page = await api.get(f"/mail/{APP}/INBOX/{uid.group(1)}")
    assert "Contrôles du message" in page.text and french in page.text and MISSING_NIL not in page.text
    assert ">erreur</span>" in page.text
    english = await api.get(f"/mail/{APP}/INBOX/{uid.group(1)}?lang=en")
    assert "Message checks" in english.text and MISSING_NIL in english.text and french not in english.text
    assert ">error</span>" in english.text
    listing_en = await api.get(f"/mail/{APP}/INBOX")
    assert "1 deviation<" in listing_en.text and "<th scope=\"col\">Subject</th>" in listing_en.text


def test_every_page_translation_keeps_its_placeholders() -> None:
    """The templates' messages use Jinja's ``%(name)s``: a French text must keep the same names."""
    from babel.messages.pofile import read_po

    from mssante._i18n import LOCALE_DIR

    with open(LOCALE_DIR / "fr" / "LC_MESSAGES" / "mssante.po", "rb") as handle:
        catalog = read_po(handle, locale="fr")
    names = re.compile(r"%\((\w+)\)[sd]")
    checked = 0
    for entry in catalog:
        if not entry.id or not any(path.endswith(".html") for path, _ in entry.locations):
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        expected = {n for i in ids for n in names.findall(i)}
        for text in strings:
            assert set(names.findall(text)) == expected, (entry.id, text)
        checked += 1
    assert checked > 150


async def test_a_quoted_archive_finding_is_translated_too(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    """The message checks quote archive findings after their place (``IHE_XDM/…/DOC0001.XML: …``)."""
    await sandbox.store.deliver(APP, xdm_message(to=APP))
    listing = await api.post("/login/app", data={"bal": APP}, follow_redirects=True)
    uid = re.search(rf"/mail/{re.escape(APP)}/INBOX/(\d+)", listing.text)
    assert uid
    page = (await api.get(f"/mail/{APP}/INBOX/{uid.group(1)}")).text
    assert "DOC0001.XML : l&#39;INS utilise l&#39;OID INS-NIR-TEST" in page or \
        "DOC0001.XML : l'INS utilise l'OID INS-NIR-TEST" in page
    assert "test data only" not in page
    english = (await api.get(f"/mail/{APP}/INBOX/{uid.group(1)}?lang=en")).text
    assert "DOC0001.XML: INS uses the INS-NIR-TEST OID" in english


async def test_the_switch_on_a_form_answer_leads_home(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    await api.post("/login/app", data={"bal": APP})
    refused = await api.post(f"/mail/{APP}/send", data={"csrf": "wrong", "to": APP})  # a form answer (POST)
    assert refused.status_code == 403 and "Accès refusé" in refused.text
    assert 'href="/?lang=en"' in refused.text  # not /mail/…/send?lang=en, which only takes POST
    folder = await api.get(f"/mail/{APP}/INBOX?x=1")
    assert f'href="/mail/{APP}/INBOX?x=1&amp;lang=en"' in folder.text


def test_the_live_conformance_words_in_both_languages() -> None:
    """The conformance page's script announces verdicts with the words the page gives it (``data-t``)."""
    from mssante._i18n import use
    from mssante.sandbox.web.conformance import page_words

    with use("fr"):
        words = page_words()
        assert words["over"] + words["NON CONFORME"] == "Campagne terminée : NON CONFORME"
        assert words["fail"] == "Non conforme" and words["colon"] == " : "
    with use("en"):
        words = page_words()
        assert words["over"] + words["NON CONFORME"] == "Run over: NOT CONFORMANT"
        assert words["pass"] == "Conformant" and words["colon"] == ": "
