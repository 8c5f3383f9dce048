"""The suite's own guard (tests/conftest.py): a socket leaked in a reference cycle fails the module that leaked it.

Before the guard, such a socket was finalized whenever the garbage collector next ran, and its
ResourceWarning failed an unrelated later test of the same xdist worker (one ``.ci/run`` in four).
"""

from __future__ import annotations

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
