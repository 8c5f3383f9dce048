"""``mssante xdm``: build, inspect and validate IHE XDM archives (``IHE_XDM.ZIP``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from mssante.errors import ConfigError
from mssante.xdm import ValidationReport, XDMArchive, build_archive, read_archive, validate_archive, xmss_headers

__all__ = ["xdm"]


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


@click.group()
def xdm() -> None:
    """Build, inspect and validate IHE XDM archives (IHE ITI-32) carrying CDA R2 documents."""


@xdm.command("build")
@click.argument("cda", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Archive to write.")
@click.option("--sender", default="mssante", show_default=True, help="Sender name written in README.TXT.")
def build_cmd(cda: tuple[str, ...], output: str, sender: str) -> None:
    """Build an IHE_XDM.ZIP from CDA documents (submission time = now, UTC).

    Raises:
        ConfigError: a file cannot be read or written.
        ContentError: a document is not a usable CDA or the documents concern several patients.
        UnsafeContentError: a document has a DOCTYPE or entities.
        LimitError: a document is too large or too deep.
    """
    from mssante.xdm import XDMSender

    docs = [_read(p) for p in cda]
    data = build_archive(docs, now=datetime.now(UTC), sender=XDMSender(name=sender))
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output} ({len(data)} bytes, {len(docs)} document(s))")


def _describe(a: XDMArchive) -> list[str]:
    lines = [f"entries: {len(a.names)}  subsets: {len(a.subsets)}  documents: {len(a.documents)}"]
    pat = a.patient
    if pat is not None:
        ins = f"{pat.ins.matricule} ({pat.ins.kind})" if pat.ins else "no INS"
        lines.append(
            f"patient: {pat.birth_family or '?'} {pat.first_given or '?'} {pat.birth_time or '?'} "
            f"{pat.gender or '?'}  INS {ins}  qualified={'yes' if a.has_qualified_ins else 'no'}"
        )
    elif a.patients:
        lines.append(f"patients: {len(a.patients)} different patients")
    if a.patient_id:
        lines.append(f"metadata patientId: {a.patient_id}")
    for name, value in xmss_headers(a).items():
        lines.append(f"{name}: {value}")
    for d in a.documents:
        e = d.entry
        code = d.cda.code.code if d.cda and d.cda.code else "-"
        title = (d.cda.title if d.cda else None) or (e.title if e else None) or ""
        size = d.size if d.size is not None else "missing"
        lines.append(f"  {d.path}  code={code}  size={size}  {title}")
        if e is not None:
            cls = e.class_code.code if e.class_code else "-"
            fmt = e.format_code.code if e.format_code else "-"
            lines.append(f"      classCode={cls} formatCode={fmt} creationTime={e.creation_time or '-'}")
    return lines


@xdm.command("inspect")
@click.argument("archive", type=click.Path(dir_okay=False))
def inspect_cmd(archive: str) -> None:
    """Show the documents, patient and X-MSS headers of an archive.

    Raises:
        ConfigError: the file cannot be read.
        ContentError: the file is not a readable ZIP archive.
        UnsafeContentError: the archive is dangerous (traversal, bomb, XXE...).
        LimitError: the archive exceeds the reading limits.
    """
    for line in _describe(read_archive(_read(archive))):
        click.echo(line)


def _report_json(r: ValidationReport) -> str:
    return json.dumps(
        {
            "ok": r.ok,
            "findings": [
                {"severity": f.severity, "rule": f.rule, "message": f.message, "where": f.where} for f in r.findings
            ],
            "headers": xmss_headers(r.archive),
        },
        ensure_ascii=False,
        indent=2,
    )


def _report_table(r: ValidationReport) -> list[str]:
    if not r.findings:
        return ["no finding"]
    wr = max(len(f.rule) for f in r.findings)
    lines = [f"{'SEVERITY':<8}  {'RULE':<{wr}}  MESSAGE [WHERE]"]
    for f in r.findings:
        lines.append(f"{f.severity.upper():<8}  {f.rule:<{wr}}  {f.message} [{f.where}]")
    n_err, n_warn = len(r.errors), len(r.warnings)
    lines.append(f"{'OK' if r.ok else 'FAILED'}: {n_err} error(s), {n_warn} warning(s), {len(r.findings)} finding(s)")
    return lines


@xdm.command("validate")
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_context
def validate_cmd(ctx: click.Context, archive: str, as_json: bool) -> None:
    """Validate an archive; exit code 0 without error finding, 1 otherwise.

    Raises:
        ConfigError: the file cannot be read.
        ContentError: the file is not a readable ZIP archive.
        UnsafeContentError: the archive is dangerous (traversal, bomb, XXE...).
        LimitError: the archive exceeds the reading limits.
    """
    report = validate_archive(_read(archive))
    if as_json:
        click.echo(_report_json(report))
    else:
        for line in _report_table(report):
            click.echo(line)
    if not report.ok:
        ctx.exit(1)
