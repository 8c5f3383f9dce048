"""A stand-in for ``mssante.conformance.builtin:create_driver``: the stdlib LPS behind the builtin hook."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from mssante.conformance import DriverSetup, LPSDriver
from tests.conformance._lps import LPSConfig, StdlibDriver, StdlibLPS


def create_driver(setup: DriverSetup) -> LPSDriver:
    """Build the test LPS from what the suite gives a builtin driver."""
    loop = asyncio.get_running_loop()
    login = setup.login

    def sync_login() -> Mapping[str, Any]:
        assert login is not None
        return asyncio.run_coroutine_threadsafe(login(), loop).result(10)

    cfg = LPSConfig(info=setup.info, bal=setup.bal, profile=setup.profile,
                    login=sync_login if login is not None else None, trace_file=setup.trace_file,
                    product_reference=setup.product_reference)
    return StdlibDriver(StdlibLPS(cfg))
