"""The CR de test: HTML parses and shows every case, JUnit XML is well formed and counts right, JSON round-trips."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from mssante.conformance import (
    CaseResult,
    Evidence,
    Profile,
    RunReport,
    Status,
    Verdict,
    catalogue,
    from_json,
    to_html,
    to_json,
    to_junit,
)
from mssante.errors import ContentError

STATUSES = [Status.PASS, Status.FAIL, Status.ERROR, Status.SKIPPED, Status.FAIL]


def make_report(profile: Profile) -> RunReport:
    results = []
    for case, status in zip(catalogue(profile), itertools.cycle(STATUSES), strict=False):
        verdict = Verdict(status=status, explanation=f"Explication <b>{case.id}</b> & « règle » \x07",
                          evidence=(Evidence(title="Session IMAP #1", lines=("C: a1 STARTTLS", "<script>x</script>")),))
        results.append(CaseResult.of(case, verdict, started=1_700_000_000.0, ended=1_700_000_001.5))
    return RunReport(profile=profile, bal="marie.curie@mss.sandbox.test", client="LPS externe",
                     sandbox_domain="mss.sandbox.test", started_at=1_700_000_000.0, ended_at=1_700_000_100.0,
                     results=tuple(results), tool_version="0.0-test")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in ("meta", "br", "link", "img", "input"):
            self.stack.append(tag)
        self.ids.update(v for k, v in attrs if k == "id" and v)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("profile", list(Profile), ids=lambda p: p.value)
def test_html_parses_and_mentions_each_case(profile: Profile) -> None:
    report = make_report(profile)
    page = to_html(report)
    parser = _Collect()
    parser.feed(page)
    parser.close()
    assert not parser.stack
    text = "".join(parser.text)
    for r in report.results:
        assert r.case_id in parser.ids
        assert r.title_fr in text
        assert r.status.label_fr in text
    assert "script" not in parser.tags  # evidence is escaped, never markup
    assert "<script>x</script>" in text
    assert "http" not in page.split("<body>")[0]  # no external resource in the head
    assert "@media print" in page
    assert 'lang="fr"' in page


@pytest.mark.parametrize("profile", list(Profile), ids=lambda p: p.value)
def test_junit_structure_and_counts(profile: Profile) -> None:
    report = make_report(profile)
    root = ET.fromstring(to_junit(report))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(report.results) == int(suite.get("tests", "-1"))
    assert int(suite.get("failures", "-1")) == report.count(Status.FAIL) == len(suite.findall("testcase/failure"))
    assert int(suite.get("errors", "-1")) == report.count(Status.ERROR) == len(suite.findall("testcase/error"))
    assert int(suite.get("skipped", "-1")) == report.count(Status.SKIPPED) == len(suite.findall("testcase/skipped"))
    for element, result in zip(cases, report.results, strict=True):
        assert element.get("classname") == profile.value
        assert element.get("name", "").startswith(result.case_id)
        failure = element.find("failure")
        if result.status is Status.FAIL:
            assert failure is not None
            assert failure.get("message") == result.explanation.replace("\x07", "")


@pytest.mark.parametrize("profile", list(Profile), ids=lambda p: p.value)
def test_json_round_trips(profile: Profile) -> None:
    report = make_report(profile)
    again = from_json(to_json(report))
    assert again == report
    assert to_json(again) == to_json(report)


def test_json_refuses_foreign_documents() -> None:
    with pytest.raises(ContentError):
        from_json('{"format": 99}')
    with pytest.raises(ContentError):
        from_json("not json")


def test_an_interrupted_run_reports_what_was_not_judged_and_the_named_cause() -> None:
    from dataclasses import replace

    from mssante.conformance import Cause

    full = make_report(Profile.APP)
    first = replace(full.results[0], status=Status.FAIL,
                    cause=Cause(code="auth-line-too-long", fr="envoyer la réponse après 334"))
    report = replace(full, results=(first,), not_run=tuple(r.case_id for r in full.results[1:]),
                     interruption="Le bac à sable ne répond plus.")
    assert not report.ok and not report.complete and report.verdict == "NON CONFORME"
    page = to_html(report)
    assert "NON CONFORME" in page and "Le bac à sable ne répond plus." in page
    assert all(i in page for i in report.not_run) and "campagne interrompue avant ce cas" in page
    assert "auth-line-too-long" in page and "envoyer la réponse après 334" in page
    suite = ET.fromstring(to_junit(report)).find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) == len(full.results)
    assert int(suite.get("skipped", "0")) == len(report.not_run) == len(suite.findall("testcase/skipped"))
    back = from_json(to_json(report))
    assert back.not_run == report.not_run and back.results[0].cause == first.cause and not back.ok
    data = report.to_dict()["summary"]
    assert data["complete"] is False and data["not_run"] == len(report.not_run) and data["verdict"] == "NON CONFORME"


def test_skipped_is_never_conforme() -> None:
    from dataclasses import replace

    full = make_report(Profile.PER_ORG)
    passing = tuple(replace(r, status=Status.PASS) for r in full.results)
    assert replace(full, results=passing).ok
    skipped = (*passing[:-1], replace(passing[-1], status=Status.SKIPPED))
    assert not replace(full, results=skipped).ok
    assert not replace(full, results=()).ok
