"""``mssante fleet``: watch many BALs with worker processes coordinated through Redis.

``worker`` runs one worker; ``add``/``remove``/``list`` edit the desired set (credential
*references* only: a structure id for APP, a bridge session id for PER/ORG, which the LPS that owns
the session delegated to the fleet's installation: ``mssante bridge delegate``); ``status`` shows
the workers and their figures; ``events`` reads the event stream with a consumer group, the way
an LPS does (XREADGROUP, then XACK once handled). Output follows ``--lang`` (French by default,
through :mod:`mssante._i18n`; the library's errors are told again in the user's words); ``--json`` for
programs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mssante._i18n import N_
from mssante._i18n import gettext as _
from mssante.cli._bridge_delegation import secret_from
from mssante.client import ConnectionSettings, MailboxOptions, TrustSettings
from mssante.discovery import DNSPythonResolver
from mssante.errors import ConfigError, TransportError, UsageError
from mssante.fleet import (
    BALSpec,
    EventReader,
    FleetStore,
    Keys,
    MailboxConnector,
    Worker,
    WorkerSettings,
    serve_http,
)

__all__ = ["fleet"]

T = TypeVar("T")
_KINDS = click.Choice(["PER", "ORG", "APP"], case_sensitive=False)
_KIND_NAMES = {"PER": N_("personal"), "ORG": N_("organisational"), "APP": N_("application")}


def _redis_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--prefix", default="mssante:fleet", show_default=True,
                      help="Prefix of the fleet's Redis keys (several fleets can share a Redis).")(fn)
    return click.option("--redis", "redis_url", envvar="MSSANTE_FLEET_REDIS", default="redis://127.0.0.1:6379/0",
                        show_default=True, help="Redis URL (or MSSANTE_FLEET_REDIS).")(fn)


def _json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


def _with_store(redis_url: str, prefix: str, work: Callable[[FleetStore], Awaitable[T]]) -> T:
    async def run() -> T:
        try:
            store = FleetStore.from_url(redis_url, keys=Keys(prefix))
        except ValueError as exc:
            raise UsageError(_("--redis: not a Redis URL ({reason})").format(reason=exc)) from None
        try:
            async with store.session():
                return await work(store)
        except TransportError as exc:  # the store's English text, told with the option at fault
            raise TransportError(_("Redis is unreachable at {url} (--redis or MSSANTE_FLEET_REDIS): {reason}").format(
                url=redis_url, reason=exc.message.removeprefix("Redis is unreachable: "))) from exc

    return asyncio.run(run())


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


@click.group("fleet")
def fleet() -> None:
    """Watch many BALs with worker processes coordinated through Redis."""


# -- the desired set -------------------------------------------------------------------------------
@fleet.command("add")
@click.argument("address")
@click.option("--kind", type=_KINDS, required=True, help="BAL kind.")
@click.option("--ref", "--session", "ref", required=True,
              help="Credential reference: structure id (APP, names <dir>/<ref>.p12 or .pfx, else <ref>.pem + .key) "
                   "or bridge session id "
                   "(PER/ORG, delegated to the fleet's installation). Never a secret.")
@click.option("--folder", default="INBOX", show_default=True, help="Folder to watch.")
@click.option("--check-bridge", "bridge_url", metavar="URL",
              help="PER/ORG: first check at this bridge that the session is delegated to the fleet's installation "
                   "(--installation-id, secret in --bridge-secret-file or MSSANTE_BRIDGE_SECRET).")
@click.option("--installation-id", help="The fleet's bridge installation id (with --check-bridge).")
@click.option("--bridge-secret-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the fleet's installation secret (else MSSANTE_BRIDGE_SECRET).")
@_redis_option
@_json_option
def add(address: str, kind: str, ref: str, folder: str, bridge_url: str | None, installation_id: str | None,
        bridge_secret_file: Path | None, redis_url: str, prefix: str, as_json: bool) -> None:
    """Watch ADDRESS (or change how it is reached; clears a stopped mark).

    \f
    Raises:
        UsageError: bad address, kind or reference (a token instead of a reference); with
            --check-bridge, a session not delegated to the fleet's installation.
        TransportError: Redis is unreachable.
        AuthUnavailable: the bridge is unreachable (--check-bridge).
        ConfigError: the bridge refused the fleet's installation credentials (--check-bridge).
    """
    spec = _spec(address, kind, ref, folder)
    if bridge_url is not None:
        if spec.kind == "APP":
            raise UsageError(_("--check-bridge applies to BAL PER and ORG only"))
        if not installation_id:
            raise UsageError(_("--check-bridge needs --installation-id (the fleet's bridge installation)"))
        secret = secret_from(bridge_secret_file, "MSSANTE_BRIDGE_SECRET", _("the fleet's installation secret"))
        asyncio.run(_check_delegated(bridge_url, installation_id, secret, spec.ref))
    _with_store(redis_url, prefix, lambda store: store.add(spec))
    if as_json:
        _echo_json({"added": address, "kind": spec.kind, "ref": spec.ref, "folder": spec.folder})
    else:
        click.echo(_("BAL added: {address} ({kind}, reference {ref}, folder {folder})").format(
            address=address, kind=_(_KIND_NAMES[spec.kind]), ref=spec.ref, folder=spec.folder))


def _spec(address: str, kind: str, ref: str, folder: str) -> BALSpec:
    """The BAL to add; the library's refusal told with the argument at fault."""
    try:
        return BALSpec(address=address, kind=kind.upper(), ref=ref, folder=folder)  # type: ignore[arg-type]
    except UsageError as exc:
        if exc.message.startswith("not a BAL address"):
            message = _("ADDRESS {address} is not a BAL address (name@domain)").format(address=address)
        elif exc.message.startswith("folder"):
            message = _("--folder must be 1 to 200 characters")
        else:  # the reference: never echoed, it may be a token given by mistake
            message = _("--ref must be a short credential reference (a structure id or a bridge session id), "
                        "never a secret such as a token")
        raise UsageError(message) from exc


