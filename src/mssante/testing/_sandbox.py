"""A sandbox operator for one test, and a state directory reused to skip rebuilding the test PKI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mssante.clock import Clock
    from mssante.sandbox.config import SandboxConfig
    from mssante.sandbox.runner import Sandbox

__all__ = ["running_sandbox"]


@contextlib.asynccontextmanager
async def running_sandbox(state_dir: Path, config: SandboxConfig | None = None, *,
                          clock: Clock | None = None) -> AsyncIterator[Sandbox]:
    """Run the whole sandbox operator on loopback (HTTP, PSC, DNS, IMAP/SMTP fronts) for a block.

    Reusing one ``state_dir`` across tests that run one after the other keeps its test PKI
    (about 1 s to build, 0.1 s to load) and its HTTP port (the certificates' CRL URLs name it).
    ``sandbox.info`` is the ``sandbox.json`` contract an LPS reads. ``clock`` drives the mock
    PSC (a :class:`FakeClock` makes token lifetimes pass without waiting).

    Raises:
        ConfigError: the configuration or the state directory is invalid, or another sandbox
            runs on ``state_dir``.
        TransportError: a port could not be bound.
    """
    from mssante.clock import SYSTEM_CLOCK
    from mssante.sandbox.config import default_config
    from mssante.sandbox.runner import Sandbox

    async with Sandbox(config or default_config(), state_dir, clock=clock or SYSTEM_CLOCK) as sandbox:
        yield sandbox
