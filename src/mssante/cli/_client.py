"""``mssante discover | send | fetch | watch``: the client library from the command line.

Commands only parse options and print; the work is :mod:`mssante.client`. Errors are raised
as :mod:`mssante.errors` exceptions: the main CLI prints them on one line with the exit code
of their family (never a traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import dns.asyncresolver
import dns.exception

from mssante._i18n import gettext as _
from mssante._i18n import ngettext as _n
from mssante.cli._advice import certificate_problem, missing_ca_bundle, refused_recipients, rejected_credentials
from mssante.client import ConnectionSettings, Mailbox, MailboxOptions, MessageSummary, TrustSettings
from mssante.credentials import (
    CertificateFileError,
    ClientCertificate,
    CommandTokenSource,
    EnvTokenSource,
    password_file,
)
from mssante.discovery import DNSPythonResolver, Front, MailServers, ManualServers, discover
from mssante.errors import CommandFailed, DiscoveryError, TokenRejected, UsageError
from mssante.message import Draft, DSNRequest, Sender
from mssante.secret import Secret

__all__ = ["discover_command", "fetch", "send", "watch"]

T = TypeVar("T")
_KINDS = click.Choice(["PER", "ORG", "APP"], case_sensitive=False)


def _host_port(value: str | None, what: str) -> tuple[str, int] | None:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(_("{option} must be HOST:PORT, not {value!r}").format(option=what, value=value))
    return host.strip("[]"), int(port)


def _front(kind: str) -> Front:
    return Front.AUTH_CLI if kind.upper() == "APP" else Front.PSC


def _resolver(dns_server: str | None) -> DNSPythonResolver | None:
    server = _host_port(dns_server, "--dns")
    return None if server is None else DNSPythonResolver(nameservers=[server[0]], port=server[1])


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


# -- discover ---------------------------------------------------------------------------------------
@click.command("discover")
@click.argument("address")
@click.option("--kind", type=_KINDS, help="Only the front of this BAL kind (default: both fronts).")
@click.option("--dns", "dns_server", metavar="HOST:PORT", help="Ask this DNS server (e.g. the sandbox's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def discover_command(address: str, kind: str | None, dns_server: str | None, as_json: bool) -> None:
    """Find the IMAP and submission servers of ADDRESS by DNS SRV (ECO.1.1.9, EX_LPS_0300).

    \f
    Raises:
        UsageError: ADDRESS is not a mail address.
        DiscoveryError: no usable SRV record, or DNS failed.
    """
    fronts = [_front(kind)] if kind else [Front.PSC, Front.AUTH_CLI]

    async def run() -> list[MailServers]:
        resolver = _resolver(dns_server)
        return [await discover(address, front=front, resolver=resolver) for front in fronts]

    found = asyncio.run(run())
    if as_json:
        _echo_json({"address": address, "fronts": {
            str(s.front.name): {service: [{"host": e.host, "port": e.port, "priority": e.priority, "weight": e.weight}
                                          for e in getattr(s, service)] for service in ("imap", "submission")}
            for s in found}})
        return
    for servers in found:
        for service in ("imap", "submission"):
            for e in getattr(servers, service):
                click.echo(f"{servers.front.name:<8} {service:<10} {e.host}:{e.port} " + _(
                    "(priority {priority}, weight {weight})").format(priority=e.priority, weight=e.weight))


# -- the options shared by send / fetch / watch -----------------------------------------------------
@dataclass(frozen=True)
class _BoxOptions:
    address: str
    kind: str
    dns: str | None
    imap: str | None
    smtp: str | None
    tls_name: str | None
    ca_bundle: Path | None
    token_env: str | None
    token_command: str | None
    cert: Path | None
    key: Path | None
    cert_password_file: Path | None
    cert_password_env: str | None
    as_json: bool
    timeout: float


def _mailbox_options(command: Callable[..., None]) -> Callable[..., None]:
    decorators = [
        click.argument("address"),
        click.option("--kind", type=_KINDS, required=True, help="BAL kind: PER/ORG (PSC token) or APP (certificate)."),
        click.option("--dns", "dns_server", metavar="HOST:PORT", help="DNS server for SRV discovery and host names."),
        click.option("--imap", metavar="HOST:PORT", help="IMAP server instead of DNS discovery."),
        click.option("--smtp", metavar="HOST:PORT", help="Submission server instead of DNS discovery."),
        click.option("--tls-name", metavar="NAME", help="Name the certificate must carry when connecting by IP."),
        click.option("--ca-bundle", type=click.Path(dir_okay=False, path_type=Path),
                     help="PEM file of the trusted CAs (IGC Santé)."),
        click.option("--token-env", metavar="VAR", help="PER/ORG: read the PSC access token from this variable."),
        click.option("--token-command", metavar="CMD", help="PER/ORG: a command printing the PSC access token."),
        click.option("--cert", type=click.Path(dir_okay=False, path_type=Path),
                     help="APP: the AUTH_CLI certificate (PEM with --key, or a PKCS#12 .p12/.pfx alone)."),
        click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="APP: its private key (PEM)."),
        click.option("--cert-password-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="APP: file (chmod 600) holding the password of the .p12/.pfx or of an encrypted key."),
        click.option("--cert-password-env", metavar="VAR",
                     help="APP: environment variable holding that password."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
        click.option("--timeout", type=float, default=30.0, show_default=True, help="Network timeout in seconds."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _box_options(kw: dict[str, Any]) -> _BoxOptions:
    names = ("address", "kind", "dns_server", "imap", "smtp", "tls_name", "ca_bundle", "token_env", "token_command",
             "cert", "key", "cert_password_file", "cert_password_env", "as_json", "timeout")
    values = [kw.pop(n) for n in names]
    values[1] = str(values[1]).upper()
    return _BoxOptions(*values)


async def _a_records(names: set[str], dns_server: str) -> dict[str, str]:
    host, port = _host_port(dns_server, "--dns") or ("", 0)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = [host], port, 5.0
    out = {}
    for name in names:
        try:
            answer = await resolver.resolve(name, "A", search=False)
        except dns.exception.DNSException as exc:
            raise DiscoveryError(_("{name}: no address from {server}: {reason}").format(
                name=name, server=dns_server, reason=type(exc).__name__)) from exc
        out[name] = answer[0].to_text()
    return out


def _certificate(opts: _BoxOptions) -> ClientCertificate:
    """The APP certificate the options name, checked: PEM --cert + --key, or a PKCS#12 --cert; its password."""
    try:
        password: Secret | None = None
        if opts.cert_password_file is not None:
            password = password_file(opts.cert_password_file)
        elif opts.cert_password_env:
            value = os.environ.get(opts.cert_password_env)
            if value is None:
                raise UsageError(_("--cert-password-env: the variable {name} is not set").format(
                    name=opts.cert_password_env))
            password = Secret(value)
        if opts.cert is not None and opts.key is None and opts.cert.suffix.lower() in (".p12", ".pfx"):
            certificate = ClientCertificate.from_pkcs12(opts.cert, password)
        elif opts.cert is None or opts.key is None:
            raise UsageError(_("a BAL APP needs --cert and --key, or --cert with a PKCS#12 file (.p12/.pfx) "
                               "(IGC Santé ORG AUTH_CLI)"))
        else:
            certificate = ClientCertificate(cert=opts.cert, key=opts.key, password=password)
        certificate.check()
    except CertificateFileError as exc:
        raise certificate_problem(exc) from exc
    return certificate


