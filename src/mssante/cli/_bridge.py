"""``mssante bridge``: run the PSC bridge (intermediate server for thick clients) and register installations."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import click

__all__ = ["bridge"]

_STORE = click.option("--store", default="sqlite:bridge.sqlite3", show_default=True,
                      help="sqlite:PATH (one process) or redis://HOST:PORT/DB (replicas).")


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``RATE/BURST`` (requests per second, bucket size) as a :class:`RateLimit`, or None for the default."""
    if value is None:
        return None
    from mssante.bridge import RateLimit
    from mssante.errors import ConfigError

    rate, sep, burst = value.partition("/")
    try:
        return RateLimit(rate=float(rate), burst=int(burst)) if sep else RateLimit(rate=float(rate), burst=1)
    except (ValueError, ConfigError) as exc:
        raise click.BadParameter(f"{value!r} is not RATE/BURST with RATE > 0 and BURST >= 1 ({exc})") from None


def _psc_settings(path: Path, client_id: str | None, client_secret_env: str | None) -> Any:
    import os

    from mssante.errors import ConfigError
    from mssante.psc import PSCSettings

    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if isinstance(info, dict) and "psc" in info:  # a sandbox.json
        settings = PSCSettings.from_sandbox(info)
    elif isinstance(info, dict):  # {"issuer", "client_id", ...}: our own settings file
        secret = info.pop("client_secret", None)
        settings = PSCSettings(client_secret=secret, **info)
    else:
        raise ConfigError(f"{path} is not a JSON object")
    if client_id:
        settings = settings.with_changes(client_id=client_id)
    if client_secret_env:
        settings = settings.with_changes(client_secret=os.environ.get(client_secret_env, ""))
    return settings


@click.group()
def bridge() -> None:
    """The PSC bridge: holds the PSC client secret and sessions for thick clients (ANS "serveur intermédiaire").

    \f
    Raises:
        ConfigError, UsageError: from the sub-commands; ``mssante``'s main prints them on one line.
    """


@bridge.command()
@click.option("--psc-settings", "psc_settings", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="sandbox.json of `mssante sandbox up`, or a JSON file of PSCSettings fields.")
@click.option("--client-id", default=None, help="Override the PSC client id.")
@click.option("--client-secret-env", default=None, metavar="VAR", help="Read the PSC client secret from VAR.")
@_STORE
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="AES-256 key set for refresh tokens at rest (default: $MSSANTE_BRIDGE_KEY).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8470, show_default=True, type=int)
@click.option("--public-url", default=None, help="Base URL PSC and browsers use (default http://HOST:PORT).")
@click.option("--audit-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append audit records (JSON Lines) here instead of the log.")
@click.option("--access-log", is_flag=True, help="Log one line per request (off by default).")
@click.option("--proxy-headers", is_flag=True,
              help="Behind a reverse proxy: client address from X-Forwarded-For, from trusted proxies only.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="IP|CIDR",
              help="A reverse proxy whose X-Forwarded-* headers are believed (repeatable; default 127.0.0.1, ::1).")
@click.option("--per-installation", callback=_rate, metavar="RATE/BURST",
              help="Authenticated requests of one installation, per replica (default 200/5000).")
@click.option("--per-ip", callback=_rate, metavar="RATE/BURST",
              help="Requests of one client address before authentication, per replica (default 500/10000).")
@click.option("--redis-pool-size", default=50, show_default=True, type=click.IntRange(min=1),
              help="Redis command connections at most.")
