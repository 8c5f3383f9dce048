"""AnnuaireClient against the running mock over loopback: typed results, paging, errors, transport rules."""

from __future__ import annotations

import pytest

from mssante.annuaire import AnnuaireClient, Mailbox, SearchPage
from mssante.errors import AuthError, ConfigError, RemoteProtocolError, UsageError
from tests.annuaire.conftest import Served


async def test_practitioners_by_name_identifier_profession_and_city(annuaire: Served) -> None:
    async with AnnuaireClient(annuaire.base_url, annuaire.api_key) as client:
        page = await client.search_practitioners(name="Curie")
        (curie,) = page.entries
        assert (curie.family_name, curie.given_name, curie.national_id, curie.rpps) == (
            "CURIE", "Marie", "899700000001", "99700000001")
        assert curie.professions == ("10",) and curie.specialties == ("SM54",) and curie.cities == ("Paris",)
        assert curie.mailboxes == (Mailbox("marie.curie@mss.sandbox.test", "PER", "BAL personnelle"),)
        assert page.total == 1 and page.next_url is None
        by_rpps = await client.search_practitioners(identifier="99700000002")
        by_idnps = await client.search_practitioners(identifier="899700000002")
        assert [p.family_name for p in by_rpps.entries] == [p.family_name for p in by_idnps.entries] == ["PASTEUR"]
        pharma = await client.search_practitioners(profession="21", city="paris")
        assert [p.family_name for p in pharma.entries] == ["PASTEUR"]
        generalists = await client.search_practitioners(specialty="SM54")
        assert [p.family_name for p in generalists.entries] == ["CURIE", "BERNARD"]
        assert (await client.search_practitioners(name="Curie", profession="21")).entries == ()


async def test_organizations_with_their_org_and_app_mailboxes(annuaire: Served) -> None:
    async with AnnuaireClient(annuaire.base_url, annuaire.api_key) as client:
        (labo,) = (await client.search_organizations(city="Côte")).entries
        assert labo.name == "LABORATOIRE DE BIOLOGIE TEST" and labo.national_id == "318751275100020"
        assert labo.city == "Côte-d'Or" and labo.postal_code == "21000"
        assert labo.mailboxes == (Mailbox("sil.labo@mss.sandbox.test", "APP", "BAL applicative"),)
        (ch,) = (await client.search_organizations(identifier="1750000001")).entries
        assert {(m.address, m.kind) for m in ch.mailboxes} == {
            ("secretariat.cardio@mss.sandbox.test", "ORG"), ("dpi.hopital@mss.sandbox.test", "APP")}


async def test_paging_with_next_page(annuaire: Served) -> None:
    async with AnnuaireClient(annuaire.base_url, annuaire.api_key) as client:
        page: SearchPage[object] | None = await client.search_organizations(city="Paris", count=1)  # type: ignore[assignment]
        names = []
        while page is not None:
            assert len(page.entries) == 1 and page.total == 2
            names.append(page.entries[0].name)  # type: ignore[attr-defined]
            page = await client.next_page(page)
        assert names == ["CENTRE HOSPITALIER DE TEST", "REPONDEUR AUTOMATIQUE SANDBOX"]


async def test_refusals_are_typed_errors(annuaire: Served) -> None:
    async with AnnuaireClient(annuaire.base_url, "wrong-key") as client:
        with pytest.raises(AuthError, match="401"):
            await client.search_practitioners(name="Curie")
    async with AnnuaireClient(annuaire.base_url, annuaire.api_key) as client:
        with pytest.raises(UsageError):
            await client.search_practitioners(name="Curie", count=101)  # refused before sending
        with pytest.raises(UsageError, match="at least one criterion"):
            await client.search_organizations()
        before = len(annuaire.mock.access_log)
        crafted = SearchPage((), None, annuaire.base_url + "/Practitioner?_count=500")
        with pytest.raises(UsageError, match="refused the search: _count=500 is more than 100"):
            await client.next_page(crafted)
        assert annuaire.mock.access_log[-1].status == 400 and len(annuaire.mock.access_log) == before + 1
        for elsewhere in ("http://127.0.0.2:9/annuaire/fhir/Practitioner", annuaire.base_url + "/../x/Practitioner",
                          annuaire.base_url.replace("/fhir", "/other") + "/Practitioner"):
            with pytest.raises(RemoteProtocolError, match="leaves its base URL"):
                await client.next_page(SearchPage((), None, elsewhere))
        assert len(annuaire.mock.access_log) == before + 1  # the API key went nowhere else


async def test_closed_client_and_transport_rules(annuaire: Served) -> None:
    client = AnnuaireClient(annuaire.base_url, annuaire.api_key)
    assert annuaire.api_key not in repr(client)
    await client.aclose()
    with pytest.raises(UsageError, match="closed"):
        await client.search_practitioners(name="x")
    for url in ("http://annuaire.example/fhir", "ftp://127.0.0.1/fhir", "/fhir", "https://x/fhir?a=b"):
        with pytest.raises(ConfigError):
            AnnuaireClient(url, "key")
    with pytest.raises(ConfigError):
        AnnuaireClient("https://gateway.example/fhir/v2", " ")
    AnnuaireClient("https://gateway.example/fhir/v2", "key")  # https anywhere is fine


def test_from_sandbox_needs_the_annuaire_entry() -> None:
    with pytest.raises(ConfigError, match="annuaire"):
        AnnuaireClient.from_sandbox({"domain": "x"})
    client = AnnuaireClient.from_sandbox({"annuaire": {"base_url": "http://127.0.0.1:1/annuaire/fhir",
                                                       "api_key": "k"}})
    assert client.base_url == "http://127.0.0.1:1/annuaire/fhir"


def test_a_loosened_tls_context_is_refused() -> None:
    import ssl

    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    with pytest.raises(UsageError):
        AnnuaireClient("https://gateway.example/fhir/v2", "key", ssl_context=loose)
    old = ssl.create_default_context()
    with pytest.warns(DeprecationWarning):
        old.minimum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(UsageError):
        AnnuaireClient("https://gateway.example/fhir/v2", "key", ssl_context=old)