async def _open(opts: _BoxOptions, *, product_reference: str | None = None, sent_copy: bool = True) -> Mailbox:
    imap, smtp = _host_port(opts.imap, "--imap"), _host_port(opts.smtp, "--smtp")
    resolve: dict[str, str] = {}
    if opts.tls_name:
        hosts = {hp[0] for hp in (imap, smtp) if hp is not None}
        if len(hosts) != 1:
            raise UsageError(_("--tls-name needs --imap and/or --smtp on one host"))
        resolve[opts.tls_name.lower()] = hosts.pop()
        imap = (opts.tls_name, imap[1]) if imap else None
        smtp = (opts.tls_name, smtp[1]) if smtp else None
    servers: MailServers | ManualServers = ManualServers(imap=imap, submission=smtp)
    if imap is None and smtp is None:  # with a manual server, the other one is discovered when needed
        servers = await discover(opts.address, front=_front(opts.kind), resolver=_resolver(opts.dns))
        if opts.dns:  # the SRV targets' names may exist only in that DNS (the sandbox's)
            resolve.update(await _a_records({e.host for e in (*servers.imap, *servers.submission)}, opts.dns))
    if opts.ca_bundle is None:
        raise missing_ca_bundle()
    credentials: Any
    if opts.kind == "APP":
        credentials = _certificate(opts)
    elif opts.token_env:
        credentials = EnvTokenSource(opts.token_env)
    elif opts.token_command:
        credentials = CommandTokenSource(opts.token_command)
    else:
        raise UsageError(_("a BAL {kind} needs --token-env VAR or --token-command CMD (PSC access token)").format(
            kind=opts.kind))
    connection = ConnectionSettings(connect_timeout=opts.timeout, command_timeout=opts.timeout, resolve=resolve)
    return Mailbox(opts.address, kind=opts.kind, credentials=credentials, servers=servers,  # type: ignore[arg-type]
                   resolver=_resolver(opts.dns),
                   tls=TrustSettings(ca_bundle=opts.ca_bundle), product_reference=product_reference,
                   options=MailboxOptions(connection=connection, operator_saves_sent=not sent_copy))


