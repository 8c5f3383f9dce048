"""Progress on a terminal only, Ctrl-C during ``sandbox up``, and ``demo --once`` failing (issue 13).

- Progress (item 8) is drawn with rich on stderr when stderr is a terminal (a pty here), never
  in a pipe, and never with ``--json``.
- SIGINT while ``sandbox up`` builds its PKI and starts: exit 130 at once (before the start would
  have ended: no "prêt" line), no ``sandbox.json`` left, the lock released (a new sandbox starts on
  the same directory). How fast "at once" is on an idle machine (2 s, issue 13) is not asserted: on a
  loaded CI machine the interpreter's own exit can take seconds.
- ``demo --once`` failing: tests/cli/test_demo_once_failing.py (a module of its own, so that xdist deals
  it to another worker).
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mssante.sandbox.config import default_config
from mssante.sandbox.runner import Sandbox

pytestmark = pytest.mark.slow

_ENV = {**os.environ, "LANG": "fr_FR.UTF-8", "COLUMNS": "100", "TERM": "xterm"}


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _read_all(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Everything written to the pty ``fd`` until ``proc`` exits (bounded by ``timeout``)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


def _sandbox_up_with_stderr_on(state: Path, *, tty: bool) -> tuple[subprocess.Popen[bytes], int | None]:
    """``mssante sandbox up``, stderr on a fresh pty (``tty``) or a pipe; stdout always a pipe."""
    if tty:
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir", str(state)],
                                stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=_ENV)
        os.close(slave)
        return proc, master
    proc = subprocess.Popen([sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_ENV)
    return proc, None


def _stop(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    """Interrupt ``proc`` if it still runs; its stdout and stderr (pipes closed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    return (out or b"").decode(), (err or b"").decode()


def test_sandbox_up_draws_progress_on_a_terminal_only(tmp_path: Path) -> None:
    # a terminal: the spinner's text appears on stderr while the sandbox starts
    proc, master = _sandbox_up_with_stderr_on(tmp_path / "tty", tty=True)
    assert master is not None
    try:
        _wait_for(lambda: (tmp_path / "tty" / "sandbox.json").exists() or proc.poll() is not None, 120,
                  "sandbox.json")
        proc.send_signal(signal.SIGINT)
        drawn = _read_all(master, proc, 20).decode("utf-8", "replace")
    finally:
        _stop(proc)
        os.close(master)
    assert "Démarrage du bac à sable" in drawn, drawn
    # a pipe: nothing but the command's own lines
    proc, _ = _sandbox_up_with_stderr_on(tmp_path / "pipe", tty=False)
    try:
        _wait_for(lambda: (tmp_path / "pipe" / "sandbox.json").exists() or proc.poll() is not None, 120,
                  "sandbox.json")
    finally:
        _, err = _stop(proc)
    assert "Démarrage" not in err and "\x1b[" not in err, err


def test_ctrl_c_while_sandbox_up_starts_exits_130_and_leaves_the_directory_usable(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_ENV)
    try:
        # the PKI directory appears first: the start is under way (keys, certificates, CRLs, then services)
        _wait_for(lambda: (state / "pki").exists() or proc.poll() is not None, 60, "the PKI directory")
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)  # a bound for a hung process only: the assertions below judge the interruption
    finally:
        out, err = _stop(proc)
    assert code == 130, (code, out, err)
    assert "prêt" not in out  # interrupted during the start, not after it
    assert "interrompu" in err and "Traceback" not in err
    assert not (state / "sandbox.json").exists()

    async def restart() -> None:  # the lock is free and the PKI usable: a sandbox starts there
        async with Sandbox(default_config(), state) as sb:
            assert sb.state_file.exists()

    asyncio.run(restart())


def test_fault_and_journal_take_json_and_print_only_json(tmp_path: Path) -> None:
    import json

    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_ENV)
    try:
        _wait_for(lambda: (state / "sandbox.json").exists() or proc.poll() is not None, 120, "sandbox.json")
        fault = subprocess.run([sys.executable, "-m", "mssante", "sandbox", "fault", "--state-dir", str(state),
                                "--end-sessions", "bye", "--json"], capture_output=True, text=True, env=_ENV,
                               timeout=60, check=False)
        journal = subprocess.run([sys.executable, "-m", "mssante", "sandbox", "journal", "--state-dir", str(state),
                                  "--json"], capture_output=True, text=True, env=_ENV, timeout=60, check=False)
    finally:
        _stop(proc)
    assert fault.returncode == 0, fault.stderr
    assert "pending_auth_failures" in json.loads(fault.stdout)
    assert fault.stderr.strip() == "0 session terminée"  # French, singular for 0
    assert journal.returncode == 0, journal.stderr
    assert all(json.loads(line) for line in journal.stdout.splitlines())