@click.option("--redis-pool-timeout", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a request waits for a free Redis connection before answering 503.")
def serve(psc_settings: Path, client_id: str | None, client_secret_env: str | None, store: str,
          key_file: Path | None, host: str, port: int, public_url: str | None, audit_file: Path | None,
          access_log: bool, proxy_headers: bool, trusted_proxies: tuple[str, ...], per_installation: Any,
          per_ip: Any, redis_pool_size: int, redis_pool_timeout: float) -> None:
    """Serve the bridge API (JSON, OpenAPI at /openapi.json) until interrupted.

    \f
    Raises:
        ConfigError: unreadable PSC settings, an invalid store URL or no valid bridge key.
    """
    from mssante.bridge import BridgeConfig, TokenCipher
    from mssante.bridge import serve as run

    config = BridgeConfig(psc=_psc_settings(psc_settings, client_id, client_secret_env), store=store, host=host,
                          port=port, public_url=public_url, audit_file=audit_file, access_log=access_log,
                          proxy_headers=proxy_headers, trusted_proxies=trusted_proxies or ("127.0.0.1", "::1"),
                          redis_pool_size=redis_pool_size, redis_pool_timeout=redis_pool_timeout,
                          **{k: v for k, v in (("per_installation", per_installation), ("per_ip", per_ip)) if v})
    cipher = TokenCipher.load(key_file)
    click.echo(f"PSC bridge on {config.base_url} (redirect URI {config.redirect_uri}, "
               f"back-channel logout {config.base_url}/backchannel-logout)", err=True)
    asyncio.run(run(config, cipher))


@bridge.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the key to this file (mode 0600) instead of printing it.")
@click.option("--force", is_flag=True, help="With --output, replace an existing file.")
def keygen(output: Path | None, force: bool) -> None:
    """Make a new AES-256 key for refresh tokens at rest (for --key-file or $MSSANTE_BRIDGE_KEY).

    The key is 32 random bytes in base64, the single-key format that serve reads; its key id
    (first 8 hex digits of its SHA-256) is printed on stderr when it goes to a file.

    \f
    Raises:
        UsageError: --output names an existing file and --force is not given, or --force
            comes without --output.
        ConfigError: the file cannot be written.
    """
    import base64
    import secrets

    from mssante.bridge._crypto import TokenCipher
    from mssante.errors import UsageError

    if force and output is None:
        raise UsageError("--force only applies with --output")
    text = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    key_id = TokenCipher.from_text(text).current  # the format `serve --key-file` reads, checked
    if output is None:
        click.echo(text)
        return
    _write_private(output, text + "\n", force=force)
    click.echo(f"wrote bridge key {key_id} to {output} (mode 0600)", err=True)


def _write_private(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to a file readable by its owner only (0600); replace an existing one only if ``force``.

    Without ``force`` the file is created exclusively (``O_EXCL``), so a file that appears
    meanwhile is not overwritten either. With ``force`` the key goes to a fresh 0600 file in
    the same directory that then takes ``path``'s name in one step: the old file's mode is not
    inherited and a reader never sees a partial key.

    Raises:
        UsageError: ``path`` exists and ``force`` is false.
        ConfigError: the file cannot be written.
    """
    import os
    import tempfile

    from mssante.errors import ConfigError, UsageError

    data = text.encode("ascii")
    tmp: str | None = None
    created = False  # path is our own new file (O_EXCL): ours to remove on failure
    try:
        if force:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
            created = True
        try:
            os.chmod(tmp or path, 0o600)  # whatever the umask or the platform's mkstemp
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if tmp is not None:
            os.replace(tmp, path)
            tmp = None
    except FileExistsError as exc:
        raise UsageError(f"{path} exists; pass --force to replace it") from exc
    except OSError as exc:
        if created:
            with contextlib.suppress(OSError):
                path.unlink()
        raise ConfigError(f"cannot write the bridge key file {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@bridge.command("add-installation")
@click.argument("installation_id")
@_STORE
def add_installation(installation_id: str, store: str) -> None:
    """Register a thick-client installation; print its secret once (only a scrypt hash is stored).

    \f
    Raises:
        ConfigError: an installation id with characters other than letters, digits, '.', '_' and '-'.
    """
    from mssante.bridge._crypto import hash_installation_secret, new_id
    from mssante.bridge._redis import RedisStore
    from mssante.bridge._sqlite import SQLiteStore
    from mssante.errors import ConfigError

    if not installation_id or not all(c.isalnum() or c in "._-" for c in installation_id):
        raise ConfigError("installation ids use letters, digits, '.', '_' and '-'")
    secret = new_id()

    async def register() -> None:
        target: Any = SQLiteStore(store.removeprefix("sqlite:")) if store.startswith("sqlite:") else RedisStore(store)

        def ignore(*_: Any) -> None:
            return None

        await target.start(ignore)
        try:
            await target.add_installation(installation_id, hash_installation_secret(secret))
        finally:
            await target.aclose()

    asyncio.run(register())
    click.echo(json.dumps({"installation_id": installation_id, "installation_secret": secret}))


# -- delegation of a session to a fleet, the owner's side (_bridge_delegation.py) --
from mssante.cli._bridge_delegation import delegate, delegations, revoke  # noqa: E402

for _command in (delegate, revoke, delegations):
    bridge.add_command(_command)
