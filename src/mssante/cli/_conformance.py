"""``mssante conformance``: run the API LPS conformance suite (local MOTCO2) and list its cases.

``run`` needs the sandbox's Python objects, so by default it **starts the sandbox itself** on
``--sandbox-state`` (keys, certificates and ports are reused from that directory) and stops it
at the end. If a sandbox already runs on that directory (its ``sandbox.json`` answers on
``/api/health``), ``run`` drives that one through its HTTP API instead (the two-terminal
setup): every case runs the same way, the API offering the bench's faults (refuse the next
token of a BAL, CRL outage, end of a professional's PSC sessions).

Results always go to ``STATE_DIR/conformance/latest.json`` (the webmail shows them), and to
``--json-file``, ``--html-file`` (the French "CR de test") and ``--junit-file`` when asked
(``--json`` alone prints the JSON results on stdout). The old names ``--json FILE``, ``--html``
and ``--junit`` still work for one release. ``--events FILE|-``
writes the machine-readable run (JSON Lines, ``docs/schemas/conformance-events.schema.json``);
with ``-`` the events go to stdout and the French text to stderr. The same events are served
by the sandbox API (``GET /api/conformance/events``).

Exit code: 0 CONFORME (every selected case ran and passed), 1 NON CONFORME (a case failed,
errored or was skipped, or the run stopped early), 2 misuse (bad option, unknown case, a
``sandbox.json`` whose sandbox does not answer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import click

from mssante._i18n import gettext as _
from mssante._i18n import ngettext
from mssante.cli._progress import CaseProgress, disable
from mssante.errors import ConfigError, UsageError

__all__ = ["conformance"]

_OUT = click.Path(dir_okay=False, path_type=Path)
_MARK = {"pass": "✔", "fail": "✘", "error": "!", "skipped": "–"}


@click.group()
def conformance() -> None:
    """API LPS conformance suite against the sandbox operator (a local equivalent of MOTCO2).

    \f
    Raises:
        Nothing (sub-commands raise).
    """


@conformance.command("list")
@click.option("--profile", type=click.Choice(["per-org", "app"]), help="Only this profile.")
def list_cases(profile: str | None) -> None:
    """Print the catalogue: id, code, French title, requirements."""
    from mssante.conformance import Profile, catalogue

    for prof in [Profile(profile)] if profile else list(Profile):
        cases = catalogue(prof)
        click.echo(ngettext("Profile {profile} — {n} case", "Profile {profile} — {n} cases", len(cases)).format(
            profile=prof.value, n=len(cases)))
        for case in cases:
            who = (_("action") if case.needs_action else _("auto")).ljust(6)
            click.echo(f"  {case.id:10} {who}  {case.title_fr}")
            click.echo(f"  {'':10}         {case.code} · {', '.join(case.requirements)}")


def _running_sandbox(state_dir: Path) -> dict[str, Any] | None:
    """The ``sandbox.json`` of a sandbox that answers on its API; None when there is no ``sandbox.json``.

    Raises:
        ConfigError: ``sandbox.json`` exists but is unreadable, or its sandbox does not answer
            (stale: the sandbox was killed); French message.
    """
    path = state_dir / "sandbox.json"
    if not path.exists():
        return None
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        url = str(info["api_url"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(_("{path} is unreadable ({reason}): delete it or run “mssante sandbox up --state-dir "
                            "{state_dir}” again").format(path=path, reason=exc, state_dir=state_dir)) from None
    try:
        if not url.startswith("http://127.0.0.1"):
            raise ValueError("not a loopback URL")
        with urllib.request.urlopen(url + "/health", timeout=3) as response:  # noqa: S310 - loopback http
            if response.status == 200:
                return info
    except (OSError, ValueError):
        pass
    raise ConfigError(_(
        "{path} describes a sandbox that does not answer ({url}): it was stopped without cleaning up. "
        "Run “mssante sandbox up --state-dir {state_dir}” again in another terminal, or delete {path} "
        "so that the run starts its own sandbox.").format(path=path, url=url, state_dir=state_dir))


def _check_cases(profile: str, cases: tuple[str, ...]) -> None:
    """Refuse unknown case ids before anything starts (French message, exit code 2).

    Raises:
        UsageError: an id or code is not in the profile's catalogue.
    """
    from mssante.conformance import Profile, catalogue

    known = catalogue(Profile(profile))
    names = {c.id for c in known} | {c.code.upper() for c in known}
    unknown = [c for c in cases if c.upper() not in names]
    if unknown:
        raise UsageError(ngettext(
            "unknown case for profile {profile}: {cases}. Known cases: {known} (or their code, see “mssante "
            "conformance list --profile {profile}”)",
            "unknown cases for profile {profile}: {cases}. Known cases: {known} (or their code, see “mssante "
            "conformance list --profile {profile}”)", len(unknown)).format(
                profile=profile, cases=", ".join(unknown), known=", ".join(c.id for c in known)))


class _EventsFile:
    """The ``--events`` sink: one JSON object per line, flushed at once (a harness follows the file)."""

    def __init__(self, target: str) -> None:
        self._own = target != "-"
        try:
            self._out: TextIO = open(target, "w", encoding="utf-8") if self._own else sys.stdout  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(_("cannot write {path}: {reason}").format(path=target, reason=exc.strerror)) from None

    def __call__(self, event: dict[str, Any]) -> None:
        self._out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._own:
            self._out.close()


def _write_outputs(report: Any, state_dir: Path, json_file: Path | None, html_file: Path | None,
                   junit_file: Path | None) -> list[Path]:
    from mssante.conformance import to_html, to_json, to_junit, write_latest

    written = [write_latest(report, state_dir)]
    for path, render in ((json_file, to_json), (html_file, to_html), (junit_file, to_junit)):
        if path is None:
            continue
        try:
            path.write_text(render(report), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(_("cannot write {path}: {reason}").format(path=path, reason=exc.strerror)) from exc
        written.append(path)
    return written


def _progress(result: Any, echo: Callable[[str], None] = click.echo) -> None:
    from mssante.conformance._html import status_label

    echo(f"  {_MARK[result.status.value]} {status_label(result.status)} — {result.explanation}")


def _summary(info: Mapping[str, Any]) -> str:
    lines = [_("MSSanté sandbox — domain {domain} (DNS {host}:{port})").format(
        domain=info["domain"], host=info["dns"]["host"], port=info["dns"]["port"])]
    for proto in ("imap", "smtp"):
        for front in ("psc", "authcli"):
            end = info[proto][front]
            lines.append(f"  {proto.upper():4} {front:8} {end['host']}:{end['port']}")
    lines.append("  " + _("Test IGC Santé roots: {path}").format(path=info["ca_bundle"]))
    psc = info.get("psc", {})
    lines.append("  " + _("Pro Santé Connect (mock): {url} (client {client})").format(
        url=psc.get("discovery_url"), client=psc.get("client_id")))
    return "\n".join(lines)


async def _run(options: dict[str, Any], echo: Callable[[str], None], events_file: _EventsFile | None) -> Any:
    from mssante.conformance import (
        DriverSetup,
        ExternalDriver,
        HTTPControl,
        InProcessControl,
        Profile,
        RunEvents,
        RunSettings,
        SandboxControl,
        catalogue,
        choose_bal,
        load_builtin_driver,
        run_job,
    )
    from mssante.sandbox.config import load_config
    from mssante.sandbox.runner import Sandbox

    state_dir: Path = options["state_dir"]
    profile = Profile(options["profile"])
    settings = RunSettings(time_scale=options["time_scale"])
    running = _running_sandbox(state_dir)
    sandbox: Sandbox | None = None
    control: SandboxControl
    if running is not None:
        echo(_("A sandbox already runs on {state_dir}: driving it through its HTTP API.").format(state_dir=state_dir))
        control = HTTPControl(running, state_dir)
    else:
        sandbox = Sandbox(load_config(options["config_file"]), state_dir)
        await sandbox.__aenter__()
        control = InProcessControl(sandbox)
    try:
        echo(_summary(control.info))
        bal = choose_bal(control.info, profile, options["bal"], control.responders)
        events = RunEvents(control=control, sinks=[events_file] if events_file is not None else [])
        login: Callable[[], Awaitable[Mapping[str, Any]]] | None = None
        if sandbox is not None and profile is Profile.PER_ORG:
            started = sandbox
            holder = next(str(b["holders"][0]) for b in control.info["bals"] if b["address"] == bal)
            client_id = str(control.info["psc"]["client_id"])

            async def login() -> Mapping[str, Any]:
                return started.psc.issue_tokens_for_tests(holder, client_id)

        reference = options["product_reference"]
        if options["client"] == "builtin":
            setup = DriverSetup(info=control.info, bal=bal, profile=profile, login=login,
                                trace_file=options["trace_file"])
            if reference is not None:
                setup = dataclasses.replace(setup, product_reference=reference)
            reference = setup.product_reference
            driver = load_builtin_driver(setup)
        else:
            driver = ExternalDriver(bal=bal, profile=profile, echo=echo, announce=events.step)
        echo(_("Profile {profile}, BAL tested {bal}, LPS: {lps}").format(profile=profile.value, bal=bal,
                                                                          lps=driver.name))
        echo(_("Run events: {url}").format(url=f"{events.api_url}/conformance/events?run_id={events.run_id}") + "\n")
        total = len(options["cases"]) or len(catalogue(profile))
        try:
            with CaseProgress(total, f"{profile.value}") as bar:
                def on_result(result: Any) -> None:
                    _progress(result, echo=echo)
                    bar.done(result.case_id)

                return await run_job(control, driver, profile=profile, bal=bal, case_ids=options["cases"],
                                     settings=settings, trace_file=options["trace_file"], on_result=on_result,
                                     events=events, product_reference=reference)
        finally:
            await driver.close()
    finally:
        await control.aclose()
        if sandbox is not None:
            await sandbox.aclose()


@conformance.command("run")
@click.option("--profile", type=click.Choice(["per-org", "app"]), required=True, help="BAL PER/ORG or BAL APP.")
@click.option("--case", "cases", multiple=True, metavar="ID", help="Only this case (id or code); repeatable.")
@click.option("--sandbox-state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".sandbox"), show_default=True,
              help="Sandbox state directory: started here unless a sandbox already runs on it.")
@click.option("--sandbox-config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML configuration for the sandbox this command starts.")
@click.option("--client", type=click.Choice(["external", "builtin"]), default="external", show_default=True,
              help="external: any LPS, driven by printed instructions; builtin: mssante.client.")
@click.option("--bal", help="BAL under test (default: the first PER/ORG or APP BAL of the sandbox).")
@click.option("--trace-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The LPS's trace file (JSON Lines, docs/schemas/trace.schema.json) to judge ECO.4.1.x; "
                   "without it the traces case is non conforme.")
@click.option("--product-reference", metavar="REF",
              help="The LPS's Convergence product reference: every X-MSS-NIL must equal it (ECO.2.4.3); "
                   "without it the x-mss-nil case is non conforme (builtin: the driver's own).")
@click.option("--junit-file", "junit_file", type=_OUT, help="Write JUnit XML to this file.")
@click.option("--html-file", "html_file", type=_OUT, help="Write the HTML report (the French CR de test) to this file.")
@click.option("--json-file", "json_file", type=_OUT, help="Write the JSON results to this file.")
@click.option("--json", "as_json", is_flag=False, flag_value="-", default=None, metavar="",
              help="Print the JSON results on stdout (the French text goes to stderr).")
@click.option("--junit", "old_junit", type=_OUT, hidden=True)  # the names before --junit-file, for one release
@click.option("--html", "old_html", type=_OUT, hidden=True)
@click.option("--time-scale", type=click.FloatRange(0.001, 10.0), default=1.0, show_default=True,
              help="Multiply every case timeout (below 1 for a fast automated LPS).")
@click.option("--events", "events_target", metavar="FILE|-",
              help="Write the run as JSON Lines events (docs/schemas/conformance-events.schema.json); - = stdout.")
@click.pass_context
def run(ctx: click.Context, /, **options: Any) -> None:
    """Run the conformance cases of a profile against an LPS and write the test report.

    Exit code: 0 CONFORME, 1 NON CONFORME (failed, errored, skipped or not run), 2 misuse.

    \f
    Raises:
        ConfigError: bad sandbox configuration, stale sandbox.json, unwritable output, builtin
            driver unavailable.
        UsageError: unknown case id, or a BAL that does not fit the profile.
        TransportError: a sandbox port is busy, or the running sandbox does not answer at the start.
    """
    from mssante.conformance import Status
    from mssante.conformance._html import reason, status_label, verdict_label

    _check_cases(options["profile"], options["cases"])
    _old_output_names(options)
    to_stdout = options.pop("as_json") == "-"
    target = options.pop("events_target")
    if to_stdout and target == "-":
        raise UsageError(_("--json and --events - both write to stdout: choose one, or --events FILE"))
    echo: Callable[[str], None] = (functools.partial(click.echo, err=True) if target == "-" or to_stdout
                                   else click.echo)
    if target == "-" or to_stdout:
        disable()  # machine output: no progress display either
    events_file = _EventsFile(target) if target else None
    try:
        report = asyncio.run(_run(options, echo, events_file))
    finally:
        if events_file is not None:
            events_file.close()
    for path in _write_outputs(report, options["state_dir"], options["json_file"], options["html_file"],
                               options["junit_file"]):
        echo(_("Results written: {path}").format(path=path))
    counts = ", ".join(f"{status_label(s).lower()} {report.count(s)}" for s in Status)
    if report.not_run:
        counts += ", " + _("not run {n}").format(n=len(report.not_run))
    echo(f"\n{verdict_label(report)} — {counts}")
    why = reason(report)
    if why:
        echo(_("Reason: {reason}").format(reason=why))
    if to_stdout:
        from mssante.conformance import to_json

        click.echo(to_json(report))
    ctx.exit(0 if report.ok else 1)


def _old_output_names(options: dict[str, Any]) -> None:
    """Fold the pre-0.x names (``--json FILE``, ``--html FILE``, ``--junit FILE``) into the new ones.

    Raises:
        UsageError: an old and a new name both given for the same output.
    """
    old_json = options["as_json"] if options["as_json"] not in (None, "-") else None
    if old_json is not None:
        options["as_json"] = None
    for new, old, value in (("json_file", "--json", old_json and Path(old_json)),
                            ("html_file", "--html", options.pop("old_html")),
                            ("junit_file", "--junit", options.pop("old_junit"))):
        if value is None:
            continue
        flag = "--" + new.replace("_", "-")
        if options[new] is not None:
            raise UsageError(_("{old} FILE and {flag} name the same output: keep {flag}").format(old=old, flag=flag))
        click.echo(_("mssante: {old} FILE is the old name of {flag}; it will go in the next release").format(
            old=old, flag=flag),
                   err=True)
        options[new] = value
