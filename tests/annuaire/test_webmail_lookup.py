"""The webmail's compose page looks recipients up in the sandbox's Annuaire Santé (over HTTP, as an LPS would)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from mssante.sandbox.config import default_config
from mssante.sandbox.runner import Sandbox

LAB = "sil.labo@mss.sandbox.test"
PER = "marie.curie@mss.sandbox.test"


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, httpx2.AsyncClient]]:
    async with (
        Sandbox(default_config(), tmp_path / "state") as sb,
        httpx2.AsyncClient(base_url=sb.info["webmail_url"].rstrip("/"), timeout=15) as client,
    ):
        assert (await client.post("/login/app", data={"bal": LAB})).status_code in (200, 303)
        yield sb, client


def _text(page: httpx2.Response) -> str:
    assert page.status_code == 200, page.text[:500]
    return html.unescape(page.text)


async def test_lookup_lists_professionals_and_structures_with_their_bals(
    web: tuple[Sandbox, httpx2.AsyncClient],
) -> None:
    _, client = web
    page = _text(await client.get(f"/mail/{LAB}/compose", params={"annuaire": "curie"}))
    assert "CURIE Marie" in page and "Médecin — RPPS 99700000001 — Paris" in page
    assert PER in page and "BAL personnelle (PER)" in page
    links = re.findall(r'href="(/mail/[^"]+compose\?[^"]+)"[^>]*>Ajouter', page)
    assert len(links) == 1
    added = _text(await client.get(links[0]))
    assert re.search(r'<input id="to" name="to" type="text" required value="marie\.curie@mss\.sandbox\.test"', added)
    assert "(déjà destinataire)" in added and 'value="curie"' in added

    by_id = _text(await client.get(f"/mail/{LAB}/compose", params={"annuaire": "1750000001", "to": PER}))
    assert "CENTRE HOSPITALIER DE TEST" in by_id and "BAL organisationnelle (ORG)" in by_id
    second = re.findall(r'href="(/mail/[^"]+compose\?[^"]+)"[^>]*>Ajouter', by_id)
    assert len(second) == 2  # secretariat.cardio@ (ORG) and dpi.hopital@ (APP)
    both = _text(await client.get(html.unescape(second[0])))
    assert f'value="{PER}, secretariat.cardio@mss.sandbox.test"' in both

    none = _text(await client.get(f"/mail/{LAB}/compose", params={"annuaire": "zzz"}))
    assert "Aucun professionnel ni aucune structure ne correspond à « zzz »" in none


async def test_a_directory_failure_is_a_french_notice_not_an_error_page(
    web: tuple[Sandbox, httpx2.AsyncClient],
) -> None:
    sb, client = web
    entry = sb.info.pop("annuaire")
    try:
        page = _text(await client.get(f"/mail/{LAB}/compose", params={"annuaire": "curie"}))
        assert "L'Annuaire Santé n'a pas pu être interrogé" in page and 'name="to"' in page
        sb.info["annuaire"] = {**entry, "api_key": "faux"}
        page = _text(await client.get(f"/mail/{LAB}/compose", params={"annuaire": "curie"}))
        assert "n'a pas pu être interrogé" in page and "401" in page
    finally:
        sb.info["annuaire"] = entry


async def test_the_compose_page_without_a_search_is_unchanged(web: tuple[Sandbox, httpx2.AsyncClient]) -> None:
    _, client = web
    page = _text(await client.get(f"/mail/{LAB}/compose"))
    assert "Rechercher un destinataire dans l'Annuaire Santé" in page and "Aucun professionnel" not in page
    assert page.count("<form") >= 2  # the directory search, then the message itself
