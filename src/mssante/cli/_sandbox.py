"""``mssante sandbox``: run the sandbox operator and drive it (faults, journal, PKI, hosts, tokens).

``hosts`` and ``token`` let stock clients (curl, msmtp, neomutt, Thunderbird, Jakarta Mail) use
the sandbox without tricks: the front host names as hosts-file lines, and a PSC access token
obtained by CIBA on the sandbox's PSC (``--token-command``, ``curl --oauth2-bearer``,
msmtp's ``passwordeval``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from mssante._i18n import gettext as _
from mssante._i18n import ngettext
from mssante.cli._progress import progress_status
from mssante.errors import ConfigError, ConnectError, MssanteError, UsageError

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
        _("MSSanté sandbox ready — domain {domain}").format(domain=info["domain"]),
        "  " + _("PSC (mock)     {issuer}").format(issuer=info["psc"]["issuer"]),
        "  " + _("DNS            {host}:{port} (UDP and TCP)").format(host=info["dns"]["host"],
                                                                   port=info["dns"]["port"]),
    ]
    for proto in ("imap", "smtp"):
        for front in ("psc", "authcli"):
            end = info[proto][front]
            lines.append(f"  {proto.upper():4} {front:8}  {end['host']}:{end['port']}")
    lines.append(f"  Webmail        {info['webmail_url']}")
    lines.append("  " + _("IGC roots      {path}").format(path=info["ca_bundle"]))
    lines.append("  BAL:")
    for bal in info["bals"]:
        lines.append(f"    {bal['kind']:3}  {bal['address']}")
    lines.append(_("Contract: {path}  (Ctrl-C to stop)").format(path=state_file))
    return "\n".join(lines)


async def _serve(config_file: Path | None, state_dir: Path, reset: bool = False) -> None:
    """Start the sandbox, serve until SIGINT/SIGTERM.

    Raises:
        KeyboardInterrupt: interrupted while starting (the CLI exits 130); the start is
            cancelled and the sandbox undoes it (services stopped, no ``sandbox.json``, lock released).
    """
    from mssante.sandbox.config import load_config
    from mssante.sandbox.runner import Sandbox

    config = load_config(config_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    sb = Sandbox(config, state_dir, persist_mail=True, reset=reset)
    with progress_status(_("Starting the sandbox (test PKI, PSC, DNS, IMAP/SMTP fronts)…")):
        start = asyncio.create_task(sb.__aenter__())
        interrupt = asyncio.create_task(stop.wait())
        await asyncio.wait({start, interrupt}, return_when=asyncio.FIRST_COMPLETED)
    if not start.done():  # Ctrl-C while starting: stop now
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await start
        raise KeyboardInterrupt
    interrupt.cancel()
    start.result()
    try:
        if sb.was_reset:
            click.echo(_("Mailboxes and journal emptied (--reset)."))
        click.echo(_summary(sb.info, sb.state_file))
        sys.stdout.flush()
        await stop.wait()
    finally:
        await sb.aclose()
    click.echo(_("Sandbox stopped."))


@sandbox.command("up")
@_STATE_DIR
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML configuration (professionals, BALs, lifetimes, ports); defaults work without it.",
)
@click.option("--reset", is_flag=True, help="Start with empty mailboxes and journal (the PKI and ports are kept).")
def up(state_dir: Path, config_file: Path | None, reset: bool) -> None:
    """Start every sandbox service on loopback, write STATE_DIR/sandbox.json, serve until interrupted.

    Mailboxes, messages, flags and the session journal persist in STATE_DIR between runs, and
    the ports stay the same; ``--reset`` empties the mailboxes and the journal.
    """
    asyncio.run(_serve(config_file, state_dir, reset))


def _read_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "sandbox.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(_("no running sandbox: {path} does not exist (start one with 'mssante sandbox up')").format(
            path=path)) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(_("cannot read {path}: {reason}").format(path=path, reason=exc)) from exc
    return data


def _api(state_dir: Path, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    import httpx2

    url = _read_state(state_dir)["api_url"] + path
    try:
        response = httpx2.request(method, url, json=payload, timeout=10)
    except httpx2.HTTPError as exc:
        raise ConnectError(_("the sandbox at {url} does not answer: {reason}").format(url=url, reason=exc)) from exc
    body = response.json()
    if response.status_code >= 400:
        raise MssanteError(_("the sandbox refused: {reason}").format(reason=body.get("message", body)))
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
@click.option("--bal", help="Limit --fail-auth, --end-sessions or --reject-next-token to this BAL.")
@click.option("--end-sessions", type=click.Choice(["bye", "drop"]), help="End live sessions now (of --bal, or all).")
@click.option("--reject-next-token", is_flag=True,
              help="Refuse the next PSC token of --bal, and that token again if it comes back.")
@click.option("--crl-outage", type=click.Choice(["503", "timeout", "off"]),
              help="CRL downloads answer 503, or hang (timeout); off ends the outage.")
@click.option("--tls-probe", type=click.Choice(["old-tls", "weak-suites", "off"]),
              help="Serve at STARTTLS only TLS 1.0/1.1, or only suites outside ECO.1.1.3; off ends it.")
@click.option("--end-psc-sessions", metavar="NATIONAL_ID",
              help="End every PSC session of this professional (back-channel logout, refresh refused).")
@click.option("--clear", is_flag=True, help="Remove every fault.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the fault state as JSON, alone on stdout (the default output; the flag says so).")
def fault(
    state_dir: Path,
    psc_unavailable: bool | None,
    delay: float | None,
    fail_auth: int | None,
    code: str,
    bal: str | None,
    end_sessions: str | None,
    reject_next_token: bool,
    crl_outage: str | None,
    tls_probe: str | None,
    end_psc_sessions: str | None,
    clear: bool,
    as_json: bool,
) -> None:
    """Inject faults into a running sandbox, then print the fault state (JSON, alone on stdout).

    \f
    Raises:
        ConfigError: no sandbox.json in STATE_DIR.
        UsageError: --reject-next-token without --bal.
        ConnectError: the sandbox does not answer.
        MssanteError: the sandbox refused the request.
    """
    if reject_next_token and not bal:
        raise UsageError(_("--reject-next-token needs --bal (a BAL PER/ORG)"))
    if clear:
        _api(state_dir, "DELETE", "/faults")
    payload: dict[str, Any] = {}
    if reject_next_token:
        payload["reject_next_token"] = {"bal": bal}
    if crl_outage is not None:
        payload["crl_outage"] = None if crl_outage == "off" else crl_outage
    if tls_probe is not None:
        payload["tls_probe"] = None if tls_probe == "off" else tls_probe
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
        n = int(ended["ended"])  # stdout is the JSON fault state only
        click.echo(ngettext("{n} session ended", "{n} sessions ended", n).format(n=n), err=True)
    if end_psc_sessions:
        ended = _api(state_dir, "DELETE", f"/psc/sessions/{end_psc_sessions}")
        n = int(ended["ended"])
        click.echo(ngettext("{n} PSC session ended", "{n} PSC sessions ended", n).format(n=n), err=True)
    click.echo(json.dumps(_api(state_dir, "GET", "/faults"), indent=2))


@sandbox.command("journal")
@_STATE_DIR
@click.option("--bal", help="Only this BAL's sessions.")
@click.option("--front", help="Only this front (imap-psc, imap-authcli, smtp-psc, smtp-authcli).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON Lines alone on stdout (the default output; the flag says so).")
def journal(state_dir: Path, bal: str | None, front: str | None, as_json: bool) -> None:
    """Print the session journal of a running sandbox as JSON Lines (one session per line)."""
    query = "&".join(f"{k}={v}" for k, v in (("bal", bal), ("front", front)) if v)
    for record in _api(state_dir, "GET", "/journal" + (f"?{query}" if query else "")):
        click.echo(json.dumps(record, ensure_ascii=False, sort_keys=True))


def _fronts(info: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(protocol, front, host name, port) of the four fronts."""
    try:
        return [(proto, front, str(info[proto][front]["host"]), int(info[proto][front]["port"]))
                for proto in ("imap", "smtp") for front in ("psc", "authcli")]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            _("sandbox.json does not describe the IMAP/SMTP fronts ({reason})").format(reason=exc)) from None


