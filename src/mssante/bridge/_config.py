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
        refresh_ahead: refresh the sessions whose client holds an event stream here before their
            access token expires (at a random point of 60 to 85 % of its life), so that a client's
            token request never waits for PSC and PSC's session stays alive while it listens.
        refresh_concurrency: refreshes ahead in flight at most (earliest due first).
        psc_concurrency: refreshes in flight at PSC at most, ahead or asked for; the others wait
            their turn in the bridge. Unbounded, thousands of clients whose tokens expire together
            queue thousands of requests in the HTTP client's connection pool, which spends its time
            sorting that queue: every refresh then times out, even once PSC is idle again.
        per_installation: token bucket of each installation's authenticated requests (per replica).
            200/s with bursts of 5,000 carries 10,000 sessions of one installation: each asks for a
            token about once per access-token life (PSC: 120 s) and holds one event stream, and a
            restart of the bridge sees every client reconnect at once (one stream + one token each).
        per_ip: token bucket of every request of a client address (per replica), before any
            authentication; generous (a whole hospital may come from one NAT address) but bounded.
        auth_failures: token bucket of refused installation credentials per client address: each
            refusal costs a scrypt verification (~50 ms of CPU), so 1/s with bursts of 10.
        session_cache_ttl: seconds a session record stays in this process's cache (invalidated
            sooner by the store's events); 0 reads the store on every request.
        access_log: log one line per request (uvicorn's access log); off by default, it costs
            several percent of the throughput and the audit log already records what matters.
        redis_pool_size, redis_pool_timeout: Redis command connections at most, and the seconds a
            request waits for a free one before answering 503.
        proxy_headers: behind a reverse proxy, take the client address from ``X-Forwarded-For``
            and the scheme from ``X-Forwarded-Proto``, only when the peer is in ``trusted_proxies``.
        trusted_proxies: addresses or networks (CIDR) of the reverse proxies whose forwarding
            headers are believed; the client is the right-most ``X-Forwarded-For`` entry that is
            not itself a trusted proxy.
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
    refresh_ahead: bool = True
    refresh_concurrency: int = 16
    psc_concurrency: int = 32
    per_installation: RateLimit = RateLimit(rate=200.0, burst=5000)
    per_ip: RateLimit = RateLimit(rate=500.0, burst=10000)
    auth_failures: RateLimit = RateLimit(rate=1.0, burst=10)
    session_cache_ttl: float = 30.0
    access_log: bool = False
    redis_pool_size: int = 50
    redis_pool_timeout: float = 5.0
    proxy_headers: bool = False
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    audit_file: Path | None = None

    def __post_init__(self) -> None:
        if not (self.store.startswith("sqlite:") or self.store.startswith(("redis://", "rediss://", "unix://"))):
            raise ConfigError("store must be sqlite:PATH or redis://HOST:PORT[/DB]")
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be in 0..65535")
        for name in ("refresh_margin", "login_ttl", "session_ttl", "tombstone_ttl", "lock_ttl", "heartbeat",
                     "introspect_interval", "session_cache_ttl"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.refresh_concurrency < 1 or self.psc_concurrency < 1:
            raise ConfigError("refresh_concurrency and psc_concurrency must be >= 1")
        if self.redis_pool_size < 1 or self.redis_pool_timeout <= 0:
            raise ConfigError("redis_pool_size must be >= 1 and redis_pool_timeout > 0")
        self.proxy_networks  # noqa: B018 - checks every trusted proxy now, not at the first request
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
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``trusted_proxies`` parsed (a bare address is a /32 or /128 network).

        Raises:
            ConfigError: an entry is not an IP address or network.
        """
        try:
            return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in self.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"trusted_proxies: {exc}") from exc

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