async def _check_delegated(bridge_url: str, installation_id: str, secret: str, session_id: str) -> None:
    """Ask the bridge for a token of ``session_id`` as the fleet's installation (a delegate), then forget it."""
    from mssante.bridge.client import BridgeClient
    from mssante.errors import PSCError

    async with BridgeClient(bridge_url, installation_id, secret, timeout=15) as client:
        source = client.delegated(session_id, listen=False)
        try:
            await source.token()
        except PSCError as exc:
            raise UsageError(_("the bridge session {session} is not delegated to the installation {installation} "
                               "(or it is over): {reason}").format(session=session_id, installation=installation_id,
                                                                  reason=exc.message)) from None
        finally:
            await source.aclose()


@fleet.command("remove")
@click.argument("address")
@_redis_option
@_json_option
def remove(address: str, redis_url: str, prefix: str, as_json: bool) -> None:
    """Stop watching ADDRESS (its worker lets it go at its next tick).

    \f
    Raises:
        UsageError: ADDRESS is not watched.
        TransportError: Redis is unreachable.
    """
    if not _with_store(redis_url, prefix, lambda store: store.remove(address)):
        raise UsageError(_("BAL not in the fleet: {address}").format(address=address))
    if as_json:
        _echo_json({"removed": address})
    else:
        click.echo(_("BAL removed: {address}").format(address=address))


async def _listing(store: FleetStore) -> list[dict[str, Any]]:
    bals = await store.bals()
    stopped = await store.stopped()
    rows = []
    for address, spec in sorted(bals.items()):
        holder = await store.holder(address)
        checkpoint = await store.redis.hgetall(store.keys.checkpoint(address))
        rows.append({"address": address, "kind": spec.kind, "ref": spec.ref, "folder": spec.folder,
                     "worker": holder.split("|")[0] if holder else None,
                     "uidvalidity": int(checkpoint["uidvalidity"]) if checkpoint else None,
                     "last_uid": int(checkpoint["uid"]) if checkpoint else None,
                     "stopped": stopped.get(address)})
    return rows


