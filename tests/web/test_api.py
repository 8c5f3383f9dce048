"""The sandbox JSON API against a running sandbox, over HTTP (httpx2)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import pytest

from mssante.message import parse_message
from mssante.sandbox.api import EventHub, Mailboxes, SandboxAPI
from mssante.sandbox.api.openapi import OPERATIONS
from mssante.sandbox.runner import Sandbox
from tests.web.conftest import APP, INS, LAB, ORG, PER, plain_message, xdm_message


async def test_bals_lists_every_test_bal_with_counts(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    await sandbox.store.deliver(PER, plain_message("un"))
    bals = (await api.get("/api/bals")).json()
    assert [b["address"] for b in bals] == [b.address for b in sandbox.config.bals]
    kinds = {b["address"]: b["kind"] for b in bals}
    assert [kinds[a] for a in (PER, ORG, APP, LAB)] == ["PER", "ORG", "APP", "APP"]
    assert bals[0]["counts"] == {"INBOX": 1, "Sent": 0, "Drafts": 0, "Trash": 0}
    one = (await api.get(f"/api/bals/{PER.upper()}")).json()
    assert one["address"] == PER and one["holders"] == ["899700000001"]


async def test_summary_shows_xmss_headers_and_xdm_findings(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    await sandbox.store.deliver(PER, xdm_message())
    listing = (await api.get(f"/api/bals/{PER}/messages", params={"folder": "INBOX"})).json()
    assert listing["count"] == 1
    item = listing["messages"][0]
    assert item["mss"] == {"nil": "LAB-TEST-1", "codecda": ["11502-2"], "ins": "O", "mes": None}
    assert item["from"]["address"] == LAB and item["from"]["kind"] == "professional"
    assert item["subject"].startswith("XDM/1.0/DDM+")
    assert item["xdm"]["documents"] == 1
    assert any("INS-NIR-TEST" in f["message"] for f in item["xdm"]["findings"])  # the validator's findings
    assert [a["kind"] for a in item["attachments"]] == ["xdm"]
    # No PDF/A companion: the message check says so (ECO.2.1.1).
    assert item["check"]["ok"] is False
    assert "ECO.2.1.1" in {f["rule"] for f in item["check"]["findings"] if f["severity"] == "error"}


async def test_full_message_raw_and_attachment(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    raw = xdm_message(request_mdn=True)
    await sandbox.store.deliver(PER, raw)
    uid = (await api.get(f"/api/bals/{PER}/messages")).json()["messages"][0]["uid"]
    full = (await api.get(f"/api/bals/{PER}/messages/{uid}")).json()
    assert full["xdm"]["patient"]["ins"] == INS and full["xdm"]["has_qualified_ins"] is True
    assert full["xdm"]["documents"][0]["cda_code"] == "11502-2"
    assert full["mdn_requested"] is True and full["mdn_to"] == [LAB]
    assert "Veuillez trouver" in full["text"]
    assert ["X-MSS-NIL", "LAB-TEST-1"] in full["headers"]
    stored = await api.get(f"/api/bals/{PER}/messages/{uid}/raw")
    assert stored.headers["content-type"] == "message/rfc822" and stored.content == raw
    attachment = await api.get(f"/api/bals/{PER}/messages/{uid}/attachments/0")
    assert attachment.content == parse_message(raw).attachments[0].content
    assert "IHE_XDM.ZIP" in attachment.headers["content-disposition"]


async def test_post_stores_a_raw_message_and_delete_resets_the_bal(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    created = await api.post(f"/api/bals/{ORG}/messages", params={"folder": "Drafts"},
                             content=plain_message("brouillon"))
    assert created.status_code == 201 and created.json()["folder"] == "Drafts"
    uid = created.json()["uid"]
    got = (await api.get(f"/api/bals/{ORG}/messages/{uid}", params={"folder": "Drafts"})).json()
    assert got["subject"] == "brouillon"
    reset = await api.delete(f"/api/bals/{ORG}")
    assert reset.json() == {"address": ORG, "reset": True}
    assert (await api.get(f"/api/bals/{ORG}/messages", params={"folder": "Drafts"})).json()["count"] == 0


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/api/bals/nobody@mss.sandbox.test/messages", 404, "not_found"),
    ("DELETE", "/api/bals/nobody@mss.sandbox.test", 404, "not_found"),
    ("GET", f"/api/bals/{PER}/messages?folder=Spam", 404, "not_found"),
    ("GET", f"/api/bals/{PER}/messages/999", 404, "not_found"),
    ("GET", f"/api/bals/{PER}/messages/abc", 404, "not_found"),
    ("GET", f"/api/bals/{PER}/messages/999/raw", 404, "not_found"),
    ("GET", "/api/nothing/here", 404, "not_found"),
    ("GET", "/api/journal?since=yesterday", 400, "usage"),
    ("GET", "/api/events?kinds=everything", 400, "usage"),
    ("GET", "/api/conformance", 404, "not_found"),
    ("POST", f"/api/bals/{PER}/messages", 400, "usage"),
    ("DELETE", "/api/sessions/*?mode=explode", 400, "usage"),
])
async def test_errors_are_json_never_tracebacks(api: httpx2.AsyncClient, method: str, path: str, status: int,
                                                 code: str) -> None:
    response = await api.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code
    assert "Traceback" not in body["message"]


async def test_faults_keep_working(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    bad = await api.post("/api/faults", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    unknown = await api.post("/api/faults", json={"explode": True})
    assert unknown.status_code == 400 and "explode" in unknown.json()["message"]
    set_ = (await api.post("/api/faults", json={"delay": 0.5, "fail_auth": {"count": 2}})).json()
    assert set_["delay"] == 0.5 and set_["pending_auth_failures"] == 2
    assert (await api.delete("/api/faults")).json()["pending_auth_failures"] == 0


async def test_journal_filters(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    old = sandbox.journal.open(front="smtp-psc", protocol="smtp", peer="127.0.0.1:1")
    old.bal = PER
    old.started_at = time.time() - 3600
    new = sandbox.journal.open(front="imap-authcli", protocol="imap", peer="127.0.0.1:2")
    new.bal = APP
    assert [r["id"] for r in (await api.get("/api/journal")).json()] == [old.id, new.id]
    assert [r["id"] for r in (await api.get("/api/journal", params={"bal": PER})).json()] == [old.id]
    assert [r["id"] for r in (await api.get("/api/journal", params={"front": "imap-authcli"})).json()] == [new.id]
    since = time.time() - 60
    assert [r["id"] for r in (await api.get("/api/journal", params={"since": str(since)})).json()] == [new.id]
    iso = "2000-01-01T00:00:00+00:00"
    assert len((await api.get("/api/journal", params={"since": iso})).json()) == 2
    lines = (await api.get("/api/journal", params={"format": "jsonl"})).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [old.id, new.id]


async def _next_event(lines: Any, kind: str) -> dict[str, Any]:
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == kind:
            return json.loads(line.removeprefix("data: "))  # type: ignore[no-any-return]
    raise AssertionError(f"the stream ended before a {kind} event")


async def test_events_stream_new_mail_and_journal_updates(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    await sandbox.store.deliver(PER, plain_message("déjà là"))  # not news: delivered before listening
    async with api.stream("GET", "/api/events", params={"bal": PER}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        await sandbox.store.deliver(PER, plain_message("nouveau"))
        await sandbox.store.deliver(APP, plain_message("pas pour cette BAL", to=APP))
        event = await asyncio.wait_for(_next_event(lines, "message"), 10)
        assert (event["bal"], event["folder"], event["subject"]) == (PER, "INBOX", "nouveau")
        record = sandbox.journal.open(front="smtp-psc", protocol="smtp", peer="127.0.0.1:9")
        journal = await asyncio.wait_for(_next_event(lines, "journal"), 10)
        assert journal["id"] == record.id and journal["front"] == "smtp-psc"
        await api.delete(f"/api/bals/{PER}")
        gone = await asyncio.wait_for(_next_event(lines, "expunge"), 10)
        assert gone["bal"] == PER and len(gone["uids"]) == 2


async def test_conformance_results_are_served_when_present(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    from mssante.conformance import CaseResult, Profile, RunReport, Status, write_latest

    result = CaseResult(case_id="APP-03", code="tls-version", title_fr="TLS 1.2 minimum sur IMAP et SMTP",
                        requirements=("ECO.1.1.1",), profile=Profile.APP, status=Status.FAIL,
                        explanation="1 session(s) sans TLS 1.2 ou plus.")
    report = RunReport(profile=Profile.APP, bal=APP, client="LPS externe", sandbox_domain="mss.sandbox.test",
                       started_at=1_767_000_000.0, ended_at=1_767_000_060.0, results=(result,))
    folder = sandbox.state_dir / "conformance"
    write_latest(report, sandbox.state_dir)
    try:
        assert (await api.get("/api/conformance")).json()["results"][0]["case_id"] == "APP-03"
        assert (await api.get("/api/conformance?profile=app")).json()["profile"] == "app"
        assert (await api.get("/api/conformance?profile=per-org")).status_code == 404
        assert (await api.get("/api/conformance?profile=x")).status_code == 400
        page = (await api.get("/conformance")).text
        for shown in ("APP-03", "TLS 1.2 minimum sur IMAP et SMTP", "Non conforme", "1 session(s) sans TLS 1.2",
                      "NON CONFORME", APP, "LPS externe", "BAL PER/ORG", "Aucune campagne pour ce profil"):
            assert shown in page, shown
        assert ">fail<" not in page
    finally:
        for path in folder.glob("latest*.json"):
            path.unlink()


async def test_openapi_documents_every_route(sandbox: Sandbox, api: httpx2.AsyncClient) -> None:
    doc = (await api.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1") and doc["servers"][0]["url"].startswith("http://127.0.0.1:")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    api_routes = SandboxAPI(sandbox, Mailboxes(sandbox), EventHub(sandbox, Mailboxes(sandbox))).routes()
    served = {(route.path.replace(":int", ""), method) for route in api_routes if route.path != "/api/{rest:path}"
              for method in (route.methods or set()) - {"HEAD"}}
    assert served == documented
    assert len(OPERATIONS) == len(documented)
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["responses"]["500"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
