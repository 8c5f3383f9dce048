"""``mssante bridge``: run the PSC bridge (intermediate server for thick clients) and register installations."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

__all__ = ["bridge"]

_STORE = click.option("--store", default="sqlite:bridge.sqlite3", show_default=True,
                      help="sqlite:PATH (one process) or redis://HOST:PORT/DB (replicas).")


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
    """The PSC bridge: holds the PSC client secret and sessions for thick clients (ANS "serveur intermédiaire")."""


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
def serve(psc_settings: Path, client_id: str | None, client_secret_env: str | None, store: str,
          key_file: Path | None, host: str, port: int, public_url: str | None, audit_file: Path | None) -> None:
    """Serve the bridge API (JSON, OpenAPI at /openapi.json) until interrupted."""
    from mssante.bridge import BridgeConfig, TokenCipher
    from mssante.bridge import serve as run

    config = BridgeConfig(psc=_psc_settings(psc_settings, client_id, client_secret_env), store=store, host=host,
                          port=port, public_url=public_url, audit_file=audit_file)
    cipher = TokenCipher.load(key_file)
    click.echo(f"PSC bridge on {config.base_url} (redirect URI {config.redirect_uri}, "
               f"back-channel logout {config.base_url}/backchannel-logout)", err=True)
    asyncio.run(run(config, cipher))


@bridge.command("add-installation")
@click.argument("installation_id")
@_STORE
def add_installation(installation_id: str, store: str) -> None:
    """Register a thick-client installation; print its secret once (only a scrypt hash is stored)."""
    from mssante.bridge._crypto import hash_installation_secret, new_id
    from mssante.bridge._redis import RedisStore
    from mssante.bridge._sqlite import SQLiteStore
    from mssante.errors import ConfigError

    if not installation_id or not all(c.isalnum() or c in "._-" for c in installation_id):
        raise ConfigError("installation ids use letters, digits, '.', '_' and '-'")
    secret = new_id()

    async def register() -> None:
        target: Any = SQLiteStore(store.removeprefix("sqlite:")) if store.startswith("sqlite:") else RedisStore(store)

        async def ignore(*_: Any) -> None:
            return None

        await target.start(ignore)
        try:
            await target.add_installation(installation_id, hash_installation_secret(secret))
        finally:
            await target.aclose()

    asyncio.run(register())
    click.echo(json.dumps({"installation_id": installation_id, "installation_secret": secret}))
