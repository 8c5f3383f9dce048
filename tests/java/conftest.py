"""Fixtures of the Java LPS tests: the LPS compiled once, and a sandbox started as a separate process.

The sandbox runs as ``mssante sandbox up`` in its own process, as a vendor would start it in a
first terminal; the tests only read its ``sandbox.json`` and talk to its API, fronts, DNS and PSC
over loopback. Its readiness is the line ``Contrat : …/sandbox.json`` on its standard output.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

JAVA_SOURCES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "java" / "src"

#: Short PSC lifetimes so token refreshes happen within a test run; the simulated professional
#: approves a CIBA request after half a second. The token-lifetimes case of a PER/ORG campaign waits
#: out two access-token lifetimes (2 × 10 s + 0.5 s): the Java LPS, run with ``--psc-check 500``
#: (tests/java/_campaign.py), refreshes its token every half second, so the token it sends with is
#: at most a few seconds old even on a loaded machine, far inside 10 s (the sandbox's ``exp`` is
#: truncated to the second); the case judges that the first token expired twice over and the LPS
#: still sends, with no new PSC login and its IMAP session open.
SANDBOX_TOML = """
[lifetimes]
access_token = 10
refresh_token = 300
ciba_approve_delay = 0.5
"""


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``javac`` on docs/examples/java/src (JDK only, warnings as errors); the class directory.

    Compiled once per pytest run, not once per xdist worker: the first worker to get here compiles
    into the run's shared temporary directory (under a lock, named by a hash of the sources), the
    others wait for it and reuse the classes. A failed compilation is compiled (and reported) again.
    """
    javac = shutil.which("javac")
    if javac is None or shutil.which("java") is None:
        pytest.skip("javac/java absent: install a JDK 17 (scripts/test.sh installs openjdk-17-jdk-headless)")
    sources = sorted(JAVA_SOURCES.rglob("*.java"))
    digest = hashlib.sha256()
    for source in sources:
        digest.update(str(source.relative_to(JAVA_SOURCES)).encode() + b"\0" + source.read_bytes() + b"\0")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # popen-gwN's parent: the run's
    out = shared / f"java-classes-{digest.hexdigest()[:16]}"
    with (shared / "java-classes.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not out.is_dir():
            building = Path(tempfile.mkdtemp(prefix="java-classes-", dir=shared))
            command = [javac, "-encoding", "UTF-8", "-Xlint:all", "-Werror", "--release", "17", "-d", str(building),
                       *map(str, sources)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
            assert done.returncode == 0, done.stderr
            building.rename(out)
    return out


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox of another process: its state directory and ``sandbox.json``."""

    state_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def contract(self) -> Path:
        return self.state_dir / "sandbox.json"


def wait_line(process: subprocess.Popen[bytes], stream: IO[bytes] | None, marker: bytes, within: float) -> str:
    """Read ``stream`` of ``process`` until a line holding ``marker`` (raw reads: no hidden buffer)."""
    assert stream is not None
    fd = stream.fileno()
    seen = b""
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
            if marker in seen and seen.endswith(b"\n"):
                return seen.decode("utf-8", "replace")
    process.kill()
    raise AssertionError(f"no {marker!r} line:\n" + seen.decode("utf-8", "replace"))


@contextlib.contextmanager
def _running_sandbox(state: Path) -> Iterator[RunningSandbox]:
    config = state.parent / f"{state.name}.toml"
    config.write_text(SANDBOX_TOML, encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "mssante", "sandbox", "up", "--state-dir", str(state), "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_line(process, process.stdout, b"\nContrat", 120.0)
        yield RunningSandbox(state_dir=state, process=process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """``mssante sandbox up`` in its own process (a fresh state directory), stopped after the module."""
    with _running_sandbox(tmp_path_factory.mktemp("java-sandbox")) as running:
        yield running


@pytest.fixture
def fresh_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox of its own for one campaign.

    The sandbox keeps step acknowledgements by step id only (``PERORG-01.1``), and step ids
    repeat from one run of a profile to the next: a second campaign of the same profile on the
    same sandbox would find the first one's acknowledgements and judge before the LPS acts.
    """
    with _running_sandbox(tmp_path_factory.mktemp("java-campaign")) as running:
        yield running
