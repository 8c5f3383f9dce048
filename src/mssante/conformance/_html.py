"""The HTML "CR de test": a self-contained page, readable on screen and printable.

No external resource (no font, script or image): the CSS is inline, with print rules
(A4 margins, no page break inside a case header, links not needed). Every text coming from
the run is escaped. The page has a header (LPS, BAL, profile, dates, totals), a summary
table, then one section per case with its explanation and evidence.

The page's own words come from the message catalogue (:mod:`mssante._i18n`): French by
default, English with ``--lang en`` (or an English ``LANG``). What the cases wrote (titles,
explanations, evidence) is French; an English page marks it ``lang="fr"``. The helpers below
(status, verdict, reason) also give the CLI its words.
"""

from __future__ import annotations

import html
from datetime import datetime

from mssante._i18n import N_, Lang, Translator, current, translator
from mssante.conformance._model import CaseResult, Profile, RunReport, Status

__all__ = ["profile_label", "reason", "status_label", "to_html", "verdict_label"]

_CSS = """
:root { --ok:#1e7b34; --ko:#b3261e; --err:#8a5300; --skip:#5f6368; --line:#d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color:#1f2328;
       margin: 0 auto; max-width: 62rem; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .75rem; border-bottom: 2px solid var(--line); padding-bottom: .25rem; }
h3 { font-size: 1.05rem; margin: 0 0 .4rem; }
.meta { color: #57606a; margin: 0 0 1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0 0 1rem; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.totals span { display: inline-block; margin-right: 1rem; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.req, .req { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85em; }
.status { font-weight: 700; white-space: nowrap; }
.st-pass { color: var(--ok); } .st-fail { color: var(--ko); } .st-error { color: var(--err); }
.st-skipped { color: var(--skip); }
section.case { border: 1px solid var(--line); border-left: 6px solid var(--skip); border-radius: 6px;
               padding: .8rem 1rem; margin: 0 0 1rem; }
section.case.case-pass { border-left-color: var(--ok); } section.case.case-fail { border-left-color: var(--ko); }
section.case.case-error { border-left-color: var(--err); }
.explanation { margin: .4rem 0 .6rem; }
.evidence { margin: .5rem 0 0; } .ev-title { font-weight: 600; margin: 0; font-size: .9rem; }
td:first-child { white-space: nowrap; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: .5rem; overflow-x: auto; white-space: pre-wrap;
      word-break: break-word; font-size: .8rem; margin: .3rem 0 0; }
footer { margin-top: 2rem; color: #57606a; font-size: .85rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  @page { size: A4; margin: 15mm 12mm; }
  h2 { break-after: avoid; }
  section.case { break-inside: auto; }
  section.case h3, .explanation { break-after: avoid; }
  .evidence { break-inside: avoid; }
  pre { font-size: 8pt; }
  a { color: inherit; text-decoration: none; }
}
"""

_PROFILES = {Profile.PER_ORG: N_("BAL PER/ORG (Pro Santé Connect)"),
             Profile.APP: N_("BAL APP (AUTH_CLI certificate)")}
_STATUSES = {Status.PASS: N_("Conformant"), Status.FAIL: N_("Not conformant"), Status.ERROR: N_("Error"),
             Status.SKIPPED: N_("Not run")}


def status_label(status: Status, t: Translator | None = None) -> str:
    """``Conforme``/``Conformant``, ``Non conforme``/``Not conformant``, ``Erreur``, ``Non exécuté``.

    ``t`` defaults to the language in use (:func:`mssante._i18n.current`).
    """
    return (t or current()).gettext(_STATUSES[status])


def verdict_label(report: RunReport, t: Translator | None = None) -> str:
    """``CONFORME``/``CONFORMANT`` or ``NON CONFORME``/``NOT CONFORMANT``."""
    t = t or current()
    return t.gettext("CONFORMANT") if report.ok else t.gettext("NOT CONFORMANT")


def profile_label(profile: Profile, t: Translator | None = None) -> str:
    """The profile as people name it: ``BAL PER/ORG (Pro Santé Connect)``, ``BAL APP (certificat AUTH_CLI)``."""
    return (t or current()).gettext(_PROFILES[profile])


