"""The sandbox API's bench faults: end a professional's PSC sessions, refuse the next token, CRL outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest

from mssante.conformance import HTTPControl
from mssante.sandbox.runner import Sandbox
from tests.conformance._harness import holder_of, sandbox_config

pytestmark = pytest.mark.slow
PER = "marie.curie@mss.sandbox.test"


async def test_end_psc_sessions_makes_the_refresh_token_fail(state_dir: Path) -> None:
    async with Sandbox(sandbox_config(), state_dir) as sb:
        psc = sb.info["psc"]
        holder = holder_of(sb.info, PER)
        tokens = sb.psc.issue_tokens_for_tests(holder, str(psc["client_id"]))
        sb.psc.validate_access_token(tokens["access_token"])
        token_url = psc["issuer"] + "/protocol/openid-connect/token"
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        auth = (str(psc["client_id"]), str(psc["client_secret"]))
        async with httpx2.AsyncClient() as http:
            unknown = await http.delete(sb.info["api_url"] + "/psc/sessions/000000000000")
            assert unknown.status_code == 404 and unknown.json()["error"]
            ended = await http.delete(sb.info["api_url"] + f"/psc/sessions/{holder}")
            assert ended.status_code == 200 and ended.json()["ended"] == 1
            refused = await http.post(token_url, data=form, auth=auth)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        with pytest.raises(Exception, match=r"(?i)session|revoked|ended"):
            sb.psc.validate_access_token(tokens["access_token"])


async def test_reject_next_token_refuses_it_for_good_and_counts_its_reuse(state_dir: Path) -> None:
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = HTTPControl(sb.info, sb.state_dir)
        holder, client_id = holder_of(sb.info, PER), str(sb.info["psc"]["client_id"])
        first = sb.psc.issue_tokens_for_tests(holder, client_id)["access_token"]
        fresh = sb.psc.issue_tokens_for_tests(holder, client_id)["access_token"]
        assert await control.reject_next_token(PER)
        for _ in range(2):
            with pytest.raises(Exception, match="refused"):
                sb.psc.validate_access_token(first)
        assert sb.psc.validate_access_token(fresh)["preferred_username"] == holder
        gate = (await control.fault_state())["token_gate"]
        assert gate == {"bal": PER, "armed": False, "refused": 1, "reused": 1}
        await control.clear_faults()
        assert sb.psc.validate_access_token(first)  # the mock PSC's own check is back
        assert (await control.fault_state())["token_gate"] is None


async def test_tls_handshakes_record_the_server_name(state_dir: Path) -> None:
    import socket
    import ssl
    import time

    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = HTTPControl(sb.info, sb.state_dir)
        since = time.time()
        front = sb.info["imap"]["psc"]
        ctx = ssl.create_default_context(cafile=sb.info["ca_bundle"])

        def starttls(name: str) -> None:
            with socket.create_connection(("127.0.0.1", front["port"]), timeout=10) as raw:
                raw.recv(1000)
                raw.sendall(b"a STARTTLS\r\n")
                raw.recv(1000)
                with ctx.wrap_socket(raw, server_hostname=name) as tls:
                    tls.sendall(b"b LOGOUT\r\n")
                    tls.recv(1000)

        await asyncio.to_thread(starttls, front["host"])
        await asyncio.to_thread(starttls, "127.0.0.1")  # an IP literal: no SNI (the IP SAN still verifies)
        assert await control.server_names(since) == [front["host"], None]


@pytest.mark.parametrize("mode", ["503", "timeout"])
async def test_crl_outage(state_dir: Path, mode: str) -> None:
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = HTTPControl(sb.info, sb.state_dir)
        url = sb.info["crl_urls"][0]
        async with httpx2.AsyncClient() as http:
            assert (await http.get(url)).status_code == 200
            await control.set_crl_outage(mode)  # type: ignore[arg-type]
            if mode == "503":
                assert (await http.get(url)).status_code == 503
                assert (await control.fault_state())["crl_outage"] == {"mode": "503", "requests": 1}
            else:
                with pytest.raises(httpx2.TimeoutException):
                    await http.get(url, timeout=0.5)
                held = asyncio.create_task(http.get(url, timeout=30))
                await asyncio.sleep(0)

                async def requested() -> None:
                    while (await control.fault_state())["crl_outage"]["requests"] < 2:  # noqa: ASYNC110 - HTTP state
                        await asyncio.sleep(0.05)
                await asyncio.wait_for(requested(), 10)
                await control.clear_faults()  # a held download is answered 503 when the outage ends
                assert (await held).status_code == 503
            await control.clear_faults()
            assert (await control.fault_state())["crl_outage"] is None
            assert (await http.get(url)).status_code == 200


async def test_evidence_routes_of_issue_16(state_dir: Path) -> None:
    """What the suite reads for the new cases: read acknowledgements with ``understood``, PSC logins, the
    Annuaire Santé access log (never the API key); a malformed ``understood`` is a 400, not stored."""
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = HTTPControl(sb.info, sb.state_dir)
        api, holder = sb.info["api_url"], holder_of(sb.info, PER)
        understood = [{"message_id": "<a@b>", "patient": {"ins": "279035121518989", "family_name": "PAT-TROIS",
                                                           "given_name": "DOMINIQUE"}, "documents": ["11502-2"],
                       "subject_shown": "CR de biologie"}]
        assert sb.psc.logins_since(holder, 0.0) == 0
        async with httpx2.AsyncClient() as http:
            done = await http.post(f"{api}/conformance/steps/r1.PERORG-01.1/done", json={"understood": understood})
            assert done.status_code == 200 and done.json()["understood"] == understood
            bad = await http.post(f"{api}/conformance/steps/r1.PERORG-01.2/done", json={"understood": "patient"})
            assert bad.status_code == 400
            assert (await http.get(f"{api}/conformance/steps/r1.PERORG-01.2")).json()["done"] is False
            key = {sb.info["annuaire"]["api_key_header"]: sb.info["annuaire"]["api_key"]}
            found = await http.get(sb.info["annuaire"]["base_url"] + "/Practitioner?name=CURIE", headers=key)
            assert found.status_code == 200
            refused = await http.get(sb.info["annuaire"]["base_url"] + "/Practitioner?name=CURIE")
            assert refused.status_code == 401
        assert (await control.step_ack("r1.PERORG-01.1") or {})["understood"] == understood
        log = await control.annuaire_log(0.0)
        assert log is not None and [(r["status"], r["matches"]) for r in log] == [(200, 1), (401, 0)]
        assert all(sb.info["annuaire"]["api_key"] not in str(r) for r in log)
        sb.psc.issue_tokens_for_tests(holder, str(sb.info["psc"]["client_id"]))
        assert await control.psc_logins(holder, 0.0) == 1
        assert await control.psc_logins(holder, 4_000_000_000.0) == 0
        assert control.access_token_lifetime() == sb.config.lifetimes.access_token
