"""``mssante bridge keygen``: a key that ``serve --key-file`` and ``MSSANTE_BRIDGE_KEY`` accept, written privately."""

from __future__ import annotations

import base64
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mssante.bridge import TokenCipher
from mssante.cli import main
from mssante.cli._bridge import bridge as bridge_cli
from mssante.errors import ConfigError, UsageError


def keygen(*args: str) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(bridge_cli, ["keygen", *args])
    return result.exit_code, result.stdout, result.stderr, result.exception


def test_keygen_prints_a_fresh_key_the_bridge_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _err, exc = keygen()
    assert code == 0 and exc is None, out
    text = out.strip()
    assert out == text + "\n" and len(base64.b64decode(text, validate=True)) == 32
    cipher = TokenCipher.from_text(text)
    assert cipher.decrypt(cipher.encrypt("rt", context="s/refresh"), context="s/refresh").reveal() == "rt"
    monkeypatch.setenv("MSSANTE_BRIDGE_KEY", text)
    assert TokenCipher.load(None).current == cipher.current
    assert keygen()[1].strip() != text  # random, not derived


def test_keygen_output_is_private_and_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "bridge.key"
    code, out, err, exc = keygen("--output", str(path))
    assert code == 0 and exc is None and out == "", out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cipher = TokenCipher.load(path)
    assert cipher.current in err and str(path) in err
    assert path.read_text(encoding="ascii").endswith("=\n")


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "bridge.key"
    path.write_text("keep me\n", encoding="utf-8")
    path.chmod(0o644)
    code, _out, _err, exc = keygen("-o", str(path))
    assert code != 0 and isinstance(exc, UsageError) and "--force" in str(exc)
    assert path.read_text(encoding="utf-8") == "keep me\n"
    code, _out, _err, exc = keygen("-o", str(path), "--force")
    assert code == 0 and exc is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # not the old file's 0644
    TokenCipher.load(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bridge.key"]  # no temporary file left


def test_keygen_errors(tmp_path: Path) -> None:
    assert isinstance(keygen("--force")[3], UsageError)
    exc = keygen("-o", str(tmp_path / "missing" / "bridge.key"))[3]
    assert isinstance(exc, ConfigError) and "cannot write" in str(exc)
    assert not (tmp_path / "missing").exists()


def test_keygen_from_the_main_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bridge.key"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        main(["bridge", "keygen", "--output", str(path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err and "Traceback" not in err


def test_keygen_as_the_guide_runs_it(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mssante", "bridge", "keygen", "--output", "bridge.key"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    TokenCipher.load(tmp_path / "bridge.key")


def test_serve_deployment_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment flags reach the bridge's settings (the server itself is replaced by a recorder)."""
    import json

    import mssante.bridge

    seen: list[object] = []

    async def record(config: object, cipher: object) -> None:
        seen.append(config)

    monkeypatch.setattr(mssante.bridge, "serve", record)
    monkeypatch.setenv("MSSANTE_BRIDGE_KEY", base64.b64encode(b"k" * 32).decode())
    settings = tmp_path / "psc.json"
    settings.write_text(json.dumps({"issuer": "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
                                    "client_id": "lps", "client_secret": "s"}))
    base = ["serve", "--psc-settings", str(settings), "--store", f"sqlite:{tmp_path / 'b.sqlite3'}"]
    result = CliRunner().invoke(bridge_cli, base)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(bridge_cli, [*base, "--access-log", "--proxy-headers", "--trusted-proxy", "10.0.0.0/8",
                                             "--trusted-proxy", "fd00::/8", "--redis-pool-size", "7",
                                             "--redis-pool-timeout", "0.5", "--per-installation", "50/800",
                                             "--per-ip", "1000/20000"])
    assert result.exit_code == 0, result.output
    default, chosen = seen
    assert (default.access_log, default.proxy_headers, default.trusted_proxies, default.redis_pool_size) == (  # type: ignore[attr-defined]
        False, False, ("127.0.0.1", "::1"), 50)
    assert (chosen.access_log, chosen.proxy_headers, chosen.trusted_proxies) == (  # type: ignore[attr-defined]
        True, True, ("10.0.0.0/8", "fd00::/8"))
    assert (chosen.redis_pool_size, chosen.redis_pool_timeout) == (7, 0.5)  # type: ignore[attr-defined]
    assert (default.per_installation.rate, default.per_installation.burst) == (200, 5000)  # type: ignore[attr-defined]
    assert (chosen.per_installation.rate, chosen.per_installation.burst) == (50, 800)  # type: ignore[attr-defined]
    assert (chosen.per_ip.rate, chosen.per_ip.burst) == (1000, 20000)  # type: ignore[attr-defined]
    for wrong in ("fast", "0/10", "5/0", "5/x"):
        refused = CliRunner().invoke(bridge_cli, [*base, "--per-installation", wrong])
        assert refused.exit_code == 2 and "RATE/BURST" in refused.output, wrong
    bad = CliRunner().invoke(bridge_cli, [*base, "--proxy-headers", "--trusted-proxy", "proxy.example"])
    assert isinstance(bad.exception, ConfigError)
