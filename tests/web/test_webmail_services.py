"""The webmail on its own: built from a hand-made SandboxServices, without fronts, DNS or mock PSC.

Only the store, the journal and the configuration exist; the pages are served by Starlette
through httpx's ASGI transport. What a browser sees is checked: French pages, a message put
in an APP BAL's store, a journal record, the conformance page with no run yet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from mssante.sandbox.api import EventHub, Mailboxes
from mssante.sandbox.config import SandboxConfig, default_config
from mssante.sandbox.fronts.delivery import Responder
from mssante.sandbox.fronts.faults import Faults
from mssante.sandbox.fronts.journal import Journal
from mssante.sandbox.fronts.store import MailStore
from mssante.sandbox.services import SandboxServices
from mssante.sandbox.web import Webmail

APP = "dpi.hopital@mss.sandbox.test"


@dataclass
class FakeServices:
    """A sandbox reduced to what its HTTP faces need: no listener, no certificate, no PSC."""

    config: SandboxConfig
    state_dir: Path
    store: MailStore
    journal: Journal = field(default_factory=Journal)
    faults: Faults = field(default_factory=Faults)
    responders: dict[str, Responder] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=lambda: {"webmail_url": "http://testserver/"})


@pytest.fixture
async def webmail(tmp_path: Path) -> AsyncIterator[tuple[FakeServices, httpx2.AsyncClient]]:
    config = default_config()
    store = MailStore(config)
    await store.start()
    services = FakeServices(config=config, state_dir=tmp_path, store=store)
    typed: SandboxServices = services  # the interface the webmail is typed against (the runner satisfies it too)
    mailboxes = Mailboxes(typed)
    app = Starlette(routes=Webmail(typed, mailboxes, EventHub(typed, mailboxes)).routes())
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield services, client


async def test_home_lists_the_bals_in_french(webmail: tuple[FakeServices, httpx2.AsyncClient]) -> None:
    _, client = webmail
    page = await client.get("/")
    assert page.status_code == 200 and 'lang="fr"' in page.text
    assert APP in page.text and "Pro Santé Connect" in page.text


async def test_an_app_bal_reads_what_the_store_holds(webmail: tuple[FakeServices, httpx2.AsyncClient]) -> None:
    services, client = webmail
    await services.store.deliver(APP, b"From: lab@mss.sandbox.test\r\nTo: " + APP.encode() +
                                 b"\r\nSubject: Compte rendu sans fronts\r\nDate: Wed, 05 Feb 2025 10:00:00 +0100\r\n"
                                 b"Message-ID: <services@test>\r\n\r\nCorps.\r\n")
    login = await client.post("/login/app", data={"bal": APP})
    assert login.status_code == 303
    inbox = await client.get(login.headers["location"])
    assert inbox.status_code == 200 and "Compte rendu sans fronts" in inbox.text


async def test_journal_and_conformance_pages(webmail: tuple[FakeServices, httpx2.AsyncClient]) -> None:
    services, client = webmail
    record = services.journal.open(front="imap-psc", protocol="imap", peer="127.0.0.1:5555")
    services.journal.close(record)
    journal = await client.get("/journal")
    assert journal.status_code == 200 and "imap-psc" in journal.text
    conformance = await client.get("/conformance")
    assert conformance.status_code == 200 and 'lang="fr"' in conformance.text
