"""The suite's own guard (tests/conftest.py): a socket leaked in a reference cycle fails the module that leaked it.

Before the guard, such a socket was finalized whenever the garbage collector next ran, and its
ResourceWarning failed an unrelated later test of the same xdist worker (one ``.ci/run`` in four).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_LEAKING = '''
import socket


class Holder:
    pass


def test_leaks_a_socket_in_a_cycle():
    holder = Holder()
    holder.self = holder
    holder.sock = socket.socket()


def test_last_of_the_leaking_module():
    pass
'''


def test_a_socket_leaked_in_a_cycle_fails_its_own_module_not_a_later_one(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import _collect_garbage_after_each_module, pytest_collection_finish  # noqa: F401\n",
        encoding="utf-8")
    (tmp_path / "test_a_leaking.py").write_text(_LEAKING, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n", encoding="utf-8")
    (tmp_path / "test_b_later.py").write_text("def test_later():\n    pass\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:cov",
         "-p", "no:asyncio", str(tmp_path)],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=120, check=False)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "3 passed, 1 error" in out, out
    assert "ERROR at teardown of test_last_of_the_leaking_module" in out, out
    assert "unclosed <socket.socket" in out, out


def test_a_state_directory_of_the_suite_keeps_its_http_port_below_the_ephemeral_range(tmp_path: Path) -> None:
    """The port the test PKI publishes its CRLs on cannot be taken by an outgoing connection (tests/_ports.py)."""
    from mssante.sandbox.config import default_config
    from mssante.sandbox.runner import Sandbox
    from tests._ports import below_ephemeral, sandbox_state_dir

    state = sandbox_state_dir(tmp_path / "state")
    chosen = json.loads((state / "ports.json").read_text(encoding="utf-8"))["http"]
    assert chosen in below_ephemeral()

    async def api_port() -> int:
        async with Sandbox(default_config(), state) as sb:
            return int(sb.info["api_url"].split(":")[2].split("/")[0])

    # the first run makes the PKI on that port, the second finds it there again
    assert [asyncio.run(api_port()) for _ in range(2)] == [chosen, chosen]
