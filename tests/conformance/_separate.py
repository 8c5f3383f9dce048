"""A sandbox started the way a vendor starts it: ``mssante sandbox up`` in its own process."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Short PSC access tokens (the next refresh reveals the end of the PSC session), quick CIBA approval.
FAST_PSC_TOML = """\
[lifetimes]
access_token = 2.0
refresh_token = 300.0
ciba_interval = 0.2
ciba_approve_delay = 0.3
"""


@dataclass
class SeparateSandbox:
    """The running process, its state directory and its ``sandbox.json``."""

    proc: subprocess.Popen[str]
    state_dir: Path
    info: dict[str, Any]


def _healthy(info: dict[str, Any]) -> bool:
    try:
        with urllib.request.urlopen(str(info["api_url"]) + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, KeyError):
        return False


def wait_ready(proc: subprocess.Popen[str], state_dir: Path, within: float = 90.0) -> dict[str, Any]:
    """Wait until ``state_dir/sandbox.json`` exists and its API answers; the contract."""
    state_file = state_dir / "sandbox.json"
    deadline = time.monotonic() + within
    while True:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"sandbox up stopped (rc {proc.returncode}):\n{out}\n{err}")
        if state_file.exists():
            with contextlib.suppress(ValueError, OSError):
                info: dict[str, Any] = json.loads(state_file.read_text(encoding="utf-8"))
                if _healthy(info):
                    return info
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("sandbox up did not become ready")
        time.sleep(0.1)


@contextlib.contextmanager
def separate_sandbox(state_dir: Path, config: str | None = FAST_PSC_TOML,
                     extra: tuple[str, ...] = ()) -> Iterator[SeparateSandbox]:
    """``mssante sandbox up --state-dir STATE_DIR [--config ...]`` in another process, stopped at the end."""
    (state_dir / "sandbox.json").unlink(missing_ok=True)
    args = [sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir", str(state_dir), *extra]
    if config is not None:
        path = state_dir.parent / f"{state_dir.name}-config.toml"
        path.write_text(config, encoding="utf-8")
        args += ["--config", str(path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        running = SeparateSandbox(proc=proc, state_dir=state_dir, info=wait_ready(proc, state_dir))
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
