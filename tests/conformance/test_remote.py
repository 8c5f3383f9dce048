"""The suite drives a sandbox of another process through its HTTP API (``HTTPControl``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mssante.conformance import HTTPControl, Profile, Status, run_job
from mssante.message import ComposeSettings, Draft, Sender, compose_message
from mssante.sandbox.runner import Sandbox
from tests.conformance._harness import GREEN, holder_of, sandbox_config
from tests.conformance._lps import LPSConfig, StdlibDriver, StdlibLPS

pytestmark = pytest.mark.slow
PER = "marie.curie@mss.sandbox.test"


async def test_http_control_reads_journal_mail_and_faults(state_dir: Path) -> None:
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = HTTPControl(sb.info, sb.state_dir)
        assert control.responders[0].startswith("crbio-xdm@")
        raw = compose_message(Draft(sender=Sender(address="secretariat.cardio@mss.sandbox.test"), to=(PER,),
                                    subject="Bonjour", text="Test"),
                              settings=ComposeSettings(product_reference="SANDBOX0001"))
        await control.deliver(PER, raw.to_bytes())
        listed = await control.list_messages(PER)
        assert [m.message_id for m in listed] == [raw.message_id]
        assert b"Subject: Bonjour" in await control.get_message(PER, "INBOX", listed[0].uid)
        await control.fail_next_auth(2, "UNAVAILABLE", PER)
        assert sb.faults.pending_auth_failures == 2
        await control.set_psc_unavailable(True)
        assert sb.faults.psc_unavailable
        await control.set_bad_server_certificate("revoked")
        assert sb.faults.bad_server_certificate == "revoked"
        await control.clear_faults()
        assert sb.faults.pending_auth_failures == 0 and not sb.faults.psc_unavailable
        assert sb.faults.bad_server_certificate is None
        assert await control.end_sessions(PER, "bye") == 0
        assert await control.records() == []
        assert await control.reject_next_token(PER) is True
        assert (await control.fault_state())["token_gate"] == {"bal": PER, "armed": True, "refused": 0, "reused": 0}
        assert await control.end_psc_sessions("899700000001") == 0


async def test_cases_run_through_the_http_api(state_dir: Path, tmp_path: Path) -> None:
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = HTTPControl(sb.info, sb.state_dir)
        loop = asyncio.get_running_loop()

        async def mint() -> Mapping[str, Any]:
            return sb.psc.issue_tokens_for_tests(holder_of(sb.info, PER), str(sb.info["psc"]["client_id"]))

        cfg = LPSConfig(info=sb.info, bal=PER, profile=Profile.PER_ORG,
                        login=lambda: asyncio.run_coroutine_threadsafe(mint(), loop).result(10))
        driver = StdlibDriver(StdlibLPS(cfg))
        try:
            report = await run_job(control, driver, profile=Profile.PER_ORG, settings=GREEN,
                                   case_ids=("imap-starttls", "tls-ciphers", "authenticationfailed", "reopen-drop",
                                             "x-mss-codecda", "mdn-return", "sent-copy"))
        finally:
            await driver.close()
    assert [(r.code, r.status) for r in report.results if r.status is not Status.PASS] == []
    failed_auth = next(r for r in report.results if r.code == "authenticationfailed")
    assert "avec un nouveau jeton" in failed_auth.explanation
