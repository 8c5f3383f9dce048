"""``mssante check MESSAGE.eml``: check a message against Référentiel socle MSSanté #2.

Prints one line per finding with its rule (ECO id or RFC section), in French; exits 0 when there
is no error finding and 1 otherwise, also for input that is not a message at all (empty, a ZIP,
a PDF, binary data, markdown: :func:`mssante.message.not_a_message`) and for a message over a
read limit (size, header caps).
With ``--json``, stdout carries the JSON document only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import click

from mssante.errors import LimitError
from mssante.message import CheckReport, Finding, NotAMessage, ReadSettings, check_message, not_a_message

__all__ = ["check", "count_fr", "findings_table_fr", "summary_fr"]

SEVERITY_FR = {"error": "ERREUR", "warning": "AVERTISSEMENT", "info": "INFO"}
_NOT_A_MESSAGE_FR: dict[NotAMessage, str] = {
    "empty": "entrée vide : ce n'est pas un message RFC 5322",
    "zip": "c'est une archive ZIP, pas un message RFC 5322 (une archive IHE_XDM.ZIP se vérifie avec "
    "« mssante xdm validate »)",
    "pdf": "c'est un document PDF, pas un message RFC 5322",
    "binary": "données binaires (octet NUL ou de contrôle) à la place des champs d'en-tête : "
    "ce n'est pas un message RFC 5322",
    "no_header": "le contenu ne commence pas par un champ d'en-tête « Nom: valeur » : "
    "ce n'est pas un message RFC 5322",
    "no_message_field": "aucun champ d'en-tête de message (From, Date, To, Subject, Message-ID…) : "
    "ce n'est pas un message RFC 5322",
}


def count_fr(count: int, singular: str, plural: str | None = None) -> str:
    """``"1 erreur"``, ``"0 erreur"``, ``"2 erreurs"``: French counts (0 and 1 take the singular)."""
    return f"{count} {singular if count < 2 else (plural or singular + 's')}"


def findings_table_fr(rows: Sequence[tuple[str, str, str]], where: Sequence[str] | None = None) -> list[str]:
    """The ``GRAVITÉ RÈGLE MESSAGE`` table of ``(severity, rule, message)`` rows, in French."""
    shown = [(SEVERITY_FR.get(s, s.upper()), r, m + (f" [{where[i]}]" if where else "")) for i, (s, r, m) in
             enumerate(rows)]  # fmt: skip
    head = ("GRAVITÉ", "RÈGLE", "MESSAGE")
    widths = [max(len(r[i]) for r in [head, *shown]) for i in range(2)]
    lines = [f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]}"]
    lines += [f"{s:<{widths[0]}}  {r:<{widths[1]}}  {m}" for s, r, m in shown]
    return lines


def summary_fr(severities: Sequence[str]) -> str:
    """``"1 erreur, 2 avertissements, 0 info"``."""
    errors, warnings = severities.count("error"), severities.count("warning")
    infos = severities.count("info")
    return f"{count_fr(errors, 'erreur')}, {count_fr(warnings, 'avertissement')}, {count_fr(infos, 'info')}"


def _table(report: CheckReport) -> str:
    rows = [(f.severity, f.rule, f.message) for f in report.findings]
    if not rows:
        return "aucun constat : le message suit les règles vérifiées"
    lines = findings_table_fr(rows)
    lines.append("\n" + summary_fr([f.severity for f in report.findings]))
    return "\n".join(lines)


@click.command("check")
@click.argument("message", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Écrire les constats en JSON (seul contenu de stdout).")
@click.option(
    "--patient-domain",
    default=ReadSettings().patient_domain,
    show_default=True,
    help="Domaine des adresses patient (Mon espace santé).",
)
@click.option("--no-xdm-validation", is_flag=True, help="Ne pas valider l'archive IHE_XDM.ZIP jointe.")
@click.pass_context
def check(ctx: click.Context, message: str, as_json: bool, patient_domain: str, no_xdm_validation: bool) -> None:
    """Vérifier MESSAGE (un fichier .eml, ou - pour l'entrée standard) selon les règles des messages MSSanté.

    Une entrée qui n'est pas un message RFC 5322 (vide, archive ZIP, PDF, données binaires, texte
    ou markdown) est refusée avec sa raison.

    \b
    Codes de sortie :
      0  aucune erreur
      1  au moins une erreur ; ou l'entrée n'est pas un message, ou dépasse une limite de lecture
      2  fichier introuvable ou option invalide
    \f
    Raises:
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
    refusal = not_a_message(data) if len(data) <= settings.max_size else None
    if refusal is not None:
        # The same verdict as check_message's, worded in French for people.
        finding = Finding(severity="error", rule="RFC 5322 §2.1", message=_NOT_A_MESSAGE_FR[refusal])
        report = CheckReport(findings=(finding,))
    else:
        try:
            report = check_message(data, settings=settings, validate_xdm=not no_xdm_validation)
        except LimitError as exc:  # too large, or a header field over a parsing cap: refused, said so
            text = f"message refusé, limite de lecture dépassée : {exc.message}"
            report = CheckReport(findings=(Finding(severity="error", rule=exc.requirement or "limite", message=text),))
    if as_json:
        payload = {
            "file": message,
            "ok": report.ok,
            "findings": [{"severity": f.severity, "rule": f.rule, "message": f.message} for f in report.findings],
        }
        if refusal is not None:
            payload["not_a_message"] = refusal
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        click.echo(_table(report))
    ctx.exit(0 if report.ok else 1)