def _run(opts: _BoxOptions, work: Callable[[Mailbox], Awaitable[T]], **open_kw: Any) -> T:
    async def main() -> T:
        box = await _open(opts, **open_kw)
        try:
            async with box:
                return await work(box)
        except TokenRejected as exc:
            raise rejected_credentials(exc, kind=opts.kind, address=opts.address, token_env=opts.token_env,
                                       token_command=opts.token_command, cert=opts.cert) from exc

    return asyncio.run(main())


def _summary(s: MessageSummary) -> dict[str, Any]:
    return {"uid": s.uid, "folder": s.folder, "uidvalidity": s.uidvalidity, "flags": list(s.flags),
            "from": s.sender, "to": list(s.to), "subject": s.subject, "date": s.date,
            "message_id": s.message_id, "size": s.size}


def _line(s: MessageSummary) -> str:
    seen = " " if s.seen else "*"
    return f"{s.uid:>6} {seen} {s.sender or '-':<36} {s.subject or ''}"


# -- send ---------------------------------------------------------------------------------------------
@click.command("send")
@_mailbox_options
@click.option("--to", "to", multiple=True, required=True, help="Recipient (repeatable).")
@click.option("--cc", multiple=True, help="Copy recipient (repeatable).")
@click.option("--subject", required=True, help="Subject.")
@click.option("--text", help="Body text ('-' or absent: read standard input).")
@click.option("--product-reference", envvar="MSSANTE_PRODUCT_REFERENCE", required=True,
              help="Convergence product reference (X-MSS-NIL, ECO.2.4.3).")
@click.option("--dsn", is_flag=True, help="Ask for delivery status notifications (RFC 3461).")
@click.option("--mdn", is_flag=True, help="Ask for a read receipt (RFC 8098).")
@click.option("--no-sent-copy", is_flag=True, help="Do not APPEND a copy to Sent (the operator files it).")
def send(**kw: Any) -> None:
    """Send a message from the BAL ADDRESS.

    \f
    Raises:
        UsageError, ConfigError: bad options or files (no credentials, unreadable CA bundle...).
        DiscoveryError, TransportError, TrustError, AuthError, PSCError, CommandFailed: see
            :class:`mssante.client.Mailbox`; the main CLI prints them on one line.
    """
    opts = _box_options(kw)
    text = kw["text"] if kw["text"] not in (None, "-") else sys.stdin.read()
    draft = Draft(sender=Sender(address=opts.address), to=tuple(kw["to"]), cc=tuple(kw["cc"]),
                  subject=kw["subject"], text=text, request_mdn=kw["mdn"], dsn=DSNRequest() if kw["dsn"] else None)
    try:
        result = _run(opts, lambda box: box.send(draft), product_reference=kw["product_reference"],
                      sent_copy=not kw["no_sent_copy"])
    except CommandFailed as exc:
        raise refused_recipients(exc, draft.to + draft.cc) from exc
    if opts.as_json:
        _echo_json({"message_id": result.message_id, "accepted": list(result.accepted),
                    "refused": [list(r) for r in result.refused], "reply": result.reply,
                    "sent_folder": result.sent_folder, "sent_uid": result.sent_uid})
    else:
        click.echo(_("sent {message_id} to {recipients}: {reply}").format(
            message_id=result.message_id, recipients=", ".join(result.accepted), reply=result.reply))
        if result.refused:
            n = len(result.refused)
            click.echo(_n("{n} recipient refused:", "{n} recipients refused:", n).format(n=n))
        for address, reply in result.refused:
            click.echo(f"  {address}: {reply}")


