"""Machine-readable forms of a run: JSON (round-trips) and JUnit XML (one testcase per case).

JUnit mapping: one ``<testsuite>`` named after the profile; each case is a ``<testcase>``
whose ``classname`` is the profile and ``name`` is ``<id> <code>``; a failing case has a
``<failure>`` whose ``message`` is the explanation (French, as the case wrote it) and whose text
is the evidence; an errored case has an ``<error>``; a skipped case a ``<skipped>``. CI servers
(GitLab, Jenkins) show these directly. The few words of our own (a case not run) follow the
language in use (:mod:`mssante._i18n`).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from mssante._i18n import gettext
from mssante.conformance._model import CaseResult, RunReport, Status
from mssante.errors import ContentError

__all__ = ["from_json", "to_json", "to_junit"]


def to_json(report: RunReport) -> str:
    """The report as JSON text (what ``--json`` and ``latest.json`` hold)."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def from_json(text: str) -> RunReport:
    """Read a report written by :func:`to_json`.

    Raises:
        ContentError: not JSON, or not a conformance run.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ContentError(f"the conformance report is not JSON: {exc}") from exc
    return RunReport.from_dict(data)


def _evidence_text(result: CaseResult) -> str:
    blocks = []
    for e in result.evidence:
        blocks.append("\n".join([f"== {e.title}", *e.lines]))
    return "\n\n".join([result.explanation, *blocks])


def _strip_controls(text: str) -> str:
    # XML 1.0 §2.2 forbids most C0 controls even as character references.
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)


def to_junit(report: RunReport) -> str:
    """The report as JUnit XML text."""
    suite = ET.Element("testsuite", {
        "name": f"mssante-conformance-{report.profile.value}",
        "tests": str(len(report.results) + len(report.not_run)),
        "failures": str(report.count(Status.FAIL)),
        "errors": str(report.count(Status.ERROR)),
        "skipped": str(report.count(Status.SKIPPED) + len(report.not_run)),
        "time": f"{max(0.0, report.ended_at - report.started_at):.3f}",
        "timestamp": datetime.fromtimestamp(report.started_at, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("bal", report.bal), ("client", report.client), ("domain", report.sandbox_domain),
                        ("tool_version", report.tool_version)):
        ET.SubElement(props, "property", {"name": name, "value": _strip_controls(value)})
    for r in report.results:
        case = ET.SubElement(suite, "testcase", {
            "classname": report.profile.value, "name": f"{r.case_id} {r.code}", "time": f"{r.duration:.3f}",
        })
        message = _strip_controls(r.explanation)
        if r.status is Status.FAIL:
            ET.SubElement(case, "failure", {"message": message, "type": ",".join(r.requirements)}).text = \
                _strip_controls(_evidence_text(r))
        elif r.status is Status.ERROR:
            ET.SubElement(case, "error", {"message": message}).text = _strip_controls(_evidence_text(r))
        elif r.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", {"message": message})
        else:
            ET.SubElement(case, "system-out").text = _strip_controls(_evidence_text(r))
    for case_id in report.not_run:  # the run stopped before them: shown, never counted as passed
        case = ET.SubElement(suite, "testcase", {"classname": report.profile.value, "name": case_id, "time": "0"})
        text = gettext("Not run: {reason}").format(reason=report.interruption)
        ET.SubElement(case, "skipped", {"message": _strip_controls(text)})
    root = ET.Element("testsuites", {"name": "mssante conformance"})
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
