"""The webmail over plain HTTP: PSC and APP logins, access rules, reading, CDA escaping, sending."""

from __future__ import annotations

import re

import httpx2

from mssante.sandbox.runner import Sandbox
from tests.web.conftest import APP, CLAUDE, INS, LAB, LOUIS, ORG, PER, csrf_of, plain_message, psc_login, xdm_message


async def test_psc_login_opens_the_professionals_bals(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    home = await api.get("/")
    assert "Se connecter avec Pro Santé Connect" in home.text and "qui se fait confiance" in home.text
    page = await psc_login(api)
    assert page.status_code == 200 and str(page.url).endswith(f"/mail/{PER}/INBOX")
    assert "Marie CURIE" in page.text and ORG in page.text  # Marie holds the cardiology ORG BAL too
    cookie = api.cookies.get("MSS_WEBMAIL")
    assert cookie and len(cookie) >= 40 and "899700000001" not in cookie  # a random id, nothing else
    assert (await api.get(f"/mail/{ORG}/INBOX")).status_code == 200
    assert (await api.get(f"/mail/{APP}/INBOX")).status_code == 403
    assert (await api.get(f"/api/bals/{PER}")).status_code == 200  # the API is not behind the login


async def test_org_holder_and_professional_without_bal(sandbox: Sandbox, state_dir: object) -> None:
    base = sandbox.info["webmail_url"].rstrip("/")
    async with httpx2.AsyncClient(base_url=base, timeout=15) as louis:
        page = await psc_login(louis, LOUIS)
        assert str(page.url).endswith(f"/mail/{ORG}/INBOX")
        assert (await louis.get(f"/mail/{PER}/INBOX")).status_code == 403
    async with httpx2.AsyncClient(base_url=base, timeout=15) as claude:
        page = await psc_login(claude, CLAUDE)
        assert page.status_code == 403 and "Aucune BAL" in page.text


async def test_callback_without_a_login_started_here_is_refused(api: httpx2.AsyncClient) -> None:
    page = await api.get("/callback", params={"code": "x", "state": "y"})
    assert page.status_code == 400 and "Connexion expirée" in page.text


async def test_pages_need_a_session(api: httpx2.AsyncClient) -> None:
    for path in (f"/mail/{PER}/INBOX", f"/mail/{PER}/compose", f"/mail/{PER}/INBOX/1", f"/mail/{PER}/events"):
        response = await api.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/", path


async def test_app_login_reads_a_message_with_xdm_and_cda(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    hostile = (("1-1", "<script>alert('cda')</script>", "5.2", "mmol/L", "1 - 2"),)
    await sandbox.store.deliver(APP, xdm_message(to=APP, results=hostile, request_mdn=True))
    login = await api.post("/login/app", data={"bal": APP}, follow_redirects=True)
    assert str(login.url).endswith(f"/mail/{APP}/INBOX")
    assert "XDM" in login.text and "accusé demandé" in login.text
    assert login.headers["content-security-policy"].startswith("default-src 'self'")
    uid = re.search(rf"/mail/{re.escape(APP)}/INBOX/(\d+)", login.text)
    assert uid
    page = await api.get(f"/mail/{APP}/INBOX/{uid.group(1)}")
    text = page.text
    assert "X-MSS-CODECDA" in text and "11502-2" in text and "LAB-TEST-1" in text
    assert INS in text and "INS-NIR-TEST" in text and "PAT-TROIS" in text  # patient block with INS
    assert "Compte rendu d&#39;examens biologiques" in text  # title
    assert "Examens de biologie" in text and "mmol/L" in text  # narrative section, table cells
    assert "<script>alert" not in text and "&lt;script&gt;alert(&#39;cda&#39;)&lt;/script&gt;" in text
    assert "Métadonnées XDS" in text and "Contrôles de l'archive" in text
    doc = await api.get(f"/mail/{APP}/INBOX/{uid.group(1)}/xdm/0/0")
    assert doc.status_code == 200 and doc.content.startswith(b"<?xml")
    pj = await api.get(f"/mail/{APP}/INBOX/{uid.group(1)}/attachments/0")
    assert pj.content[:2] == b"PK"


async def test_send_goes_through_the_operator_and_files_a_copy(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    await api.post("/login/app", data={"bal": APP})
    form = await api.get(f"/mail/{APP}/compose")
    csrf = csrf_of(form.text)
    refused = await api.post(f"/mail/{APP}/send", data={"to": PER, "text": "x", "csrf": "wrong"})
    assert refused.status_code == 403
    files = [("attachments", ("résultats.txt", "glycémie 5,2".encode(), "text/plain"))]
    sent = await api.post(f"/mail/{APP}/send", files=files, data={
        "csrf": csrf, "to": f"{PER}, inconnu@mss.sandbox.test", "subject": "Résultats", "text": "Bonjour", "mdn": "on"})
    assert sent.status_code == 200 and "Message envoyé" in sent.text and "inconnu@mss.sandbox.test" in sent.text
    inbox = (await api.get(f"/api/bals/{PER}/messages")).json()["messages"]
    assert len(inbox) == 1 and inbox[0]["subject"] == "Résultats" and inbox[0]["mdn_requested"] is True
    assert inbox[0]["mss"]["nil"] == "MSSANTE-SANDBOX-WEBMAIL"
    assert [a["filename"] for a in inbox[0]["attachments"]] == ["résultats.txt"]
    raw = (await api.get(f"/api/bals/{PER}/messages/{inbox[0]['uid']}/raw")).content
    assert raw.startswith(b"Received: from webmail by smtp.psc.mss.sandbox.test")
    sent_copy = (await api.get(f"/api/bals/{APP}/messages", params={"folder": "Sent"})).json()
    assert sent_copy["count"] == 1
    bounce = (await api.get(f"/api/bals/{APP}/messages")).json()["messages"]
    assert [m["report"] for m in bounce] == ["dsn"]  # unknown recipient: failure DSN (RFC 3464)
    page = await api.get(f"/mail/{APP}/INBOX/{bounce[0]['uid']}")
    assert "Rapport de remise (DSN" in page.text and "5.1.1" in page.text and "échec" in page.text


async def test_compose_errors_are_shown_in_french(api: httpx2.AsyncClient) -> None:
    await api.post("/login/app", data={"bal": LAB})
    csrf = csrf_of((await api.get(f"/mail/{LAB}/compose")).text)
    page = await api.post(f"/mail/{LAB}/send", data={"csrf": csrf, "to": "pas une adresse", "text": "x"})
    assert page.status_code == 400 and "n&#39;a pas pu être composé" in page.text
    assert 'value="pas une adresse"' in page.text  # what was typed is kept


async def test_logout_ends_the_session(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    await sandbox.store.deliver(PER, plain_message("bonjour"))
    page = await psc_login(api)
    await api.post("/logout", data={"csrf": csrf_of(page.text)})
    assert (await api.get(f"/mail/{PER}/INBOX")).status_code == 303


async def test_journal_page_lists_sessions(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    record = sandbox.journal.open(front="smtp-psc", protocol="smtp", peer="127.0.0.1:5")
    record.bal = PER
    sandbox.journal.command(record, "AUTH XOAUTH2 dXNlcj1zZWNyZXQ=", "235 2.7.0 ok")
    page = await api.get("/journal", params={"bal": PER})
    assert page.status_code == 200 and "smtp-psc" in page.text and "AUTH XOAUTH2 &lt;initial-response&gt;" in page.text
    assert "dXNlcj1zZWNyZXQ" not in page.text
    assert LAB in page.text  # the BAL filter offers every BAL
