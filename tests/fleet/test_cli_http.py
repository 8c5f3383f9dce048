"""``mssante fleet worker --http HOST:PORT`` on an address it cannot listen on fails at start with one clear line in
the user's language and a configuration exit code (a review found an ``OSError`` traceback for a port in use)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def start_worker(tmp_path: Path, lang: str | None, http: str) -> subprocess.CompletedProcess[str]:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")}
    argv = [sys.executable, "-m", "mssante", *(("--lang", lang) if lang else ()), "fleet", "worker",
            "--capacity", "1", "--ca-bundle", str(bundle), "--http", http,
            "--redis", "redis://127.0.0.1:1/0"]  # never reached: the listener comes first
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("lang", "in_use", "elsewhere"), [
    (None, "mssante : erreur : --http 127.0.0.1:{port} : ce port est déjà utilisé (un autre worker ou programme y "
           "écoute) ; choisissez-en un autre\n",
     "mssante : erreur : --http 192.0.2.1:9100 : impossible d'y écouter ("),
    ("en", "mssante: error: --http 127.0.0.1:{port}: this port is already in use (another worker or program listens "
           "there); choose another one\n",
     "mssante: error: --http 192.0.2.1:9100: cannot listen there ("),
])
def test_an_http_address_that_cannot_be_listened_on_is_a_clear_error_at_start(
        tmp_path: Path, lang: str | None, in_use: str, elsewhere: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = start_worker(tmp_path, lang, f"127.0.0.1:{port}")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", in_use.format(port=port))
    done = start_worker(tmp_path, lang, "192.0.2.1:9100")  # TEST-NET-1: an address of no interface here
    assert done.returncode == 2 and done.stderr.startswith(elsewhere) and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
