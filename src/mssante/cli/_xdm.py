"""``mssante xdm``: build, inspect and validate IHE XDM archives (``IHE_XDM.ZIP``).

Verdicts a CI job can trust: ``validate`` exits 1 with findings (JSON on stdout with ``--json``)
for every archive it refuses, unsafe ones (path traversal, zip bomb, DOCTYPE/XXE) and ones over a
limit included; 7 when the file is not a ZIP archive at all; 2 when it cannot be read. ``inspect``
refuses a ZIP that is not an XDM archive. People read their language (:mod:`mssante._i18n`); the
JSON keeps the library's findings as they are (English messages, rule ids); the CLI's own findings
(a refused archive) are in the user's language there too.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import click

from mssante._i18n import N_
from mssante._i18n import gettext as _
from mssante._i18n import ngettext as _n
from mssante.errors import ConfigError, ContentError, LimitError
from mssante.xdm import (
    Finding,
    ValidationReport,
    XDMArchive,
    build_archive,
    read_archive,
    validate_archive,
    xmss_headers,
)

from ._text import counts, findings_table

__all__ = ["xdm"]

#: The exit codes of ``validate`` and ``inspect`` (catalogue ids, shown in the language in use).
_EXIT_CODES = (
    (0, N_("valid archive (no error)")),
    (1, N_("archive refused: at least one error, a dangerous archive or one beyond the limits")),
    (2, N_("unreadable file (missing, permissions) or invalid option")),
    (7, N_("the file is not a ZIP archive")),
    (130, N_("interrupted (Ctrl-C)")),
)
_INSPECT_EXIT_CODES = (
    (0, N_("XDM archive read")),
    (2, N_("unreadable file (missing, permissions) or invalid option")),
    (7, N_("not a readable IHE XDM archive: not a ZIP, a ZIP without IHE_XDM/, a dangerous archive or one "
           "beyond the limits")),
    (130, N_("interrupted (Ctrl-C)")),
)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(_("cannot read {path}: {reason}").format(path=path, reason=exc.strerror or exc)) from None


def _not_a_zip(data: bytes) -> bool:
    return not data or not zipfile.is_zipfile(io.BytesIO(data))


@click.group()
def xdm() -> None:
    """Construire, inspecter et valider des archives IHE XDM (IHE ITI-32) de documents CDA R2."""


@xdm.command("build")
@click.argument("cda", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Archive à écrire.")
@click.option("--sender", default="mssante", show_default=True, help="Nom de l'émetteur écrit dans README.TXT.")
def build_cmd(cda: tuple[str, ...], output: str, sender: str) -> None:
    """Construire une archive IHE_XDM.ZIP à partir de documents CDA (heure de soumission : maintenant, UTC).
    \f
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
        raise ConfigError(_("cannot write {path}: {reason}").format(path=output, reason=exc.strerror or exc)) from None
    size = _n("{n} byte", "{n} bytes", len(data)).format(n=len(data))
    click.echo(_("{path} written ({size}, {documents})").format(
        path=output, size=size, documents=_n("{n} document", "{n} documents", len(docs)).format(n=len(docs))))


def _describe(a: XDMArchive) -> list[str]:
    lines = [_("entries: {entries}  subsets: {subsets}  documents: {documents}").format(
        entries=len(a.names), subsets=len(a.subsets), documents=len(a.documents))]
    pat = a.patient
    if pat is not None:
        ins = f"{pat.ins.matricule} ({pat.ins.kind})" if pat.ins else _("no INS")
        lines.append(_("patient: {name}  INS {ins}  qualified={qualified}").format(
            name=f"{pat.birth_family or '?'} {pat.first_given or '?'} {pat.birth_time or '?'} {pat.gender or '?'}",
            ins=ins, qualified=_("yes") if a.has_qualified_ins else _("no")))
    elif a.patients:
        n = len(a.patients)
        lines.append(_n("patients: {n} different patient", "patients: {n} different patients", n).format(n=n))
    if a.patient_id:
        lines.append(_("patientId of the metadata: {id}").format(id=a.patient_id))
    for name, value in xmss_headers(a).items():
        lines.append(f"{name}: {value}")
    for d in a.documents:
        e = d.entry
        code = d.cda.code.code if d.cda and d.cda.code else "-"
        title = (d.cda.title if d.cda else None) or (e.title if e else None) or ""
        size = d.size if d.size is not None else _("absent")
        lines.append("  " + _("{path}  code={code}  size={size}  {title}").format(path=d.path, code=code, size=size,
                                                                                 title=title))
        if e is not None:
            cls = e.class_code.code if e.class_code else "-"
            fmt = e.format_code.code if e.format_code else "-"
            lines.append(f"      classCode={cls} formatCode={fmt} creationTime={e.creation_time or '-'}")
    return lines


