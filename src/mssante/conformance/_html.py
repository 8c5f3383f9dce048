"""The French HTML "CR de test": a self-contained page, readable on screen and printable.

No external resource (no font, script or image): the CSS is inline, with print rules
(A4 margins, no page break inside a case header, links not needed). Every text coming from
the run is escaped. The page has a header (LPS, BAL, profile, dates, totals), a summary
table, then one section per case with its explanation and evidence.
"""

from __future__ import annotations

import html
from datetime import datetime

from mssante.conformance._model import CaseResult, Profile, RunReport, Status

__all__ = ["to_html"]

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

_PROFILE_FR = {Profile.PER_ORG: "BAL PER/ORG (Pro Santé Connect)", Profile.APP: "BAL APP (certificat AUTH_CLI)"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%d/%m/%Y %H:%M:%S %Z").strip()


def _status(status: Status) -> str:
    return f'<span class="status st-{status.value}">{_e(status.label_fr)}</span>'


def _summary_row(r: CaseResult) -> str:
    return (f'<tr><td><a href="#{_e(r.case_id)}">{_e(r.case_id)}</a></td><td>{_e(r.title_fr)}</td>'
            f'<td class="req">{_e(", ".join(r.requirements))}</td><td>{_status(r.status)}</td>'
            f"<td>{r.duration:.1f} s</td></tr>")


def _case_section(r: CaseResult) -> str:
    parts = [
        f'<section class="case case-{r.status.value}" id="{_e(r.case_id)}">',
        f"<h3>{_e(r.case_id)} — {_e(r.title_fr)}</h3>",
        f'<p>{_status(r.status)} · <span class="req">{_e(", ".join(r.requirements))}</span> · '
        f"code <code>{_e(r.code)}</code> · {r.duration:.1f} s</p>",
        f'<p class="explanation">{_e(r.explanation)}</p>',
    ]
    if r.cause is not None:
        parts.append(f'<p class="cause">Cause identifiée (<code>{_e(r.cause.code)}</code>) : {_e(r.cause.fr)}</p>')
    for evidence in r.evidence:  # always shown: a printed CR keeps its evidence
        parts.append(f'<div class="evidence"><p class="ev-title">{_e(evidence.title)}</p>'
                     f"<pre>{_e(chr(10).join(evidence.lines))}</pre></div>")
    parts.append("</section>")
    return "\n".join(parts)


def to_html(report: RunReport) -> str:
    """The French HTML report of a run (one self-contained page).

    Raises:
        Nothing.
    """
    verdict = report.verdict
    totals = " ".join(f'<span class="st-{s.value}">{_e(s.label_fr)} : {report.count(s)}</span>' for s in Status)
    if report.not_run:
        totals += f' <span class="st-skipped">Non exécutés (campagne interrompue) : {len(report.not_run)}</span>'
    reason = report.reason_fr()
    rows = "\n".join(_summary_row(r) for r in report.results)
    rows += "".join(f'<tr><td>{_e(i)}</td><td colspan="3">{_status(Status.SKIPPED)} — campagne interrompue avant '
                    "ce cas</td><td></td></tr>" for i in report.not_run)
    sections = "\n".join(_case_section(r) for r in report.results)
    return f"""<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Compte rendu de test API LPS — {_e(report.bal)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Compte rendu de test — API LPS MSSanté</h1>
<p class="meta">Campagne de conformité au Référentiel socle MSSanté #2 contre le bac à sable mssante
(équivalent local de MOTCO2).</p>
<dl class="facts">
<dt>Résultat</dt><dd class="status st-{"pass" if report.ok else "fail"}">{verdict}</dd>
{f"<dt>Motif</dt><dd>{_e(reason)}</dd>" if reason else ""}
<dt>Profil</dt><dd>{_e(_PROFILE_FR[report.profile])}</dd>
<dt>BAL testée</dt><dd>{_e(report.bal)}</dd>
<dt>LPS</dt><dd>{_e(report.client)}</dd>
<dt>Domaine</dt><dd>{_e(report.sandbox_domain)}</dd>
<dt>Début</dt><dd>{_e(_when(report.started_at))}</dd>
<dt>Fin</dt><dd>{_e(_when(report.ended_at))}</dd>
<dt>Outil</dt><dd>mssante {_e(report.tool_version)}</dd>
</dl>
<p class="totals">{totals}</p>
</header>
<main>
<h2>Synthèse</h2>
<table>
<thead><tr><th>Cas</th><th>Intitulé</th><th>Exigences</th><th>Résultat</th><th>Durée</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<h2>Détail des cas</h2>
{sections}
</main>
<footer>Identifiants d'exigences : Référentiel #2 v1.0.1 (ECO.x.y.z) et REM Ségur vague 2 (SC.MSS/CONF.nn,
MSS/va1.nn) d'après les correspondances publiées ; la liste officielle des tests MOTCO2 n'étant pas publique,
ce compte rendu ne remplace pas le passage de MOTCO2.</footer>
</body>
</html>
"""
