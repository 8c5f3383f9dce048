"""The mock inside a running sandbox: mounted on its HTTP server and announced in sandbox.json."""

from __future__ import annotations

from pathlib import Path

import httpx2

from mssante.annuaire import AnnuaireClient
from mssante.sandbox.config import default_config
from mssante.sandbox.runner import Sandbox


async def test_sandbox_json_announces_the_annuaire_and_it_answers(tmp_path: Path) -> None:
    async with Sandbox(default_config(), tmp_path / "state") as sb:
        entry = sb.info["annuaire"]
        base = sb.info["webmail_url"].rstrip("/")
        assert entry == {"base_url": base + "/annuaire/fhir", "api_key": entry["api_key"],
                         "api_key_header": "ESANTE-API-KEY"}
        async with AnnuaireClient.from_sandbox(sb.info) as client:
            (org,) = (await client.search_organizations(name="Centre hospitalier")).entries
            assert "secretariat.cardio@mss.sandbox.test" in {m.address for m in org.mailboxes}
        async with httpx2.AsyncClient() as http:  # the PSC mount behind it still answers its own paths
            assert (await http.get(entry["base_url"] + "/metadata")).status_code == 401
            assert (await http.get(sb.info["psc"]["discovery_url"])).status_code == 200
