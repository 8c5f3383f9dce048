"""What the webmail's « Conformité » page shows: the last run of each profile, and the run going on.

Two sources (their case titles and explanations are French, as the suite writes them; the
page's own words come from the catalogue, in the reader's language):

* ``STATE_DIR/conformance/latest-<profile>.json`` (written by ``mssante conformance run``): per
  profile, the date, the BAL, the LPS, the overall verdict and, per case, its id, French title,
  French verdict and explanation (``latest.json``, the last run of any profile, as a fallback);
* the run events the suite publishes to this sandbox (:class:`~mssante.sandbox.api.events.ConformanceFeed`):
  the run going on, case by case; the page follows them live (``/static/conformance.js``).

The webmail does not import :mod:`mssante.conformance` (nothing below the suite does): it reads
the JSON forms only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from mssante._i18n import N_, gettext

__all__ = ["CaseRow", "LiveRun", "ProfileRun", "live_run", "page_words", "profile_runs", "status_label",
           "verdict_label"]

PROFILES: Final = (("per-org", N_("BAL PER/ORG (Pro Santé Connect)")),
                   ("app", N_("Application BAL (AUTH_CLI certificate)")))
#: The label of each case status (catalogue ids); ``pending``: announced, not started yet.
STATUS_LABELS: Final = {"pass": N_("Conformant"), "fail": N_("Not conformant"), "error": N_("Error"),
                        "skipped": N_("Not run"), "running": N_("Running…"), "not_run": N_("Not run"),
                        "pending": N_("Waiting")}
_VERDICTS: Final = {"CONFORME": N_("CONFORMANT"), "NON CONFORME": N_("NOT CONFORMANT")}


def status_label(status: str, fallback: str = "") -> str:
    """The label of a case status in the language in use (``fallback``, else ``status``, when unknown)."""
    label = STATUS_LABELS.get(status)
    return gettext(label) if label else fallback or status


def verdict_label(verdict: str) -> str:
    """A run's verdict as the suite writes it (``CONFORME``, ``NON CONFORME``) in the language in use."""
    label = _VERDICTS.get(verdict)
    return gettext(label) if label else verdict


def page_words() -> dict[str, str]:
    """The words the live page's script shows, in the language in use (``data-t`` of the page)."""
    words = {status: gettext(label) for status, label in STATUS_LABELS.items()}
    words |= {verdict: gettext(label) for verdict, label in _VERDICTS.items()}
    words |= {"over": gettext("Run over: {verdict}").format(verdict=""), "case": "",
              "colon": gettext("{status}: {count}").format(status="", count="")}
    return words


def french_date(epoch: Any) -> str:
    """``06/12/2026 à 08:15:02 (UTC+01:00)`` (English: ``12/06/2026 at 08:15:02 (UTC+01:00)``), in the
    sandbox's local time, in the language in use; empty when unknown.
    """
    try:
        moment = datetime.fromtimestamp(float(epoch)).astimezone()
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    offset = moment.strftime("%z")
    return gettext("{date} at {time} (UTC{offset})").format(
        date=moment.strftime(gettext("%m/%d/%Y")), time=f"{moment:%H:%M:%S}", offset=f"{offset[:3]}:{offset[3:]}")


def _iso_epoch(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, kw_only=True)
class CaseRow:
    """One case of a run: id, French title, status and its French label, explanation."""

    id: str
    title: str
    status: str
    status_fr: str
    explanation: str = ""
    requirements: str = ""


@dataclass(frozen=True, kw_only=True)
class ProfileRun:
    """The last run of one profile (``rows`` empty and ``found`` False when there is none)."""

    profile: str
    label: str
    found: bool = False
    date: str = ""
    bal: str = ""
    lps: str = ""
    verdict: str = ""
    summary: str = ""
    reason: str = ""
    rows: tuple[CaseRow, ...] = ()
    error: str = ""


def _rows(results: Any) -> tuple[CaseRow, ...]:
    out = []
    for item in results if isinstance(results, list) else ():
        if not isinstance(item, dict):
            continue
        status = str(item.get("status", ""))
        explanation = str(item.get("explanation", ""))
        out.append(CaseRow(id=str(item.get("case_id", "")), title=str(item.get("title_fr", "")), status=status,
                           status_fr=str(item.get("status_fr") or status), explanation=explanation,
                           requirements=", ".join(str(r) for r in item.get("requirements", ()))))
    return tuple(out)


