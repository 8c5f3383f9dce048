"""A sandbox restarted on its state directory keeps the fronts' ports of its last run, and gives up one that
another program took meanwhile (a new port and a warning) instead of failing to start."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from mssante.sandbox.config import default_config
from mssante.sandbox.runner import Sandbox

FRONTS = [(kind, front) for kind in ("imap", "smtp") for front in ("psc", "authcli")]


def _ports(sb: Sandbox) -> dict[tuple[str, str], int]:
    return {(kind, front): int(sb.info[kind][front]["port"]) for kind, front in FRONTS}


async def test_a_port_of_the_last_run_taken_meanwhile_is_given_up_for_a_new_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    async with Sandbox(default_config(), state) as sb:
        first = _ports(sb)
    # another program listens on the last run's submission and IMAP ports (PSC fronts) before the restart
    # (a CI run: a sandbox restarted on a shared state directory failed on "address already in use")
    squatters = []
    for key in (("smtp", "psc"), ("imap", "psc")):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", first[key]))
        sock.listen(1)
        squatters.append(sock)
    try:
        with caplog.at_level(logging.WARNING):
            async with Sandbox(default_config(), state) as sb:
                second = _ports(sb)
    finally:
        for sock in squatters:
            sock.close()
    taken = {("smtp", "psc"), ("imap", "psc")}
    assert all(second[key] != first[key] for key in taken)
    assert {k: v for k, v in second.items() if k not in taken} == {k: v for k, v in first.items() if k not in taken}
    warned = [r.getMessage() for r in caplog.records if "of the last run is taken" in r.getMessage()]
    assert len(warned) == 2, warned
