"""The bridge's configuration: one frozen dataclass, checked at construction."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from mssante.errors import ConfigError
from mssante.psc import PSCSettings

__all__ = ["BridgeConfig", "RateLimit"]

DEFAULT_PORT: Final = 8470


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """A token bucket: ``rate`` requests per second on average, bursts of ``burst``."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ConfigError("a rate limit needs rate > 0 and burst >= 1")


@dataclass(frozen=True, kw_only=True)
class BridgeConfig:
    """Everything ``mssante bridge serve`` needs, except the encryption key (see :class:`TokenCipher`).

    Attributes:
        psc: the relying party settings (client id and secret stay on this server: the
            ANS webinar's "serveur intermédiaire"; psc-igc.md §1.6).
        store: ``sqlite:PATH`` (one process) or ``redis://host:port/db`` (replicas).
        host, port: where to listen.
        public_url: the base URL browsers and PSC use to reach the bridge (the redirect URI is
            ``<public_url>/callback``, the back-channel logout URI ``<public_url>/backchannel-logout``);
            defaults to ``http://host:port``.
        refresh_margin: an access token with less than this many seconds left is refreshed
            before it is handed out.
        login_ttl: seconds a started login may take before it is void.
        session_ttl: upper bound of a bridge session's life, whatever PSC says.
        tombstone_ttl: seconds an ended session is remembered (so a late client learns it ended).
        lock_ttl: lifetime of the refresh lock; longer than a refresh call may take.
        heartbeat: seconds between SSE comments that keep idle event streams open.
        introspect_interval: seconds between introspections of sessions whose client listens
            to events; 0 disables.
        per_installation, per_ip: token-bucket rate limits (per replica).
        audit_file: JSON Lines file for audit records; None logs them on ``mssante.bridge.audit``.
    """

    psc: PSCSettings
    store: str = "sqlite:bridge.sqlite3"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    public_url: str | None = None
    refresh_margin: float = 20.0
    login_ttl: float = 300.0
    session_ttl: float = 12 * 3600.0
    tombstone_ttl: float = 3600.0
    lock_ttl: float = 15.0
    heartbeat: float = 15.0
    introspect_interval: float = 60.0
    per_installation: RateLimit = RateLimit(rate=20.0, burst=60)
    per_ip: RateLimit = RateLimit(rate=50.0, burst=200)
    audit_file: Path | None = None

    def __post_init__(self) -> None:
        if not (self.store.startswith("sqlite:") or self.store.startswith(("redis://", "rediss://", "unix://"))):
            raise ConfigError("store must be sqlite:PATH or redis://HOST:PORT[/DB]")
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be in 0..65535")
        for name in ("refresh_margin", "login_ttl", "session_ttl", "tombstone_ttl", "lock_ttl", "heartbeat",
                     "introspect_interval"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        base = self.base_url
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or base.endswith("/"):
            raise ConfigError("public_url must be an absolute http(s) URL without query or trailing slash")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ConfigError("public_url must be https unless it is on loopback (RFC 6749 §3.1.2.1)")

    @property
    def base_url(self) -> str:
        """The public base URL (``public_url``, or ``http://host:port``)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def redirect_uri(self) -> str:
        """The OAuth redirect URI this bridge serves."""
        return f"{self.base_url}/callback"

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite path of a ``sqlite:`` store, else None."""
        return self.store.removeprefix("sqlite:") if self.store.startswith("sqlite:") else None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