def _summary(summary: Any) -> str:
    if not isinstance(summary, dict):
        return ""
    parts = [gettext("{status}: {count}").format(status=status_label(k).lower(), count=summary[k])
             for k in ("pass", "fail", "error", "skipped", "not_run") if isinstance(summary.get(k), int) and summary[k]]
    return ", ".join(parts)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def profile_runs(state_dir: Path) -> list[ProfileRun]:
    """The last run of each profile, from ``STATE_DIR/conformance``.

    Raises:
        Nothing: an unreadable file becomes a :class:`ProfileRun` with ``error`` set.
    """
    folder = state_dir / "conformance"
    out = []
    for profile, label in PROFILES:
        try:
            data = _read(folder / f"latest-{profile}.json")
            if data is None:
                fallback = _read(folder / "latest.json")
                data = fallback if fallback is not None and fallback.get("profile") == profile else None
        except (OSError, ValueError) as exc:
            out.append(ProfileRun(profile=profile, label=label, error=str(exc)))
            continue
        if data is None:
            out.append(ProfileRun(profile=profile, label=label))
            continue
        summary: dict[str, Any] = data["summary"] if isinstance(data.get("summary"), dict) else {}
        verdict = str(summary.get("verdict") or ("CONFORME" if summary.get("ok") else "NON CONFORME"))
        not_run = [str(i) for i in data.get("not_run", ())]
        reason = str(data.get("interruption", ""))
        rows = _rows(data.get("results"))
        rows += tuple(CaseRow(id=i, title="", status="not_run", status_fr="Non exécuté") for i in not_run)
        out.append(ProfileRun(profile=profile, label=label, found=True, date=french_date(data.get("started_at")),
                              bal=str(data.get("bal", "")), lps=str(data.get("client", "")), verdict=verdict,
                              summary=_summary(summary), reason=reason, rows=rows))
    return out


@dataclass(kw_only=True)
class LiveRun:
    """The last run published to this sandbox, as its events tell it."""

    run_id: str
    profile: str
    bal: str
    lps: str
    date: str
    rows: list[CaseRow] = field(default_factory=list)
    verdict: str = ""
    reason: str = ""
    current: str = ""

    @property
    def running(self) -> bool:
        """No ``end`` event yet."""
        return not self.verdict


def live_run(events: list[dict[str, Any]]) -> LiveRun | None:
    """Fold the events of one run (``run`` first) into a :class:`LiveRun`; None without a ``run`` event."""
    if not events or events[0].get("type") != "run":
        return None
    head = events[0]
    started = _iso_epoch(head.get("time"))
    run = LiveRun(run_id=str(head.get("run_id", "")), profile=str(head.get("profile", "")),
                  bal=str(head.get("bal", "")), lps=str(head.get("lps", "")),
                  date=french_date(started) if started is not None else "")
    titles: dict[str, str] = {}
    by_id: dict[str, CaseRow] = {}
    for case_id in head.get("cases", ()):
        by_id[str(case_id)] = CaseRow(id=str(case_id), title="", status="pending", status_fr="En attente")
    for event in events[1:]:
        kind = event.get("type")
        case_id = str(event.get("case", ""))
        if kind == "case":
            titles[case_id] = str(event.get("title_fr", ""))
            by_id[case_id] = CaseRow(id=case_id, title=titles[case_id], status="running", status_fr="En cours…")
            run.current = case_id
        elif kind == "step" and case_id in by_id:
            row = by_id[case_id]
            by_id[case_id] = CaseRow(id=case_id, title=row.title, status=row.status, status_fr=row.status_fr,
                                     explanation=f"➜ {event.get('text_fr', '')}")
        elif kind == "verdict":
            status = str(event.get("status", ""))
            by_id[case_id] = CaseRow(id=case_id, title=str(event.get("title_fr") or titles.get(case_id, "")),
                                     status=status, status_fr=str(event.get("status_fr") or status),
                                     explanation=str(event.get("explanation", "")),
                                     requirements=", ".join(str(r) for r in event.get("requirements", ())))
        elif kind == "end":
            run.verdict = str(event.get("verdict", ""))
            run.reason = str(event.get("reason_fr", ""))
            run.current = ""
    run.rows = list(by_id.values())
    return run