@xdm.command("inspect")
@click.argument("archive", type=click.Path(dir_okay=False))
def inspect_cmd(archive: str) -> None:
    """Montrer les documents, le patient et les en-têtes X-MSS d'une archive.
    \f
    Raises:
        ConfigError: the file cannot be read.
        ContentError: the file is not a readable ZIP archive, or a ZIP that is no XDM archive
            (no IHE_XDM/SUBSETnn directory with a METADATA.XML or documents).
        UnsafeContentError: the archive is dangerous (traversal, bomb, XXE...).
        LimitError: the archive exceeds the reading limits.
    """
    data = _read(archive)
    if _not_a_zip(data):
        raise ContentError(_("{path} is not a ZIP archive").format(path=archive), requirement="XDM-ZIP")
    a = read_archive(data)
    if not a.subsets or (not any(s.metadata_path for s in a.subsets) and not a.documents):
        raise ContentError(
            _("{path} is a ZIP archive but not an IHE XDM archive: no IHE_XDM/SUBSETnn directory with "
              "METADATA.XML or documents").format(path=archive),
            requirement="IHE ITI TF-1 §16.1.2",
        )
    for line in _describe(a):
        click.echo(line)


def _json(ok: bool, findings: tuple[Finding, ...], headers: dict[str, str] | None, **extra: object) -> str:
    doc: dict[str, object] = {
        "ok": ok,
        "findings": [
            {"severity": f.severity, "rule": f.rule, "message": f.message, "where": f.where} for f in findings
        ],
        "headers": headers or {},
        **extra,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)


def _report_table(findings: tuple[Finding, ...], ok: bool) -> list[str]:
    if not findings:
        return [_("no finding"), _("VALID: {counts}, {findings}").format(
            counts=counts([]), findings=_n("{n} finding", "{n} findings", 0).format(n=0))]
    lines = findings_table([(f.severity, f.rule, f.message) for f in findings], [f.where for f in findings])
    verdict = _("VALID: {counts}, {findings}") if ok else _("REFUSED: {counts}, {findings}")
    n = len(findings)
    lines.append(verdict.format(counts=counts([f.severity for f in findings]),
                                findings=_n("{n} finding", "{n} findings", n).format(n=n)))
    return lines


def _refusal(exc: ContentError | LimitError) -> Finding:
    """The one finding of an archive refused before it could be validated (unsafe, over a limit...)."""
    return Finding("error", exc.requirement or ("XDM-LIMIT" if isinstance(exc, LimitError) else "XDM-ZIP"),
                   _("archive refused: {reason}").format(reason=exc.message))  # fmt: skip


@xdm.command("validate")
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Écrire les constats en JSON (seul contenu de stdout).")
@click.pass_context
def validate_cmd(ctx: click.Context, archive: str, as_json: bool) -> None:
    """Valider une archive IHE_XDM.ZIP : structure, métadonnées, documents CDA, patient.

    Une archive dangereuse (chemin hors de l'archive, bombe ZIP, DOCTYPE/XXE) ou hors limites est
    refusée comme une archive invalide : code 1 et constats (en JSON avec --json).
    \f
    Raises:
        ConfigError: the file cannot be read.
    """
    data = _read(archive)
    if _not_a_zip(data):
        finding = Finding("error", "XDM-ZIP", _("{path} is not a ZIP archive").format(path=archive), archive)
        if as_json:
            click.echo(_json(False, (finding,), None, refused=True))
        else:
            click.echo(_("mssante: error: {message}").format(message=finding.message) + " [XDM-ZIP]", err=True)
        ctx.exit(7)
    report: ValidationReport | None = None
    try:
        report = validate_archive(data)
    except (ContentError, LimitError) as exc:  # UnsafeContentError is a ContentError
        findings: tuple[Finding, ...] = (_refusal(exc),)
        ok, headers, refused = False, None, True
    else:
        findings, ok, headers, refused = report.findings, report.ok, xmss_headers(report.archive), False
    if as_json:
        click.echo(_json(ok, findings, headers, refused=refused))
    else:
        for line in _report_table(findings, ok):
            click.echo(line)
    if not ok:
        ctx.exit(1)


# Their own exit-code tables, which mssante.cli renders in the language in use (EXIT_CODES_ATTR).
setattr(inspect_cmd, "mssante_exit_codes", _INSPECT_EXIT_CODES)  # noqa: B010
setattr(validate_cmd, "mssante_exit_codes", _EXIT_CODES)  # noqa: B010