def reason(report: RunReport, t: Translator | None = None) -> str:
    """Why the run is not conformant, or an empty string (the interruption's text stays as the runner wrote it)."""
    t = t or current()
    parts = []
    if report.interruption:
        parts.append(report.interruption)
    if report.not_run:
        n = len(report.not_run)
        parts.append(t.ngettext("{n} case not run: {ids}", "{n} cases not run: {ids}", n).format(
            n=n, ids=", ".join(report.not_run)))
    for status in (Status.FAIL, Status.ERROR, Status.SKIPPED):
        ids = [r.case_id for r in report.results if r.status is status]
        if ids:
            label = status_label(status, t).lower()
            parts.append(t.gettext("{status}: {ids}").format(status=label, ids=", ".join(ids)))
    if not report.results and not parts:
        parts.append(t.gettext("no case judged"))
    return t.gettext("; ").join(parts)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class _Page:
    """The words of one page, in one language; French texts of the run marked when the page is not French."""

    def __init__(self, t: Translator) -> None:
        self.t = t

    def fr(self, text: str) -> str:
        """Escaped ``text`` from the run (French), marked as such on a page in another language."""
        return _e(text) if self.t.lang == "fr" else f'<span lang="fr">{_e(text)}</span>'

    def when(self, ts: float) -> str:
        return datetime.fromtimestamp(ts).astimezone().strftime(self.t.gettext("%m/%d/%Y %H:%M:%S %Z")).strip()

    def status(self, status: Status) -> str:
        return f'<span class="status st-{status.value}">{_e(status_label(status, self.t))}</span>'

    def seconds(self, value: float) -> str:
        return _e(self.t.gettext("{seconds} s").format(seconds=f"{value:.1f}"))

    def summary_row(self, r: CaseResult) -> str:
        return (f'<tr><td><a href="#{_e(r.case_id)}">{_e(r.case_id)}</a></td><td>{self.fr(r.title_fr)}</td>'
                f'<td class="req">{_e(", ".join(r.requirements))}</td><td>{self.status(r.status)}</td>'
                f"<td>{self.seconds(r.duration)}</td></tr>")

    def case_section(self, r: CaseResult) -> str:
        _ = self.t.gettext
        code = _e(_("code"))
        parts = [
            f'<section class="case case-{r.status.value}" id="{_e(r.case_id)}">',
            f"<h3>{_e(r.case_id)} — {self.fr(r.title_fr)}</h3>",
            f'<p>{self.status(r.status)} · <span class="req">{_e(", ".join(r.requirements))}</span> · '
            f"{code} <code>{_e(r.code)}</code> · {self.seconds(r.duration)}</p>",
            f'<p class="explanation">{self.fr(r.explanation)}</p>',
        ]
        if r.cause is not None:
            label = _e(_("Identified cause ({code}): ")).replace("{code}", f"<code>{_e(r.cause.code)}</code>")
            parts.append(f'<p class="cause">{label}{self.fr(r.cause.fr)}</p>')
        for evidence in r.evidence:  # always shown: a printed CR keeps its evidence
            parts.append(f'<div class="evidence"><p class="ev-title">{self.fr(evidence.title)}</p>'
                         f"<pre>{_e(chr(10).join(evidence.lines))}</pre></div>")
        parts.append("</section>")
        return "\n".join(parts)


def to_html(report: RunReport, lang: Lang | None = None) -> str:
    """The HTML report of a run (one self-contained page), in ``lang`` (default: the language in use)."""
    t = translator(lang) if lang is not None else current()
    page, _ = _Page(t), t.gettext
    w = {key: _e(text) for key, text in {
        "title": _("LPS API test report — {bal}").format(bal=report.bal),
        "h1": _("Test report — MSSanté LPS API"),
        "meta": _("Conformance run against the MSSanté Référentiel socle #2, on the mssante sandbox "
                  "(a local equivalent of MOTCO2)."),
        "result": _("Result"), "reason": _("Reason"), "profile": _("Profile"), "bal": _("BAL tested"),
        "domain": _("Domain"), "started": _("Started"), "ended": _("Ended"), "tool": _("Tool"),
        "summary": _("Summary"), "case": _("Case"), "case_title": _("Title"), "requirements": _("Requirements"),
        "duration": _("Duration"), "details": _("Case details"),
        "footer": _("Requirement ids: Référentiel #2 v1.0.1 (ECO.x.y.z) and REM Ségur wave 2 (SC.MSS/CONF.nn, "
                    "MSS/va1.nn) from the published mappings; the official list of MOTCO2 tests is not public, so "
                    "this report does not replace passing MOTCO2."),
        "interrupted": _("run interrupted before this case"),
    }.items()}
    count = _("{status}: {count}")
    totals = " ".join(f'<span class="st-{s.value}">{_e(count.format(status=status_label(s, t), count=report.count(s)))}'
                      "</span>" for s in Status)
    if report.not_run:
        not_run = _("Not run (run interrupted): {count}").format(count=len(report.not_run))
        totals += f' <span class="st-skipped">{_e(not_run)}</span>'
    why = reason(report, t)
    rows = "\n".join(page.summary_row(r) for r in report.results)
    rows += "".join(f'<tr><td>{_e(i)}</td><td colspan="3">{page.status(Status.SKIPPED)} — {w["interrupted"]}</td>'
                    "<td></td></tr>" for i in report.not_run)
    sections = "\n".join(page.case_section(r) for r in report.results)
    return f"""<!DOCTYPE html>
<html lang="{t.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{w["title"]}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{w["h1"]}</h1>
<p class="meta">{w["meta"]}</p>
<dl class="facts">
<dt>{w["result"]}</dt><dd class="status st-{"pass" if report.ok else "fail"}">{_e(verdict_label(report, t))}</dd>
{f"<dt>{w['reason']}</dt><dd>{_e(why)}</dd>" if why else ""}
<dt>{w["profile"]}</dt><dd>{_e(profile_label(report.profile, t))}</dd>
<dt>{w["bal"]}</dt><dd>{_e(report.bal)}</dd>
<dt>LPS</dt><dd>{_e(report.client)}</dd>
<dt>{w["domain"]}</dt><dd>{_e(report.sandbox_domain)}</dd>
<dt>{w["started"]}</dt><dd>{_e(page.when(report.started_at))}</dd>
<dt>{w["ended"]}</dt><dd>{_e(page.when(report.ended_at))}</dd>
<dt>{w["tool"]}</dt><dd>mssante {_e(report.tool_version)}</dd>
</dl>
<p class="totals">{totals}</p>
</header>
<main>
<h2>{w["summary"]}</h2>
<table>
<thead><tr><th>{w["case"]}</th><th>{w["case_title"]}</th><th>{w["requirements"]}</th><th>{w["result"]}</th>
<th>{w["duration"]}</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<h2>{w["details"]}</h2>
{sections}
</main>
<footer>{w["footer"]}</footer>
</body>
</html>
"""
