"""``mssante discover | send | fetch | watch`` against the sandbox, through the main CLI's error mapping."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import mssante.cli
from mssante.sandbox.runner import Sandbox
from tests.cli._run import exit_code
from tests.client.test_mailbox_support import APP, CLIENT_ID, MARIE, PER, running_sandbox

pytestmark = pytest.mark.slow

_COMMANDS = {
    name: (f"mssante.cli._client:{attr}", name)
    for name, attr in (("discover", "discover_command"), ("send", "send"), ("fetch", "fetch"), ("watch", "watch"))
}


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, entry in _COMMANDS.items():
        monkeypatch.setitem(mssante.cli._COMMANDS, name, entry)


_cli = exit_code


def _common(sb: Sandbox, address: str, kind: str) -> list[str]:
    dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
    return [address, "--kind", kind, "--dns", dns, "--ca-bundle", sb.info["ca_bundle"], "--timeout", "10"]


async def test_discover_prints_both_fronts(sandbox_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with running_sandbox(sandbox_state) as sb:
        dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
        assert await asyncio.to_thread(_cli, ["discover", PER, "--dns", dns]) == 0
        out = capsys.readouterr().out
        assert f"imap.psc.mss.sandbox.test:{sb.info['imap']['psc']['port']}" in out
        assert f"smtp.authcli.mss.sandbox.test:{sb.info['smtp']['authcli']['port']}" in out
        assert "PSC" in out and "AUTH_CLI" in out
        assert await asyncio.to_thread(_cli, ["discover", APP, "--kind", "APP", "--dns", dns, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert list(data["fronts"]) == ["AUTH_CLI"]
        assert data["fronts"]["AUTH_CLI"]["imap"][0]["host"] == "imap.authcli.mss.sandbox.test"


async def test_send_then_fetch_round_trip(sandbox_state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(60):
        token = sb.psc.issue_tokens_for_tests(MARIE, CLIENT_ID)["access_token"]
        monkeypatch.setenv("MSS_TEST_TOKEN", token)
        send = ["send", *_common(sb, PER, "PER"), "--token-env", "MSS_TEST_TOKEN", "--to", APP,
                "--subject", "Depuis la ligne de commande", "--text", "Bonjour.", "--product-reference", "DEV000001",
                "--dsn", "--json"]
        assert await asyncio.to_thread(_cli, send) == 0
        sent = json.loads(capsys.readouterr().out)
        assert sent["accepted"] == [APP] and sent["sent_folder"] == "Sent"

        bal = next(b for b in sb.info["bals"] if b["address"] == APP)
        app = [*_common(sb, APP, "APP"), "--cert", bal["cert"], "--key", bal["key"]]
        assert await asyncio.to_thread(_cli, ["fetch", *app, "--json"]) == 0
        (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert listed["subject"] == "Depuis la ligne de commande" and listed["from"] == PER
        raw = tmp_path / "message.eml"
        code = await asyncio.to_thread(_cli, ["fetch", *app, "--uid", str(listed["uid"]), "--output", str(raw)])
        assert code == 0
        out = capsys.readouterr().out
        assert "Subject: Depuis la ligne de commande" in out and "Bonjour." in out
        assert b"X-MSS-NIL: DEV000001" in raw.read_bytes()

        # manual servers by IP, the certificate checked against --tls-name
        port = sb.info["imap"]["authcli"]["port"]
        by_ip = ["fetch", APP, "--kind", "APP", "--imap", f"127.0.0.1:{port}", "--tls-name",
                 "imap.authcli.mss.sandbox.test", "--ca-bundle", sb.info["ca_bundle"], "--cert", bal["cert"],
                 "--key", bal["key"]]
        assert await asyncio.to_thread(_cli, by_ip) == 0
        assert "Depuis la ligne de commande" in capsys.readouterr().out

        # watch: one new message, then stop. Delivered once the watcher's session has selected INBOX
        # (from then on the message is above the UID the watch starts from, whether IDLE is entered yet or not).
        since = time.time()

        def watching() -> bool:
            return any(r.ended_at is None and any(" SELECT " in f" {c.command.upper()} " for c in r.commands)
                       for r in sb.journal.records(bal=APP, since=since))

        async def deliver_soon() -> None:
            deadline = time.monotonic() + 20
            while not watching():  # the journal tells its subscribers no commands: look at it until then
                assert time.monotonic() < deadline, "the watcher never selected INBOX"
                await asyncio.sleep(0.01)
            await sb.store.deliver(APP, b"From: a@b.test\r\nSubject: surveille\r\n\r\nx\r\n")

        delivery = asyncio.create_task(deliver_soon())
        watch = ["watch", *app, "--count", "1", "--duration", "20"]
        assert await asyncio.to_thread(_cli, watch) == 0
        await delivery
        assert "surveille" in capsys.readouterr().out


async def test_errors_are_one_line_without_traceback(sandbox_state: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_sandbox(sandbox_state) as sb:
        monkeypatch.setenv("MSS_TEST_TOKEN", "eyJub3QiOiJ2YWxpZCJ9.eyJzdWIiOiJ4In0.c2ln")
        code = await asyncio.to_thread(_cli, ["fetch", *_common(sb, PER, "PER"), "--token-env", "MSS_TEST_TOKEN"])
        err = capsys.readouterr().err
        assert code == 5, err  # authentication family
        assert err.startswith("mssante : erreur : ") and "Traceback" not in err
        assert err.splitlines()[1:] == ["  [ref2 §2.4]"]  # the message on one line, the rule on the second
        assert "refusé" in err and "120 s" in err

        code = await asyncio.to_thread(_cli, ["fetch", *_common(sb, PER, "PER")])  # no credentials
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--token-env" in err

        wrong = ["fetch", APP, "--kind", "APP", "--imap", f"127.0.0.1:{sb.info['imap']['authcli']['port']}",
                 "--tls-name", "wrong.name.test", "--ca-bundle", sb.info["ca_bundle"], "--cert", "/nonexistent.pem",
                 "--key", "/nonexistent.key"]
        code = await asyncio.to_thread(_cli, wrong)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
