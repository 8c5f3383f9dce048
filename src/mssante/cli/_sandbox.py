"""``mssante sandbox``: run the sandbox operator and drive it (faults, journal, PKI)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from mssante.errors import ConfigError, ConnectError, MssanteError

__all__ = ["sandbox"]

_STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".sandbox"),
    show_default=True,
    help="Directory holding keys, certificates, CRLs and sandbox.json.",
)


@click.group()
def sandbox() -> None:
    """Run the sandbox operator: a local MSSanté operator for developing and testing an LPS."""


def _summary(info: dict[str, Any], state_file: Path) -> str:
    lines = [
        f"Bac à sable MSSanté prêt — domaine {info['domain']}",
        f"  PSC (simulé)   {info['psc']['issuer']}",
        f"  DNS            {info['dns']['host']}:{info['dns']['port']} (UDP et TCP)",
    ]
    for proto in ("imap", "smtp"):
        for front in ("psc", "authcli"):
            end = info[proto][front]
            lines.append(f"  {proto.upper():4} {front:8}  {end['host']}:{end['port']}")
    lines.append(f"  Webmail        {info['webmail_url']}")
    lines.append(f"  Racines IGC    {info['ca_bundle']}")
    lines.append("  BAL:")
    for bal in info["bals"]:
        lines.append(f"    {bal['kind']:3}  {bal['address']}")
    lines.append(f"Contrat : {state_file}  (Ctrl-C pour arrêter)")
    return "\n".join(lines)


async def _serve(config_file: Path | None, state_dir: Path, reset: bool = False) -> None:
    from mssante.sandbox.config import load_config
    from mssante.sandbox.fronts.store import remove_mail_state
    from mssante.sandbox.runner import Sandbox

    config = load_config(config_file)
    if reset and remove_mail_state(state_dir):
        click.echo("Boîtes aux lettres vidées (--reset).")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Sandbox(config, state_dir, persist_mail=True) as sb:
        click.echo(_summary(sb.info, sb.state_file))
        sys.stdout.flush()
        await stop.wait()
    click.echo("Bac à sable arrêté.")


@sandbox.command("up")
@_STATE_DIR
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML configuration (professionals, BALs, lifetimes, ports); defaults work without it.",
)
@click.option("--reset", is_flag=True, help="Start with empty mailboxes (the PKI and ports are kept).")
def up(state_dir: Path, config_file: Path | None, reset: bool) -> None:
    """Start every sandbox service on loopback, write STATE_DIR/sandbox.json, serve until interrupted.

    Mailboxes, messages and flags persist in STATE_DIR between runs; ``--reset`` empties them.
    """
    asyncio.run(_serve(config_file, state_dir, reset))


def _read_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "sandbox.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no running sandbox: {path} does not exist (start one with 'mssante sandbox up')") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return data


def _api(state_dir: Path, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    import httpx2

    url = _read_state(state_dir)["api_url"] + path
    try:
        response = httpx2.request(method, url, json=payload, timeout=10)
    except httpx2.HTTPError as exc:
        raise ConnectError(f"the sandbox at {url} does not answer: {exc}") from exc
    body = response.json()
    if response.status_code >= 400:
        raise MssanteError(f"the sandbox refused: {body.get('message', body)}")
    return body


@sandbox.command("fault")
@_STATE_DIR
@click.option("--psc-unavailable/--psc-available", default=None, help="Make PSC token checks fail (UNAVAILABLE).")
@click.option("--delay", type=click.FloatRange(0, 60), help="Delay every response by this many seconds.")
@click.option("--fail-auth", type=click.IntRange(1, 1000), help="Make the next N authentications fail.")
@click.option(
    "--code",
    type=click.Choice(["AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "UNAVAILABLE"]),
    default="AUTHENTICATIONFAILED",
    show_default=True,
    help="The failure code for --fail-auth.",
)
@click.option("--bal", help="Limit --fail-auth or --end-sessions to this BAL.")
@click.option("--end-sessions", type=click.Choice(["bye", "drop"]), help="End live sessions now (of --bal, or all).")
@click.option("--clear", is_flag=True, help="Remove every fault.")
def fault(
    state_dir: Path,
    psc_unavailable: bool | None,
    delay: float | None,
    fail_auth: int | None,
    code: str,
    bal: str | None,
    end_sessions: str | None,
    clear: bool,
) -> None:
    """Inject faults into a running sandbox, then print the fault state."""
    if clear:
        _api(state_dir, "DELETE", "/faults")
    payload: dict[str, Any] = {}
    if psc_unavailable is not None:
        payload["psc_unavailable"] = psc_unavailable
    if delay is not None:
        payload["delay"] = delay
    if fail_auth:
        payload["fail_auth"] = {"count": fail_auth, "code": code, "bal": bal}
    if payload:
        _api(state_dir, "POST", "/faults", payload)
    if end_sessions:
        target = bal or "*"
        ended = _api(state_dir, "DELETE", f"/sessions/{target}?mode={end_sessions}")
        click.echo(f"sessions ended: {ended['ended']}")
    click.echo(json.dumps(_api(state_dir, "GET", "/faults"), indent=2))


@sandbox.command("journal")
@_STATE_DIR
@click.option("--bal", help="Only this BAL's sessions.")
@click.option("--front", help="Only this front (imap-psc, imap-authcli, smtp-psc, smtp-authcli).")
def journal(state_dir: Path, bal: str | None, front: str | None) -> None:
    """Print the session journal of a running sandbox as JSON Lines."""
    query = "&".join(f"{k}={v}" for k, v in (("bal", bal), ("front", front)) if v)
    for record in _api(state_dir, "GET", "/journal" + (f"?{query}" if query else "")):
        click.echo(json.dumps(record, ensure_ascii=False, sort_keys=True))


with contextlib.suppress(ImportError):
    from mssante.cli._pki import pki

    sandbox.add_command(pki)