@fleet.command("list")
@_redis_option
@_json_option
def list_command(redis_url: str, prefix: str, as_json: bool) -> None:
    """List the watched BALs: kind, reference, worker, checkpoint, stop reason.

    \f
    Raises:
        TransportError: Redis is unreachable.
    """
    rows = _with_store(redis_url, prefix, _listing)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo(_("No BAL in the fleet."))
    for row in rows:
        where = _("watched by {worker}").format(worker=row["worker"]) if row["worker"] else _("not watched")
        if row["stopped"]:
            where = _("stopped ({reason})").format(reason=row["stopped"])
        mark = _(", last UID published {uid}").format(uid=row["last_uid"]) if row["last_uid"] is not None else ""
        click.echo(_("{address} [{kind}, reference {ref}] {state}{mark}").format(
            address=row["address"], kind=row["kind"], ref=row["ref"], state=where, mark=mark))


async def _status(store: FleetStore) -> dict[str, Any]:
    workers = await store.workers()
    bals = await store.bals()
    stopped = await store.stopped()
    groups: list[dict[str, Any]] = []
    with contextlib.suppress(Exception):  # no stream yet
        groups = [{k: v for k, v in g.items() if k in ("name", "consumers", "pending", "lag")}
                  for g in await store.redis.xinfo_groups(store.keys.events)]
    length = int(await store.redis.xlen(store.keys.events))
    held = sum(int(w.get("bals", 0)) for w in workers.values())
    lags = sorted(((v[0], a) for a, v in (await store.lags(sorted(bals))).items() if v and v[0] >= 0), reverse=True)
    lag = {"bals": len(lags), "max_ms": lags[0][0] if lags else None,
           "p50_ms": lags[len(lags) // 2][0] if lags else None,
           "worst": [{"bal": a, "lag_ms": ms} for ms, a in lags[:5]]}
    return {"bals": len(bals), "held": held, "stopped": len(stopped), "unwatched": len(bals) - len(stopped) - held,
            "events": length, "groups": groups, "lag": lag,
            "workers": {wid: {k: int(v) if v.lstrip("-").isdigit() else v for k, v in figures.items()}
                        for wid, figures in sorted(workers.items())}}


@fleet.command("status")
@_redis_option
@_json_option
def status(redis_url: str, prefix: str, as_json: bool) -> None:
    """Workers alive and their BALs, lag, reconnections and failures; the stream and its readers.

    \f
    Raises:
        TransportError: Redis is unreachable.
    """
    data = _with_store(redis_url, prefix, _status)
    if as_json:
        _echo_json(data)
        return
    click.echo(_("BAL: {bals} in the fleet, {held} watched, {unwatched} waiting for a worker, "
                 "{stopped} stopped").format(bals=data["bals"], held=data["held"], unwatched=data["unwatched"],
                                             stopped=data["stopped"]))
    click.echo(_("Active workers: {count}").format(count=len(data["workers"])))
    for wid, w in data["workers"].items():
        click.echo(_("  {worker}: {bals}/{capacity} BAL, {published} messages published, lag {lag} ms, "
                     "{reconnects} reconnections, {failures} failures, {redis_errors} Redis errors").format(
            worker=wid, bals=w.get("bals", 0), capacity=w.get("capacity", "?"), published=w.get("published", 0),
            lag=w.get("lag_ms", 0), reconnects=w.get("reconnects", 0), failures=w.get("failures", 0),
            redis_errors=w.get("redis_errors", 0)) + ", "
                   + _("{out} BALs handed over, {taken} taken by handover, {connecting} connecting").format(
                       out=w.get("handovers_out", 0), taken=w.get("handovers_in", 0),
                       connecting=w.get("connecting", 0)))
    if data["lag"]["bals"]:
        worst = ", ".join(f"{w['bal']} {w['lag_ms']} ms" for w in data["lag"]["worst"])
        click.echo(_("Lag per BAL (arrival → publication of the last message): median {p50} ms, max {max} ms; "
                     "most behind: {worst}").format(p50=data["lag"]["p50_ms"], max=data["lag"]["max_ms"],
                                                    worst=worst))
    click.echo(_("Event stream: {count} entries").format(count=data["events"]))
    for g in data["groups"]:
        click.echo(_("  group {name}: {pending} waiting for acknowledgement, {lag} unread").format(
            name=g.get("name"), pending=g.get("pending"), lag=g.get("lag")))


# -- the LPS's side ----------------------------------------------------------------------------------
@fleet.command("events")
@click.option("--group", required=True, help="Consumer group (one per application).")
@click.option("--consumer", required=True, help="This reader's name in the group.")
@click.option("--count", type=click.IntRange(min=1), default=100, show_default=True, help="Most events per read.")
@click.option("--follow", is_flag=True, help="Keep reading (XREADGROUP BLOCK) until interrupted.")
@click.option("--no-ack", is_flag=True, help="Do not acknowledge what was printed (XACK).")
@_redis_option
@_json_option
def events(group: str, consumer: str, count: int, follow: bool, no_ack: bool, redis_url: str, prefix: str,
           as_json: bool) -> None:
    """Read the fleet's events with a consumer group and acknowledge them, as an LPS does.

    \f
    Raises:
        TransportError: Redis is unreachable.
    """

    async def work(store: FleetStore) -> None:
        reader = EventReader(store, group=group, consumer=consumer)
        await reader.ensure_group()
        pending = True  # first what this consumer read and did not acknowledge (a crash)
        while True:
            batch = await reader.read(count=count, pending=pending, block_ms=5000 if follow and not pending else None)
            for event in batch:
                if as_json:
                    _echo_json({"id": event.id, **event.fields})
                else:
                    click.echo(_describe(event.fields))
            if batch and not no_ack:
                await reader.ack(*batch)
            if pending and not batch:
                pending = False
            elif not batch and not follow:
                return

    _with_store(redis_url, prefix, work)


def _describe(fields: dict[str, str]) -> str:
    kind, bal = fields.get("kind"), fields.get("bal")
    if kind == "message":
        return _("{bal}: new message UID {uid} (UIDVALIDITY {uidvalidity}) from {sender} “{subject}” {message_id}, "
                 "{size} octets").format(bal=bal, uid=fields.get("uid"), uidvalidity=fields.get("uidvalidity"),
                                         sender=fields.get("from"), subject=fields.get("subject"),
                                         message_id=fields.get("message_id"), size=fields.get("size"))
    if kind == "uidvalidity-changed":
        return _("{bal}: UIDVALIDITY changed ({previous} → {uidvalidity}), the folder is published again").format(
            bal=bal, previous=fields.get("previous"), uidvalidity=fields.get("uidvalidity"))
    if kind == "psc-session-ended":
        return _("{bal}: PSC session ended, watch stopped ({reason})").format(bal=bal, reason=fields.get("reason"))
    return _("{bal}: error, watch stopped ({reason})").format(bal=bal, reason=fields.get("reason"))


# -- the worker --------------------------------------------------------------------------------------
#: ``extra`` keys of the fleet's log records (never a secret: addresses, counts, error texts).
_LOG_FIELDS = ("worker", "bal", "event", "reason", "error", "uid", "count", "bals", "target", "left")


class _JSONLines(logging.Formatter):
    """One JSON object per log record: time, level, logger, message and the fleet's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        data.update({k: getattr(record, k) for k in _LOG_FIELDS if hasattr(record, k)})
        if record.exc_info and record.exc_info[0] is not None:
            data["exception"] = record.exc_info[0].__name__  # the type only: a message could carry anything
        return json.dumps(data, ensure_ascii=False, default=str)


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, _sep, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(_("{option} must be HOST:PORT, not {value!r}").format(option=what, value=value))
    return host.strip("[]"), int(port)


async def _serve(runner: Worker, host: str, port: int) -> asyncio.Server:
    """The worker's ``/healthz`` and ``/metrics`` at ``--http``, before it takes any BAL.

    Raises:
        ConfigError: the address cannot be listened on (the port taken by another program, a host not of this
            machine, a privileged port).
    """
    try:
        return await serve_http(runner, host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = _("--http {host}:{port}: this port is already in use (another worker or program listens "
                        "there); choose another one").format(host=host, port=port)
        else:
            message = _("--http {host}:{port}: cannot listen there ({reason})").format(
                host=host, port=port, reason=exc.strerror or exc)
        raise ConfigError(message) from None


def _resolve_map(values: tuple[str, ...]) -> dict[str, str]:
    return _pairs(values, "--resolve")


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a dict (``--resolve HOST=IP``, ``--operator DOMAIN=NAME``).

    Raises:
        UsageError: a value without ``=`` or with an empty side.
    """
    out = {}
    for value in values:
        name, sep, target = value.partition("=")
        if not sep or not name or not target:
            raise UsageError(_("{option} must be NAME=VALUE, not {value!r}").format(option=option, value=value))
        out[name] = target
    return out


@fleet.command("worker")
@click.option("--capacity", type=click.IntRange(min=1), required=True, help="Most BALs this worker watches.")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="PEM file of the IGC Santé CAs.")
@click.option("--certificates", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory of the BAL APP certificates, per structure: <ref>.p12 or <ref>.pfx (PKCS#12), "
                   "else <ref>.pem + <ref>.key; a password in <ref>.password (chmod 600) "
                   "or MSSANTE_CERT_PASSWORD_<REF>.")
@click.option("--bridge", "bridge_url", help="Bridge URL (BAL PER/ORG).")
@click.option("--installation-id",
              help="The fleet's bridge installation id (its secret: --bridge-secret-file or MSSANTE_BRIDGE_SECRET).")
@click.option("--bridge-secret-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the fleet's installation secret (else MSSANTE_BRIDGE_SECRET).")
@click.option("--session-secrets", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Directory of <session id> files holding each bridge session's secret; without it, PER/ORG "
                   "sessions are those delegated to the fleet's installation (mssante bridge delegate).")
@click.option("--lease-ttl", type=click.FloatRange(min=0.1), default=15.0, show_default=True,
              help="Seconds a lease lives unrenewed: a dead machine's BALs move after this.")
@click.option("--connect-rate", type=click.FloatRange(min=0.01), default=20.0, show_default=True,
              help="Most new IMAP connections per second from this worker.")
@click.option("--connect-burst", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--operator-rate", type=click.FloatRange(min=0), default=100.0, show_default=True,
              help="Most new connections per second toward one operator, for the whole fleet (0: no limit).")
@click.option("--operator-burst", type=click.IntRange(min=1), default=20, show_default=True,
              help="Connections toward one operator the whole fleet may open back to back.")
@click.option("--operator", "operators", multiple=True, metavar="DOMAIN=NAME",
              help="The operator hosting the BALs of DOMAIN: the domains of one operator share its limit "
                   "(repeatable; a domain not named is its own operator).")
@click.option("--stream-maxlen", type=click.IntRange(min=0), default=0, show_default=True,
              help="Trim the event stream to about this many entries (0: never; the LPS trims after XACK).")
# -- fast failure detection (wt/fleet) --
@click.option("--presence-grace", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds a peer's presence connection to Redis must be gone before its BALs are taken over "
                   "(a killed worker: about this long; a dead machine: --lease-ttl). 0: lease TTL only.")
# -- end fast failure detection --
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=None,
              help="Seconds a clean stop (SIGTERM, Ctrl-C) waits for the other workers to take this worker's BALs "
                   "by handover, each watched until its new worker's session is up, before releasing the rest "
                   "(default: 3 x --lease-ttl; 0: release at once).")