# -- fetch --------------------------------------------------------------------------------------------
@click.command("fetch")
@_mailbox_options
@click.option("--folder", default="INBOX", show_default=True, help="Folder.")
@click.option("--uid", type=int, help="Fetch this message (default: list the folder).")
@click.option("--unseen", is_flag=True, help="List only unseen messages.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="With --uid: write the raw message.")
def fetch(**kw: Any) -> None:
    """List the messages of a folder of ADDRESS, or fetch one with --uid.

    \f
    Raises:
        UsageError, ConfigError: bad options or files (no credentials, unreadable CA bundle...).
        DiscoveryError, TransportError, TrustError, AuthError, PSCError, CommandFailed: see
            :class:`mssante.client.Mailbox`; the main CLI prints them on one line.
    """
    opts = _box_options(kw)
    folder, uid = kw["folder"], kw["uid"]
    if uid is None:
        listed = _run(opts, lambda box: box.list(folder, unseen_only=kw["unseen"]))
        for s in listed:
            _echo_json(_summary(s)) if opts.as_json else click.echo(_line(s))
        return
    message = _run(opts, lambda box: box.fetch(uid, folder))
    if kw["output"] is not None:
        kw["output"].write_bytes(message.raw)
    p = message.parsed
    if opts.as_json:
        _echo_json({"uid": message.uid, "folder": message.folder, "flags": list(message.flags),
                    "message_id": p.message_id, "from": p.sender, "to": list(p.to), "subject": p.subject,
                    "date": p.date, "text": p.text,
                    "attachments": [{"filename": a.filename, "kind": a.kind} for a in p.attachments]})
        return
    click.echo(f"From: {p.sender}\nTo: {', '.join(p.to)}\nSubject: {p.subject}\nDate: {p.date}\n")
    click.echo(p.text or "")
    for a in p.attachments:
        click.echo(_("[attachment] {filename} ({kind})").format(filename=a.filename, kind=a.kind))


# -- watch --------------------------------------------------------------------------------------------
@click.command("watch")
@_mailbox_options
@click.option("--folder", default="INBOX", show_default=True, help="Folder.")
@click.option("--count", type=int, help="Stop after this many new messages.")
@click.option("--duration", type=float, help="Stop after this many seconds.")
def watch(**kw: Any) -> None:
    """Print the new messages of ADDRESS as they arrive (IDLE; reconnects by itself).

    \f
    Raises:
        UsageError, ConfigError: bad options or files (no credentials, unreadable CA bundle...).
        DiscoveryError, TransportError, TrustError, AuthError, PSCError, CommandFailed: see
            :class:`mssante.client.Mailbox`; the main CLI prints them on one line.
    """
    opts = _box_options(kw)
    count, duration = kw["count"], kw["duration"]

    async def work(box: Mailbox) -> None:
        seen = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration), contextlib.aclosing(box.watch(kw["folder"])) as messages:
                async for summary in messages:
                    _echo_json(_summary(summary)) if opts.as_json else click.echo(_line(summary))
                    seen += 1
                    if count is not None and seen >= count:
                        return

    _run(opts, work)