@sandbox.command("hosts")
@_STATE_DIR
def hosts(state_dir: Path) -> None:
    """Print hosts-file lines for the sandbox's front host names (append them to /etc/hosts).

    With them, curl, msmtp, neomutt or Jakarta Mail reach the fronts by name, and check the
    server certificates against those names, without the sandbox DNS. Ports stay those of
    sandbox.json (pin them with [ports] in the configuration, see docs/sandbox-config.md).

    \f
    Raises:
        ConfigError: no sandbox.json in STATE_DIR, or it is unreadable.
    """
    info = _read_state(state_dir)
    address = str(info.get("dns", {}).get("host") or "127.0.0.1")
    click.echo("# " + _("MSSanté sandbox ({path}): lines for /etc/hosts").format(path=state_dir / "sandbox.json"))
    for proto, front, host, port in _fronts(info):
        click.echo(f"{address}\t{host}\t# {proto.upper()} front {front}, port {port}")


async def _access_token(info: dict[str, Any], national_id: str, channel: str, wait: float) -> str:
    from mssante.psc import PSCClient, PSCSettings

    client = PSCClient(PSCSettings.from_sandbox(info))
    try:
        request = await client.start_ciba(national_id, channel="CARD" if channel == "CARD" else "MOBILE")
        tokens = await client.wait_ciba(request, timeout=wait)
    finally:
        await client.aclose()
    return tokens.access_token.reveal()


