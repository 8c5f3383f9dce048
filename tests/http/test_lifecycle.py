"""``mssante sandbox up`` twice on one state directory, as two real processes.

The second must find the first (its lock), say where it is (webmail URL, PID) in French, touch
nothing in the directory and exit non-zero; the first keeps serving and every command still
finds it. A sandbox killed outright leaves no lock behind: the next one starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

UP = [sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir"]


def _start(state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*UP, str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _holder(state: Path) -> dict[str, object]:
    try:
        data = json.loads((state / "sandbox.lock").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _wait_ready(proc: subprocess.Popen[str], state: Path) -> dict[str, object]:
    """Wait until the lock names ``proc`` and its webmail (written after sandbox.json), or fail with its output."""
    deadline = time.monotonic() + 90
    while not (_holder(state).get("pid") == proc.pid and _holder(state).get("webmail_url")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the sandbox did not start:\n{out}\n{err}")
        time.sleep(0.05)
    data: dict[str, object] = json.loads((state / "sandbox.json").read_text(encoding="utf-8"))
    return data


def _snapshot(state: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``state``: (mtime ns, size, content of the small ones)."""
    found = {}
    for path in sorted(state.rglob("*")):
        if path.is_file():
            st = path.stat()
            found[str(path.relative_to(state))] = (st.st_mtime_ns, st.st_size,
                                                   path.read_bytes() if st.st_size < 65536 else b"")
    return found


@pytest.fixture
def first(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, dict[str, object]]]:
    state = tmp_path / "state"
    proc = _start(state)
    try:
        yield proc, state, _wait_ready(proc, state)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)


def test_a_second_sandbox_up_finds_the_first_and_touches_nothing(
        first: tuple[subprocess.Popen[str], Path, dict[str, object]]) -> None:
    proc, state, info = first
    before = _snapshot(state)
    second = subprocess.run([*UP, str(state)], capture_output=True, text=True, timeout=90,
                            env={**os.environ, "LANG": "fr_FR.UTF-8"})
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    assert "un bac à sable tourne déjà" in second.stderr
    assert str(info["webmail_url"]) in second.stderr and f"PID {proc.pid}" in second.stderr
    assert "Rien n'a été modifié" in second.stderr
    assert _snapshot(state) == before  # sandbox.json, the lock, the PKI: not a byte, not a timestamp
    # The first one still serves, and the commands still find it through sandbox.json.
    assert httpx2.get(f"{info['api_url']}/health", timeout=10).json()["status"] == "ok"
    journal = subprocess.run([sys.executable, "-m", "mssante", "sandbox", "journal", "--state-dir", str(state)],
                             capture_output=True, text=True, timeout=60)
    assert journal.returncode == 0, journal.stderr
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert not (state / "sandbox.json").exists()


def test_a_killed_sandbox_leaves_no_lock_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    victim = _start(state)
    _wait_ready(victim, state)
    victim.kill()  # no cleanup at all: sandbox.json and sandbox.lock stay, the flock dies with the process
    victim.communicate(timeout=30)
    assert (state / "sandbox.json").exists() and (state / "sandbox.lock").exists()
    (state / "sandbox.json").write_text('{"stale": true}', encoding="utf-8")
    successor = _start(state)
    try:
        info = _wait_ready(successor, state)
        assert "stale" not in info
        lock = json.loads((state / "sandbox.lock").read_text(encoding="utf-8"))
        assert lock == {"pid": successor.pid, "webmail_url": info["webmail_url"]}
    finally:
        successor.send_signal(signal.SIGINT)
        _, err = successor.communicate(timeout=30)
    assert successor.returncode == 0 and "Traceback" not in err, err
