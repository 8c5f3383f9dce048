"""The handoff from the command line: the LPS delegates (``mssante bridge delegate``), the fleet adds the BAL
by session with a check at the bridge (``mssante fleet add --session ... --check-bridge``), the LPS revokes.

Real bridge (mock PSC) and Redis on loopback; secrets only in environment variables and files.
French by default, English with ``--lang en``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mssante.bridge import BridgeClient, TokenCipher
from mssante.fleet import FleetStore
from tests.bridge._support import (
    MARIE,
    base_url,
    bind,
    running_bridge,
    sandbox_bridge,
    sandbox_config_for_bridge,
    world,
)
from tests.bridge.test_delegation import parties
from tests.cli._run import exit_code
from tests.client.test_mailbox_support import PER, running_sandbox
from tests.fleet._support import Events, fleet_config, raw, until_held
from tests.fleet.conftest import RedisServer

pytestmark = pytest.mark.slow


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(exit_code, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_delegate_add_by_session_and_revoke_from_the_command_line(
        tmp_path: Path, redis_server: RedisServer, store: FleetStore, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "psc-state"
    state.mkdir()
    async with world(tmp_path, state) as w, running_bridge(w, cipher=TokenCipher.generate()) as bridge, \
            parties(bridge) as (lps_secret, fleet_secret, session):
        url = bridge.config.base_url
        assert session._secret is not None
        sid = session.session_id
        fleet_file = tmp_path / "flotte.secret"
        fleet_file.write_text(fleet_secret + "\n")
        monkeypatch.setenv("MSSANTE_BRIDGE_SECRET", lps_secret)  # the LPS's environment
        monkeypatch.setenv("MSSANTE_BRIDGE_SESSION_SECRET", session._secret.reveal())
        owner = ("--bridge", url, "--installation-id", "cabinet", "--session", sid)
        add = ("fleet", "add", PER, "--kind", "PER", "--session", sid, "--check-bridge", url,
               "--installation-id", "flotte", "--bridge-secret-file", str(fleet_file), "--redis", redis_server.url)

        # before the delegation, the fleet's check refuses the session: nothing is added
        code, _, err = await run(capsys, *add)
        assert code == 2 and "n'est pas déléguée à l'installation flotte" in err
        assert await store.bals() == {}

        code, out, _ = await run(capsys, "bridge", "delegate", "flotte", *owner)
        assert code == 0 and out == f"Session {sid} déléguée à flotte ; ses délégataires : flotte\n"
        code, out, _ = await run(capsys, "--lang", "en", "bridge", "delegations", *owner)
        assert code == 0 and out == f"Session {sid} is delegated to: flotte\n"

        code, out, _ = await run(capsys, *add)
        assert code == 0 and out.startswith(f"BAL ajoutée : {PER} (personnelle, référence {sid}")
        assert (await store.bals())[PER].ref == sid

        code, out, _ = await run(capsys, "bridge", "revoke", "flotte", *owner, "--json")
        assert code == 0 and json.loads(out) == {"session_id": sid, "revoked": "flotte"}
        code, out, _ = await run(capsys, "bridge", "delegations", *owner)
        assert out == f"La session {sid} n'est déléguée à aucune installation\n"
        code, _, err = await run(capsys, "--lang", "en", *add)
        assert code == 2 and "is not delegated to the installation flotte" in err

        # the secrets never appear in what the commands print, and a missing one is a clear usage error
        monkeypatch.delenv("MSSANTE_BRIDGE_SESSION_SECRET")
        code, _, err = await run(capsys, "bridge", "delegations", *owner)
        assert code == 2 and "le secret de session : indiquez un fichier ou définissez MSSANTE_BRIDGE_SESSION_SECRET" \
            in err
        code, _, err = await run(capsys, "bridge", "delegate", "flotte", *owner, "--session-secret-file",
                                 str(tmp_path / "absent"))
        assert code == 2 and "absent" in err
        captured = out + err
        assert lps_secret not in captured and fleet_secret not in captured


async def test_a_worker_process_watches_a_delegated_session_with_the_fleet_credential_only(
        tmp_path: Path, redis_server: RedisServer, store: FleetStore, capsys: pytest.CaptureFixture[str]) -> None:
    sock = bind()
    url = base_url(sock)
    async with running_sandbox(tmp_path, fleet_config(sandbox_config_for_bridge(url))) as sb, \
            sandbox_bridge(sb.info, sock, tmp_path, cipher=TokenCipher.generate()) as bridge, asyncio.timeout(90):
        lps_secret = await bridge.core.add_installation("cabinet")
        fleet_file = tmp_path / "flotte.secret"
        fleet_file.write_text(await bridge.core.add_installation("flotte"))
        async with BridgeClient(url, "cabinet", lps_secret) as lps:
            session = await lps.login_with_ciba(MARIE, on_binding=lambda _: None, max_wait=10)
            await session.delegate("flotte")
            r = ("--redis", redis_server.url)
            added = await run(capsys, "fleet", "add", PER, "--kind", "PER", "--session", session.session_id, *r)
            assert added[0] == 0
            dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
            hosts = [sb.info[p][f]["host"] for p in ("imap", "smtp") for f in ("psc", "authcli")]
            worker = subprocess.Popen(  # noqa: ASYNC220 - a worker process, waited for below
                [sys.executable, "-m", "mssante", "fleet", "worker", "--capacity", "5", "--id", "w-deleg",
                 "--ca-bundle", sb.info["ca_bundle"], "--bridge", url, "--installation-id", "flotte",
                 "--bridge-secret-file", str(fleet_file), "--dns", dns, *(f"--resolve={h}=127.0.0.1" for h in hosts),
                 "--lease-ttl", "1", *r], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={k: v for k, v in os.environ.items() if k != "MSSANTE_BRIDGE_SECRET"})
            try:
                await until_held(store, (PER,), lambda h: h[PER] == "w-deleg")
                await sb.store.deliver(PER, raw(PER, "par le worker"))
                await Events(store).until(lambda seen: (PER, "par le worker") in
                                          [(e.bal, e.fields.get("subject")) for e in seen])
                await session.revoke("flotte")
                seen = await Events(store).until(lambda seen: any(e.kind == "psc-session-ended" for e in seen))
                ended = [e.fields["reason"] for e in seen if e.kind == "psc-session-ended"]
                assert len(ended) == 1 and "not (or no longer) delegated" in ended[0], ended
            finally:
                worker.send_signal(signal.SIGTERM)
                _, err = await asyncio.to_thread(worker.communicate, timeout=30)
            assert worker.returncode == 0, err
            assert "sessions déléguées à l'installation flotte" in err
