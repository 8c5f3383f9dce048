"""A sandbox state directory whose HTTP port cannot be taken by another program's outgoing connection.

A sandbox keeps the HTTP port of its first run (``ports.json``): the test PKI's certificates publish
their CRLs there. A port the kernel chose (port 0) lies in the ephemeral range, where every outgoing
connection of the machine also takes its local port: with several xdist workers and other programs on
loopback, the port was sometimes taken between two sandboxes of one state directory, and every later
test on that directory failed ("address already in use"). The port chosen here lies below the
ephemeral range, where only a program that asks for it by number can bind.
"""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def below_ephemeral() -> range:
    """The ports below the kernel's ephemeral range (Linux: ip_local_port_range), above 1023."""
    try:
        low = int(_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return range(max(1024, low - 12000), low)


def free_port_below_ephemeral() -> int:
    """A loopback TCP port below the ephemeral range that nothing listens on now (0: none found)."""
    candidates = below_ephemeral()
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return 0


def sandbox_state_dir(path: Path) -> Path:
    """``path`` (created), its sandbox HTTP port chosen below the ephemeral range (``ports.json``)."""
    path.mkdir(parents=True, exist_ok=True)
    port = free_port_below_ephemeral()
    if port:
        (path / "ports.json").write_text(json.dumps({"http": port}), encoding="utf-8")
    return path
