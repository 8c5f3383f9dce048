"""Findings and counts told to people, in the language in use (:mod:`mssante._i18n`).

The library's findings keep their stable English messages and rule ids (the JSON outputs carry
them as they are); the tables here render them through the catalogue, with correct plurals.
"""

from __future__ import annotations

from collections.abc import Sequence

from mssante._i18n import current

__all__ = ["counts", "findings_table", "severity_label"]


def severity_label(severity: str) -> str:
    """``ERREUR``/``ERROR``, ``AVERTISSEMENT``/``WARNING``, ``INFO``."""
    t = current()
    labels = {"error": t.pgettext("severity", "ERROR"), "warning": t.pgettext("severity", "WARNING"),
              "info": t.pgettext("severity", "INFO")}
    return labels.get(severity, severity.upper())


def findings_table(rows: Sequence[tuple[str, str, str]], where: Sequence[str] | None = None) -> list[str]:
    """The ``SEVERITY RULE MESSAGE`` table of ``(severity, rule, English message)`` rows, translated."""
    t = current()
    shown = [(severity_label(s), r, t.finding(m) + (f" [{where[i]}]" if where else ""))
             for i, (s, r, m) in enumerate(rows)]
    head = (t.pgettext("column", "SEVERITY"), t.pgettext("column", "RULE"), t.pgettext("column", "MESSAGE"))
    widths = [max(len(r[i]) for r in [head, *shown]) for i in range(2)]
    lines = [f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]}"]
    lines += [f"{s:<{widths[0]}}  {r:<{widths[1]}}  {m}" for s, r, m in shown]
    return lines


def counts(severities: Sequence[str]) -> str:
    """``"1 erreur, 2 avertissements, 0 info"`` (``"1 error, 2 warnings, 0 info"``)."""
    t = current()
    errors, warnings, infos = (severities.count(s) for s in ("error", "warning", "info"))
    return ", ".join((t.ngettext("{n} error", "{n} errors", errors).format(n=errors),
                      t.ngettext("{n} warning", "{n} warnings", warnings).format(n=warnings),
                      t.ngettext("{n} info", "{n} info", infos).format(n=infos)))