@sandbox.command("token")
@_STATE_DIR
@click.argument("who", metavar="NATIONAL_ID|BAL")
@click.option("--channel", type=click.Choice(["MOBILE", "CARD"]), default="MOBILE", show_default=True,
              help="CIBA channel: e-CPS (MOBILE) or CPx card (CARD).")
@click.option("--timeout", type=click.FloatRange(1, 600), default=120, show_default=True,
              help="Seconds to wait for the simulated professional's approval.")
def token(state_dir: Path, who: str, channel: str, timeout: float) -> None:
    """Print a PSC access token for a test professional (CIBA done for you), and nothing else.

    WHO is the professional's national id, or a BAL address (its first holder). The request
    carries what PSC requires: scope "openid scope_all", acr_values=eidas1, login_hint = the
    national id, the sandbox's registered client. The token lives as the sandbox's lifetimes
    say (2 minutes by default): run the command again for a new one. Use it as
    `--token-command "mssante sandbox token --state-dir DIR ID"`, with
    `curl --oauth2-bearer "$(mssante sandbox token ...)"`, or msmtp's passwordeval.

    \f
    Raises:
        ConfigError: no sandbox.json, or it does not describe PSC.
        UsageError: WHO is neither a professional nor a PER/ORG BAL of the sandbox.
        PSCError: PSC refused (e.g. a professional configured to deny CIBA).
        TransportError: the sandbox does not answer.
    """
    info = _read_state(state_dir)
    national_id = who
    if "@" in who:
        bal = next((b for b in info.get("bals", ()) if str(b.get("address", "")).lower() == who.lower()), None)
        if bal is None or not bal.get("holders"):
            raise UsageError(
                _("{who} is not a BAL PER/ORG of this sandbox (a BAL APP has no PSC token)").format(who=who))
        national_id = str(bal["holders"][0])
    known = {str(p.get("national_id")) for p in info.get("professionals", ())}
    if national_id not in known:
        raise UsageError(_("no professional of this sandbox has the national id {id} (known: {known})").format(
            id=national_id, known=", ".join(sorted(known))))
    click.echo(asyncio.run(_access_token(info, national_id, channel, timeout)))


with contextlib.suppress(ImportError):
    from mssante.cli._pki import pki

    sandbox.add_command(pki)
