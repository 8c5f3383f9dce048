"""The guide's examples (docs/examples/*.py) run, as a reader would run them, against a real sandbox.

One sandbox operator for the module, in a background thread with its own event loop (the
examples are separate processes, like a reader's LPS). Its description is written to a temporary
``sandbox.json`` that each example receives as its argument. The thick-client example also gets
a PSC bridge (``mssante bridge serve``) and an installation registered with
``mssante bridge add-installation``, started the way part 3 of the guide tells.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mssante.sandbox.config import default_config
from mssante.sandbox.runner import Sandbox

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
TIMEOUT = 120


class _SandboxThread(threading.Thread):
    """Runs ``async with Sandbox(...)`` in its own event loop until :meth:`stop`."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(name="docs-sandbox", daemon=True)
        self.state_dir = state_dir
        self.info: dict[str, Any] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._quit: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by the fixture, not as a thread warning
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._quit = asyncio.Event()
        async with Sandbox(default_config(), self.state_dir) as sandbox:
            self.info = sandbox.info
            self.ready.set()
            await self._quit.wait()

    def stop(self) -> None:
        if self._loop is not None and self._quit is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._quit.set)
        self.join(30)


@pytest.fixture(scope="module")
def sandbox_json(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running sandbox; yields the path of a ``sandbox.json`` describing it."""
    root = tmp_path_factory.mktemp("docs-examples")
    thread = _SandboxThread(root / "state")
    thread.start()
    if not thread.ready.wait(60) or thread.error is not None:
        thread.stop()
        raise RuntimeError(f"the sandbox did not start: {thread.error!r}")
    path = root / "sandbox.json"
    path.write_text(json.dumps(thread.info, indent=2), encoding="utf-8")
    try:
        yield path
    finally:
        thread.stop()


def _run(example: str, sandbox: Path, env: dict[str, str] | None = None) -> str:
    """Run one example as a reader would; fail with its output when it does not exit with 0."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example), str(sandbox)],
        capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, **(env or {})}, check=False,
    )
    assert done.returncode == 0, f"{example} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def bridge(sandbox_json: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``mssante bridge serve`` for the sandbox, and one registered installation (as in part 3)."""
    root = tmp_path_factory.mktemp("bridge")
    store = f"sqlite:{root / 'bridge.sqlite3'}"
    key_file = root / "bridge.key"
    key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n", encoding="utf-8")
    cli = [sys.executable, "-m", "mssante", "bridge"]
    added = subprocess.run([*cli, "add-installation", "poste-cabinet-01", "--store", store],
                           capture_output=True, text=True, timeout=60, check=True)
    credentials = json.loads(added.stdout)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with (root / "bridge.log").open("w") as log:
        server = subprocess.Popen(
            [*cli, "serve", "--psc-settings", str(sandbox_json), "--store", store, "--key-file", str(key_file),
             "--port", str(port), "--audit-file", str(root / "audit.jsonl")],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bridge did not start:\n" + (root / "bridge.log").read_text())
            time.sleep(0.2)
        yield {"BRIDGE_URL": url, "BRIDGE_INSTALLATION_ID": credentials["installation_id"],
               "BRIDGE_INSTALLATION_SECRET": credentials["installation_secret"]}
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def test_per_send_receive(sandbox_json: Path) -> None:
    out = _run("per_send_receive.py", sandbox_json)
    assert "Reçu DSN" in out and "Reçu MDN" in out
    assert "X-MSS-CODECDA=('60591-5',)" in out and "contrôle Réf. #2 : OK" in out
    assert '"action": "send"' in out  # the trace file was written (ECO.4.1.x)


def test_per_sync(sandbox_json: Path) -> None:
    out = _run("per_sync.py", sandbox_json)
    assert "Note à moi-même" in out and "Dossiers : ['INBOX'" in out


def test_trust_and_discovery(sandbox_json: Path) -> None:
    out = _run("trust_and_discovery.py", sandbox_json)
    assert "priorité 10" in out and "priorité 20" in out
    assert "Hors ligne, CRL gardées : 4 dossiers" in out and "RevocationError (trust)" in out


def test_per_error_handling(sandbox_json: Path) -> None:
    out = _run("per_error_handling.py", sandbox_json)
    assert "AUTHENTICATIONFAILED x1 -> refusé ok" in out
    assert "TokenRejected AUTHENTICATIONFAILED" in out
    assert "Louis -> BAL PER      -> NotAuthorized AUTHORIZATIONFAILED" in out
    assert "AuthUnavailable" in out


def test_app_lab_sender(sandbox_json: Path) -> None:
    out = _run("app_lab_sender.py", sandbox_json)
    assert "OU=318751275100020" in out  # the ORG AUTH_CLI certificate of the laboratory
    assert "crbio-xdm@" in out and "MDN-sent-automatically; processed" in out


def test_thick_client_bridge(sandbox_json: Path, bridge: dict[str, str]) -> None:
    out = _run("thick_client_bridge.py", sandbox_json, env=bridge)
    assert "Statut de la BAL : ended" in out
    assert "PSCError invalid_grant" in out


def test_sandbox_cli(sandbox_json: Path) -> None:
    """The command-line tour of the sandbox page (after per_send_receive.py sent an XDM message)."""
    state_dir = sandbox_json.parent / "state"  # the --state-dir: holds the sandbox's own sandbox.json
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(
        ["bash", str(EXAMPLES / "sandbox_cli.sh"), str(state_dir)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False, env={**os.environ, "PATH": path},
    )
    assert done.returncode == 0, f"sandbox_cli.sh failed:\n{done.stdout}\n{done.stderr}"
    assert "XOAUTH2" in done.stdout and "X-MSS-CODECDA: 11502-2" in done.stdout
    assert "OU=318751275100020" in done.stdout


def test_sandbox_api_curl(sandbox_json: Path) -> None:
    """The curl example of the sandbox page, through the shell, as written there."""
    done = subprocess.run(
        ["bash", str(EXAMPLES / "sandbox_api.sh"), str(sandbox_json)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert done.returncode == 0, f"sandbox_api.sh failed:\n{done.stdout}\n{done.stderr}"
    assert '"pending_auth_failures":1' in done.stdout and "ECO.2.4.3" in done.stdout
