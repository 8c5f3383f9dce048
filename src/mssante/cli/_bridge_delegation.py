"""``mssante bridge delegate|revoke|delegations``: the owner of a bridge session hands it to a fleet, or takes it back.

The LPS that owns the session (its installation credential and the session secret) asks the
bridge to delegate the session to the fleet's installation; the fleet's workers then watch the
professional's BALs with their own credential (``mssante fleet worker --bridge ...``), and Redis
holds only the session id (``mssante fleet add ... --ref SESSION_ID``). Secrets come from
environment variables or files, never from the command line (which ``ps`` shows to everyone).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from mssante._i18n import gettext as _
from mssante.errors import UsageError

__all__ = ["delegate", "delegations", "revoke", "secret_from"]

T = TypeVar("T")


def secret_from(file: Path | None, env: str, what: str) -> str:
    """A secret from ``file`` (first line) or else the environment variable ``env``.

    Raises:
        UsageError: neither gives one.
        ConfigError: the file cannot be read.
    """
    from mssante.errors import ConfigError

    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(_("cannot read {path}: {reason}").format(path=file, reason=exc)) from exc
    else:
        value = os.environ.get(env, "").strip()
    if not value:
        raise UsageError(_("{what}: give a file or set {env}").format(what=what, env=env))
    return value


@dataclass(frozen=True)
class _Owner:
    """The owner's side of a session: the LPS's installation and the session (secrets read when used)."""

    bridge_url: str
    installation_id: str
    installation_secret_file: Path | None
    session_id: str
    session_secret_file: Path | None

    def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work(source)`` with the session's token source (owner), then close the connection."""
        installation_secret = secret_from(self.installation_secret_file, "MSSANTE_BRIDGE_SECRET",
                                          _("the installation secret"))
        session_secret = secret_from(self.session_secret_file, "MSSANTE_BRIDGE_SESSION_SECRET",
                                     _("the session secret"))

        async def run() -> T:
            from mssante.bridge.client import BridgeClient

            async with BridgeClient(self.bridge_url, self.installation_id, installation_secret, timeout=15) as c:
                return await work(c.session(self.session_id, session_secret))

        return asyncio.run(run())


def _owner_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The owner's options, handed to ``fn`` as one ``owner`` (:class:`_Owner`)."""
    @functools.wraps(fn)
    def command(bridge_url: str, installation_id: str, installation_secret_file: Path | None, session_id: str,
                session_secret_file: Path | None, **rest: Any) -> Any:
        return fn(owner=_Owner(bridge_url, installation_id, installation_secret_file, session_id,
                               session_secret_file), **rest)

    wrapped: Callable[..., Any] = command
    for option in reversed([
        click.option("--bridge", "bridge_url", envvar="MSSANTE_BRIDGE_URL", required=True,
                     help="Bridge URL (or MSSANTE_BRIDGE_URL)."),
        click.option("--installation-id", envvar="MSSANTE_BRIDGE_INSTALLATION", required=True,
                     help="The LPS's installation id (or MSSANTE_BRIDGE_INSTALLATION); its secret: "
                          "--installation-secret-file or MSSANTE_BRIDGE_SECRET."),
        click.option("--installation-secret-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="File holding the installation secret."),
        click.option("--session", "session_id", required=True, help="The bridge session id."),
        click.option("--session-secret-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="File holding the session secret (else MSSANTE_BRIDGE_SESSION_SECRET)."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]):
        wrapped = option(wrapped)
    return wrapped


@click.command("delegate")
@click.argument("delegate_id", metavar="INSTALLATION")
@_owner_options
def delegate(delegate_id: str, owner: _Owner, as_json: bool) -> None:
    """Delegate a bridge session to INSTALLATION (a fleet): tokens and events, no logout, no further delegation.

    \f
    Raises:
        UsageError: a secret is missing.
        PSCError: the bridge refused (unknown installation, session over).
        AuthUnavailable: the bridge is unreachable.
        ConfigError: the bridge refused the installation credentials.
    """
    delegates = owner.run(lambda source: source.delegate(delegate_id))
    if as_json:
        click.echo(json.dumps({"session_id": owner.session_id, "delegates": delegates}))
    else:
        click.echo(_("Session {session} delegated to {installation}; its delegates: {delegates}").format(
            session=owner.session_id, installation=delegate_id, delegates=", ".join(delegates)))


@click.command("revoke")
@click.argument("delegate_id", metavar="INSTALLATION")
@_owner_options
def revoke(delegate_id: str, owner: _Owner, as_json: bool) -> None:
    """Revoke the delegation of a bridge session to INSTALLATION (its workers stop watching at once).

    \f
    Raises:
        UsageError: a secret is missing.
        PSCError: the bridge refused (no such delegation, session over).
        AuthUnavailable: the bridge is unreachable.
        ConfigError: the bridge refused the installation credentials.
    """
    owner.run(lambda source: source.revoke(delegate_id))
    if as_json:
        click.echo(json.dumps({"session_id": owner.session_id, "revoked": delegate_id}))
    else:
        click.echo(_("Delegation of session {session} to {installation} revoked").format(
            session=owner.session_id, installation=delegate_id))


@click.command("delegations")
@_owner_options
def delegations(owner: _Owner, as_json: bool) -> None:
    """List the installations a bridge session is delegated to.

    \f
    Raises:
        UsageError: a secret is missing.
        PSCError: the session is over.
        AuthUnavailable: the bridge is unreachable.
        ConfigError: the bridge refused the installation credentials.
    """
    delegates = owner.run(lambda source: source.delegations())
    if as_json:
        click.echo(json.dumps({"session_id": owner.session_id, "delegates": delegates}))
    elif delegates:
        click.echo(_("Session {session} is delegated to: {delegates}").format(
            session=owner.session_id, delegates=", ".join(delegates)))
    else:
        click.echo(_("Session {session} is delegated to no installation").format(session=owner.session_id))
