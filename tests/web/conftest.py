"""A real sandbox on 127.0.0.1 for the webmail and API tests, and messages to put in its BALs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import httpx2
import pytest

from mssante.cda import generate_cr_bio
from mssante.message import ComposeSettings, Draft, Sender, compose_message
from mssante.sandbox.config import default_config
from mssante.sandbox.runner import Sandbox
from mssante.xdm import build_archive

PER = "marie.curie@mss.sandbox.test"
ORG = "secretariat.cardio@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"
LAB = "sil.labo@mss.sandbox.test"
MARIE, LOUIS, CLAUDE = "899700000001", "899700000002", "899700000003"
INS = "279035121518989"  # SamplePatient's INS (INS-NIR test OID)
NOW = datetime(2025, 2, 5, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state directory for the whole run: the test PKI is made once and reused."""
    return tmp_path_factory.mktemp("web-sandbox") / "state"


@pytest.fixture
async def sandbox(state_dir: Path) -> AsyncIterator[Sandbox]:
    """A running sandbox (HTTP, PSC, fronts, in-memory store): empty BALs for each test."""
    async with Sandbox(default_config(), state_dir) as sb:
        yield sb


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client on the sandbox's HTTP port."""
    async with httpx2.AsyncClient(base_url=sandbox.info["webmail_url"].rstrip("/"), timeout=15) as client:
        yield client


def xdm_message(*, to: str = PER, sender: str = LAB, results: tuple[tuple[str, str, str, str, str], ...] | None = None,
                request_mdn: bool = False) -> bytes:
    """A CR-BIO in an IHE_XDM.ZIP, composed as a lab's LPS would send it."""
    cda = generate_cr_bio(effective_time=NOW, **({"results": results} if results else {}))
    archive = build_archive([cda], now=NOW)
    draft = Draft(sender=Sender(address=sender, label="Laboratoire de test"), to=(to,),
                  text="Bonjour,\nVeuillez trouver le compte rendu ci-joint.\n", xdm_archive=archive,
                  request_mdn=request_mdn)
    return compose_message(draft, settings=ComposeSettings(product_reference="LAB-TEST-1")).to_bytes()


def plain_message(subject: str, *, to: str = PER, sender: str = LAB) -> bytes:
    """A minimal RFC 5322 message."""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Wed, 05 Feb 2025 10:00:00 +0100\r\n"
            f"Message-ID: <{abs(hash(subject))}@test>\r\n\r\nCorps.\r\n").encode()


@dataclass
class Form:
    """The first form of an HTML page: its action and fields (hidden ones and checked radios)."""

    action: str
    fields: list[tuple[str, str]]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form is None:
            self.form = Form(action=a.get("action", ""), fields=[])
        elif tag == "input" and self.form is not None and a.get("type") == "hidden":
            self.form.fields.append((a["name"], a.get("value", "")))


def first_form(html: str) -> Form:
    parser = _FormParser()
    parser.feed(html)
    assert parser.form is not None, "no form on the page"
    return parser.form


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def psc_login(client: httpx2.AsyncClient, national_id: str = MARIE) -> httpx2.Response:
    """Log in to the webmail through the mock PSC login page, as a browser would; return the landing page."""
    start = await client.post("/login/psc")
    assert start.status_code == 303
    page = await client.get(start.headers["location"])
    assert page.status_code == 200 and "Pro Santé Connect" in page.text
    form = first_form(page.text)
    fields = [*form.fields, ("national_id", national_id), ("auth_mode", "CARD"), ("action", "login")]
    answer = await client.post(form.action, content=urlencode(fields),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 302, answer.text
    return await client.get(answer.headers["location"], follow_redirects=True)
