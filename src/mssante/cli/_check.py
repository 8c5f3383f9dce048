"""``mssante check MESSAGE.eml``: check a message against Référentiel socle MSSanté #2.

Prints one line per finding with its rule (ECO id or RFC section); exits 0 when there is no
error finding and 1 otherwise. Errors of mssante (an unreadable file, a message over the size
limit) propagate to the main CLI, which maps them to their exit code.
"""

from __future__ import annotations

import json
import sys

import click

from mssante.message import CheckReport, ReadSettings, check_message

__all__ = ["check"]


def _table(report: CheckReport) -> str:
    rows = [(f.severity.upper(), f.rule, f.message) for f in report.findings]
    if not rows:
        return "no finding: the message follows the checked rules"
    head = ("SEVERITY", "RULE", "MESSAGE")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(2)]
    lines = [f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]}"]
    lines += [f"{s:<{widths[0]}}  {r:<{widths[1]}}  {m}" for s, r, m in rows]
    counts = {k: sum(1 for f in report.findings if f.severity == k) for k in ("error", "warning", "info")}
    lines.append(f"\n{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info")
    return "\n".join(lines)


@click.command("check")
@click.argument("message", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--patient-domain",
    default=ReadSettings().patient_domain,
    show_default=True,
    help="Domain of patient (Mon espace santé) addresses.",
)
@click.option("--no-xdm-validation", is_flag=True, help="Do not run the IHE_XDM archive validator.")
@click.pass_context
def check(ctx: click.Context, message: str, as_json: bool, patient_domain: str, no_xdm_validation: bool) -> None:
    """Check MESSAGE (an .eml file, or - for stdin) against the MSSanté message rules.

    Exit code 0 when no error is found, 1 otherwise.

    Raises:
        LimitError: the message is larger than the read limit.
        click.FileError: the file cannot be read.
    """
    settings = ReadSettings(patient_domain=patient_domain)
    limit = settings.max_size + 1  # read one byte more so that an oversized file is refused, not cut
    if message == "-":
        data = sys.stdin.buffer.read(limit)
    else:
        try:
            with open(message, "rb") as handle:
                data = handle.read(limit)
        except OSError as exc:
            raise click.FileError(message, hint=str(exc.strerror)) from exc
    report = check_message(data, settings=settings, validate_xdm=not no_xdm_validation)
    if as_json:
        payload = {
            "file": message,
            "ok": report.ok,
            "findings": [{"severity": f.severity, "rule": f.rule, "message": f.message} for f in report.findings],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        click.echo(_table(report))
    ctx.exit(0 if report.ok else 1)
