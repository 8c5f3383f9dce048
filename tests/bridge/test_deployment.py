"""Deployment settings: X-Forwarded-For from trusted proxies only, the access log, the shipped limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.bridge import BridgeConfig, RateLimit, TokenCipher
from mssante.bridge._server import uvicorn_config
from mssante.errors import ConfigError
from tests.bridge._support import running_bridge, world

CURL = "/usr/bin/curl"


async def curl(url: str, *headers: str) -> int:
    """One unauthenticated POST by curl (software we did not write); return the HTTP status."""
    args = [CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--noproxy", "*"]
    for header in headers:
        args += ["-H", header]
    proc = await asyncio.create_subprocess_exec(*args, url, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return int(out)


@pytest.mark.skipif(not Path(CURL).exists(), reason="curl is not installed")
@pytest.mark.parametrize("trusted", [("127.0.0.1",), ("10.0.0.0/8", "::1")])
async def test_forwarded_for_only_from_a_trusted_proxy(
    tmp_path: Path, state_dir: Path, cipher: TokenCipher, trusted: tuple[str, ...]
) -> None:
    """Two requests per address, then 429: each forwarded client has its own bucket only behind a trusted proxy."""
    proxy_is_trusted = "127.0.0.1" in trusted
    async with world(tmp_path, state_dir) as w, \
            running_bridge(w, cipher=cipher, proxy_headers=True, trusted_proxies=trusted,
                           per_ip=RateLimit(rate=0.01, burst=2)):
        url = w.config().base_url + "/logins"
        alice, bob = "X-Forwarded-For: 203.0.113.1", "X-Forwarded-For: 198.51.100.7, 203.0.113.2"
        codes = [await curl(url, h) for h in (alice, alice, alice, bob, bob)]
        if proxy_is_trusted:
            assert codes == [401, 401, 429, 401, 401]  # bob is the right-most untrusted hop: his own bucket
            # A client cannot escape its bucket by writing addresses of its own in front of the proxy's.
            assert await curl(url, "X-Forwarded-For: 192.0.2.99, 203.0.113.1") == 429
        else:
            assert codes == [401, 401, 429, 429, 429]  # headers ignored: everyone is 127.0.0.1


def test_settings_defaults_and_checks() -> None:
    config = BridgeConfig(psc=_psc(), port=0)
    assert not config.proxy_headers and config.access_log is False
    assert uvicorn_config(lambda *a: None, config).access_log is False  # type: ignore[arg-type,return-value]
    loud = BridgeConfig(psc=_psc(), port=0, access_log=True)
    assert uvicorn_config(lambda *a: None, loud).access_log is True  # type: ignore[arg-type,return-value]
    # The shipped limits carry 10,000 sessions of one installation (a token each per 120 s, 2x headroom).
    assert config.per_installation.rate >= 2 * 10_000 / 120 and config.per_installation.burst >= 5000
    with pytest.raises(ConfigError, match="trusted_proxies"):
        BridgeConfig(psc=_psc(), trusted_proxies=("proxy.example",))
    with pytest.raises(ConfigError, match="redis_pool"):
        BridgeConfig(psc=_psc(), redis_pool_size=0)


def _psc() -> object:
    from mssante.psc import PSCSettings

    return PSCSettings(issuer="https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet", client_id="x",
                       client_secret="y")


async def test_concurrent_requests_of_one_credential_cost_one_scrypt(
    tmp_path: Path, cipher: TokenCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart every workstation of an installation comes back at once: one scrypt check for all."""
    from mssante.bridge import _core
    from mssante.bridge._audit import Audit
    from mssante.bridge._sqlite import SQLiteStore
    from mssante.psc import PSCClient

    checks: list[str] = []
    real = _core.verify_installation_secret

    def counted(secret: str, stored: str) -> bool:
        checks.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(_core, "verify_installation_secret", counted)
    psc = PSCClient(_psc())  # type: ignore[arg-type]
    config = BridgeConfig(psc=_psc(), port=0)  # type: ignore[arg-type]
    core = _core.BridgeCore(config, store=SQLiteStore(tmp_path / "b.sqlite3"), psc=psc, cipher=cipher,
                            audit=Audit(None))
    await core.start()
    try:
        secret = await core.add_installation("cab-restart")
        back = await asyncio.gather(*(core.check_installation("cab-restart", secret) for _ in range(50)))
        assert back == [True] * 50
        assert len(checks) == 1
        assert await core.check_installation("cab-restart", secret) and len(checks) == 1  # remembered
        await core.add_installation("cab-other")
        wrong = await asyncio.gather(*(core.check_installation("cab-other", "wrong") for _ in range(20)))
        assert wrong == [False] * 20 and len(checks) == 2
    finally:
        await core.aclose()
        await psc.aclose()
