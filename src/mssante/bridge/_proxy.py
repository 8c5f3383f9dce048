"""Behind a reverse proxy: the client address from ``X-Forwarded-For``, believed only from trusted proxies.

Without it, every client of a bridge behind nginx or HAProxy has the proxy's address, so they all
share one per-address rate limit and the audit log names the proxy. With it, a client that talks
to the bridge directly cannot choose its address: the headers are read only when the TCP peer is
a trusted proxy, and the client is the right-most ``X-Forwarded-For`` entry that is not itself a
trusted proxy (each proxy appends the address it saw; the left-most entries are the client's word,
MDN "X-Forwarded-For", security and privacy concerns).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from mssante._asgi_guard import ASGIApp, Receive, Scope, Send

__all__ = ["TrustedProxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """ASGI middleware: rewrite ``scope["client"]`` and ``scope["scheme"]`` from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, networks: Iterable[Network]) -> None:
        """Believe ``X-Forwarded-For`` / ``X-Forwarded-Proto`` only from peers in ``networks``."""
        self.app = app
        self.networks = tuple(networks)
        self.trusted = functools.lru_cache(maxsize=1024)(self._trusted)

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(self.rewrite(scope), receive, send)

    def rewrite(self, scope: Scope) -> Scope:
        """Return ``scope``, or a copy with the client and scheme a trusted proxy forwarded."""
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self.trusted(client[0]):
            forwarded: list[str] = []
            proto = ""
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded.extend(h.strip() for h in value.decode("latin-1").split(","))
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").rpartition(",")[2].strip().lower()
            scope = dict(scope)
            hops = [h for h in forwarded if h]
            chosen = next((h for h in reversed(hops) if not self.trusted(h)), hops[0] if hops else None)
            if chosen is not None and _is_ip(chosen):
                scope["client"] = (chosen, 0)
            if proto in ("http", "https"):
                scope["scheme"] = proto if scope["type"] == "http" else {"http": "ws", "https": "wss"}[proto]
        return scope


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
