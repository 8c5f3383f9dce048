"""``mssante check MESSAGE.eml``: check a message against Référentiel socle MSSanté #2.

Prints one line per finding with its rule (ECO id or RFC section), in the user's language
(:mod:`mssante._i18n`; the JSON keeps the library's English messages, the CLI's own refusals are
in the user's language there too); exits 0 when there
is no error finding and 1 otherwise, also for input that is not a message at all (empty, a ZIP,
a PDF, binary data, markdown: :func:`mssante.message.not_a_message`) and for a message over a
read limit (size, header caps).
With ``--json``, stdout carries the JSON document only.
"""

from __future__ import annotations

import json
import sys

import click

from mssante._i18n import N_
from mssante._i18n import gettext as _
from mssante.cli._text import counts, findings_table
from mssante.errors import LimitError
from mssante.message import CheckReport, Finding, NotAMessage, ReadSettings, check_message, not_a_message

__all__ = ["check", "count_fr"]

_NOT_A_MESSAGE: dict[NotAMessage, str] = {
    "empty": N_("empty input: this is not an RFC 5322 message"),
    "zip": N_("this is a ZIP archive, not an RFC 5322 message (an IHE_XDM.ZIP archive is checked with "
              "\"mssante xdm validate\")"),
    "pdf": N_("this is a PDF document, not an RFC 5322 message"),
    "binary": N_("binary data (a NUL or control byte) where the header fields should be: "
                 "this is not an RFC 5322 message"),
    "no_header": N_("the content does not start with a \"Name: value\" header field: "
                    "this is not an RFC 5322 message"),
    "no_message_field": N_("no message header field (From, Date, To, Subject, Message-ID...): "
                           "this is not an RFC 5322 message"),
}


def count_fr(count: int, singular: str, plural: str | None = None) -> str:
    """``"1 erreur"``, ``"0 erreur"``, ``"2 erreurs"``: French counts (0 and 1 take the singular)."""
    return f"{count} {singular if count < 2 else (plural or singular + 's')}"


def _table(report: CheckReport) -> str:
    rows = [(f.severity, f.rule, f.message) for f in report.findings]
    if not rows:
        return _("no finding: the message follows the rules checked")
    lines = findings_table(rows)
    lines.append("\n" + counts([f.severity for f in report.findings]))
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
        # The same verdict as check_message's, worded for people in their language.
        finding = Finding(severity="error", rule="RFC 5322 §2.1", message=_(_NOT_A_MESSAGE[refusal]))
        report = CheckReport(findings=(finding,))
    else:
        try:
            report = check_message(data, settings=settings, validate_xdm=not no_xdm_validation)
        except LimitError as exc:  # too large, or a header field over a parsing cap: refused, said so
            text = _("message refused, over a read limit: {reason}").format(reason=exc.message)
            report = CheckReport(findings=(Finding(severity="error", rule=exc.requirement or "limit", message=text),))
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