@click.option("--dns", "dns_server", metavar="HOST:PORT", help="Ask this DNS server for SRV records.")
@click.option("--resolve", multiple=True, metavar="HOST=IP", help="Connect to IP for HOST (checked by name).")
@click.option("--idle-refresh", type=click.FloatRange(min=1), default=29 * 60.0, show_default=True,
              help="Seconds before IDLE is renewed (RFC 2177: at most 29 min).")
@click.option("--id", "worker_id", help="Worker name (default: random).")
@click.option("--no-x-mss", is_flag=True, help="Do not fetch the X-MSS header fields for message events.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default="INFO",
              show_default=True, help="Structured logs (JSON lines on stderr) from this level.")
@click.option("--http", "http_at", metavar="HOST:PORT", help="Serve /healthz and /metrics (Prometheus) here.")
@_redis_option
def worker(capacity: int, ca_bundle: Path, certificates: Path | None, bridge_url: str | None,
           installation_id: str | None, bridge_secret_file: Path | None, session_secrets: Path | None,
           lease_ttl: float, connect_rate: float,
           connect_burst: int, operator_rate: float, operator_burst: int, operators: tuple[str, ...],
           stream_maxlen: int, presence_grace: float, drain_timeout: float | None,
           dns_server: str | None,
           resolve: tuple[str, ...],
           idle_refresh: float, worker_id: str | None, no_x_mss: bool, log_level: str, http_at: str | None,
           redis_url: str, prefix: str) -> None:
    """Run a fleet worker until SIGTERM or Ctrl-C (then its BALs are handed over to the other workers, the
    leases left released).

    \f
    Raises:
        UsageError: bad options (a bridge without installation or secret).
        ConfigError: ``--http`` cannot be listened on (its port already in use).
    """
    handler = logging.StreamHandler()
    handler.setFormatter(_JSONLines())
    fleet_log = logging.getLogger("mssante.fleet")
    fleet_log.addHandler(handler)
    fleet_log.setLevel(log_level)
    fleet_log.propagate = False
    resolver = None
    if dns_server:
        host, port = _host_port(dns_server, "--dns")
        resolver = DNSPythonResolver(nameservers=[host], port=port)
    http = _host_port(http_at, "--http") if http_at else None
    options = MailboxOptions(connection=ConnectionSettings(resolve=_resolve_map(resolve), idle_refresh=idle_refresh))
    settings = WorkerSettings(capacity=capacity, lease_ttl=lease_ttl, connect_rate=connect_rate,
                              connect_burst=connect_burst, operator_rate=operator_rate or None,
                              operator_burst=operator_burst, operators=_pairs(operators, "--operator"),
                              x_mss=not no_x_mss,
                              presence_interval=0.25 if presence_grace else None, presence_grace=presence_grace,
                              drain_timeout=drain_timeout)

    async def run() -> None:
        bridge = None
        if bridge_url:
            if not installation_id:
                raise UsageError(_("--bridge needs --installation-id (the fleet's bridge installation)"))
            secret = secret_from(bridge_secret_file, "MSSANTE_BRIDGE_SECRET", _("the fleet's installation secret"))
            from mssante.bridge.client import BridgeClient

            bridge = BridgeClient(bridge_url, installation_id, secret)
            if session_secrets is None:
                click.echo(_("BAL PER/ORG: sessions delegated to the installation {installation} at {bridge}").format(
                    installation=installation_id, bridge=bridge_url), err=True)
            else:
                click.echo(_("BAL PER/ORG: session secrets read from {directory}").format(directory=session_secrets),
                           err=True)
        connector = MailboxConnector(tls=TrustSettings(ca_bundle=ca_bundle), certificates=certificates,
                                     bridge=bridge, session_secrets=session_secrets, resolver=resolver,
                                     options=options)
        store = FleetStore.from_url(redis_url, keys=Keys(prefix), stream_maxlen=stream_maxlen)
        runner = Worker(store, connector, settings=settings, worker_id=worker_id)
        loop = asyncio.get_running_loop()
        def stop() -> None:
            if runner.watches and settings.drain_s > 0:
                click.echo(_("Worker {worker} stopping: its BALs go to the other workers by handover (at most "
                             "{seconds:g} s)").format(worker=runner.id, seconds=settings.drain_s), err=True)
            runner.shutdown()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        server = None
        try:
            if http:
                server = await _serve(runner, *http)
                bound = server.sockets[0].getsockname()
                click.echo(_("Health and metrics: http://{host}:{port}/healthz and /metrics").format(
                    host=bound[0], port=bound[1]), err=True)
            click.echo(_("Worker {worker} started (capacity {capacity} BAL, lease {ttl} s)").format(
                worker=runner.id, capacity=capacity, ttl=f"{lease_ttl:g}"), err=True)
            await runner.run()
        finally:
            if server is not None:
                server.close()
            await store.aclose()
            if bridge is not None:
                await bridge.aclose()
        click.echo(_("Worker {worker} stopped, leases released ({handed} BALs handed over since it started)").format(
            worker=runner.id, handed=runner.figures.handovers_out), err=True)

    asyncio.run(run())
