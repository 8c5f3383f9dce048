"""The data of the conformance suite: cases, verdicts, evidence, results and whole runs.

Everything here is a frozen dataclass with keyword-only fields and a JSON form
(``to_dict``/``from_dict``), so a run can be written to ``latest.json``, read back by the
webmail, and rendered as HTML or JUnit XML without re-running anything.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mssante.errors import ContentError, UsageError

if TYPE_CHECKING:
    from mssante.conformance._context import CaseContext

__all__ = [
    "FORMAT_VERSION",
    "Case",
    "CaseResult",
    "Cause",
    "Evidence",
    "Profile",
    "RunReport",
    "Status",
    "Verdict",
]

#: Version of the JSON form of a run (``latest.json``); bump on incompatible changes.
FORMAT_VERSION = 1


class Profile(StrEnum):
    """The two MOTCO2 families: BAL PER/ORG (Pro Santé Connect) and BAL APP (AUTH_CLI certificate)."""

    PER_ORG = "per-org"
    APP = "app"


class Status(StrEnum):
    """Outcome of one case."""

    PASS = "pass"  # noqa: S105 - an outcome name, not a password
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def label_fr(self) -> str:
        """The French label shown in reports."""
        return {"pass": "Conforme", "fail": "Non conforme", "error": "Erreur", "skipped": "Non exécuté"}[self.value]


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One piece of evidence: a titled block of short lines (journal excerpt, headers, findings).

    Attributes:
        title: what the block shows, in French (``Session IMAP #4``, ``En-têtes du message``).
        lines: the content, one fact per line; never a token or a message body.
    """

    title: str
    lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"title": self.title, "lines": list(self.lines)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        """Read the JSON form.

        Raises:
            ContentError: a field is missing or has the wrong type.
        """
        try:
            return cls(title=str(data["title"]), lines=tuple(str(x) for x in data.get("lines", ())))
        except (KeyError, TypeError) as exc:
            raise ContentError(f"invalid evidence in a conformance result: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class Cause:
    """A known client-side protocol mistake recognised in the journal, and its fix.

    Attributes:
        code: stable English code (``auth-line-too-long``, ``oauthbearer``...).
        fr: the cause and the fix, in French, for the person reading the report.
    """

    code: str
    fr: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"code": self.code, "fr": self.fr}


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What a case's check concludes: a status, a French explanation and the evidence.

    The explanation says what was observed and which rule it breaks (or satisfies).
    """

    status: Status
    explanation: str
    evidence: tuple[Evidence, ...] = ()
    cause: Cause | None = None

    def because(self, cause: Cause | None) -> Verdict:
        """This verdict with ``cause`` named (its French text appended to the explanation)."""
        if cause is None:
            return self
        return Verdict(status=self.status, explanation=f"{self.explanation} Cause probable : {cause.fr}",
                       evidence=self.evidence, cause=cause)

    @classmethod
    def passed(cls, explanation: str, evidence: Sequence[Evidence] = ()) -> Verdict:
        """A passing verdict."""
        return cls(status=Status.PASS, explanation=explanation, evidence=tuple(evidence))

    @classmethod
    def failed(cls, explanation: str, evidence: Sequence[Evidence] = ()) -> Verdict:
        """A failing verdict (the LPS broke the rule)."""
        return cls(status=Status.FAIL, explanation=explanation, evidence=tuple(evidence))

    @classmethod
    def errored(cls, explanation: str, evidence: Sequence[Evidence] = ()) -> Verdict:
        """The case could not be judged (sandbox problem, missing evidence that is not the LPS's fault)."""
        return cls(status=Status.ERROR, explanation=explanation, evidence=tuple(evidence))

    @classmethod
    def skipped(cls, explanation: str) -> Verdict:
        """The case was not run (not applicable, or an input such as the trace file is missing)."""
        return cls(status=Status.SKIPPED, explanation=explanation)


Check = Callable[["CaseContext"], Awaitable[Verdict]]


@dataclass(frozen=True, kw_only=True)
class Case:
    """One conformance test case, keyed by the Référentiel #2 requirements it judges.

    Attributes:
        id: stable identifier, ``PERORG-01`` or ``APP-01``.
        code: short English code, e.g. ``imap-starttls``.
        title_fr: French title shown in reports and by ``mssante conformance list``.
        requirements: Ref #2 ids (``ECO.1.0.2``), with the Ségur REM id where the research maps
            one (``SC.MSS/CONF.06``), or an RFC section when no ECO text is known.
        profile: the family the case belongs to.
        needs_action: True when someone must act in the LPS under test during the case
            (connect, send, read); False when the LPS must react on its own.
        timeout: seconds allowed for the evidence to appear with an external LPS; the run
            settings scale it (``time_scale``) for automated drivers.
        check: the coroutine function that drives the sandbox and judges.
    """

    id: str
    code: str
    title_fr: str
    requirements: tuple[str, ...]
    profile: Profile
    needs_action: bool
    timeout: float
    check: Check = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id or not self.title_fr or not self.requirements:
            raise UsageError("a case needs an id, a French title and at least one requirement")
        if self.timeout <= 0:
            raise UsageError(f"case {self.id}: timeout must be > 0")

    async def run(self, ctx: CaseContext) -> CaseResult:
        """Run the check and wrap its verdict with the case's identity and timing.

        A failure gets its probable cause named when the journal shows a known client-side
        mistake (:mod:`mssante.conformance._causes`). Unexpected exceptions become an ``error``
        result (never propagated), so that a job always produces a complete report.

        Raises:
            Nothing (``asyncio.CancelledError`` excepted).
        """
        started = time.time()
        try:
            verdict = await self.check(ctx)
            if verdict.status is Status.FAIL and verdict.cause is None:
                verdict = verdict.because(await ctx.diagnose(started))
        except Exception as exc:  # a broken check or sandbox must not stop the job
            verdict = Verdict.errored(f"Le cas n'a pas pu être exécuté : {type(exc).__name__}: {exc}")
        return CaseResult.of(self, verdict, started=started, ended=time.time())


@dataclass(frozen=True, kw_only=True)
class CaseResult:
    """The result of one case, self-contained (it repeats the case's identity)."""

    case_id: str
    code: str
    title_fr: str
    requirements: tuple[str, ...]
    profile: Profile
    status: Status
    explanation: str
    evidence: tuple[Evidence, ...] = ()
    started_at: float = 0.0
    duration: float = 0.0
    cause: Cause | None = None

    @classmethod
    def of(cls, case: Case, verdict: Verdict, *, started: float, ended: float) -> CaseResult:
        """Combine a case and its verdict."""
        return cls(
            case_id=case.id, code=case.code, title_fr=case.title_fr, requirements=case.requirements,
            profile=case.profile, status=verdict.status, explanation=verdict.explanation,
            evidence=verdict.evidence, started_at=started, duration=max(0.0, ended - started), cause=verdict.cause,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "case_id": self.case_id, "code": self.code, "title_fr": self.title_fr,
            "requirements": list(self.requirements), "profile": self.profile.value, "status": self.status.value,
            "explanation": self.explanation, "evidence": [e.to_dict() for e in self.evidence],
            "started_at": self.started_at, "duration": self.duration,
            "cause": None if self.cause is None else self.cause.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseResult:
        """Read the JSON form.

        Raises:
            ContentError: a field is missing or invalid.
        """
        try:
            return cls(
                case_id=str(data["case_id"]), code=str(data["code"]), title_fr=str(data["title_fr"]),
                requirements=tuple(str(r) for r in data["requirements"]), profile=Profile(data["profile"]),
                status=Status(data["status"]), explanation=str(data["explanation"]),
                evidence=tuple(Evidence.from_dict(e) for e in data.get("evidence", ())),
                started_at=float(data.get("started_at", 0.0)), duration=float(data.get("duration", 0.0)),
                cause=_cause(data.get("cause")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ContentError(f"invalid conformance result: {exc}") from exc


def _cause(data: Any) -> Cause | None:
    if not isinstance(data, Mapping):
        return None
    return Cause(code=str(data.get("code", "")), fr=str(data.get("fr", "")))


@dataclass(frozen=True, kw_only=True)
class RunReport:
    """A whole run (the "CR de test"): which LPS, which BAL, which profile, every result."""

    profile: Profile
    bal: str
    client: str
    sandbox_domain: str
    started_at: float
    ended_at: float
    results: tuple[CaseResult, ...]
    tool_version: str = ""
    not_run: tuple[str, ...] = ()
    interruption: str = ""

    def count(self, status: Status) -> int:
        """How many results have ``status``."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def complete(self) -> bool:
        """True when every selected case was judged (the run was not interrupted)."""
        return not self.not_run and not self.interruption

    @property
    def ok(self) -> bool:
        """The overall verdict, CONFORME: every selected case ran and passed.

        A case that failed, errored or was skipped, or a run that stopped early, is never
        CONFORME: the report claims no more than was judged.
        """
        return bool(self.results) and self.complete and all(r.status is Status.PASS for r in self.results)

    @property
    def verdict(self) -> str:
        """``CONFORME`` or ``NON CONFORME``."""
        return "CONFORME" if self.ok else "NON CONFORME"

    def reason_fr(self) -> str:
        """Why the run is not CONFORME (French), or an empty string."""
        parts = []
        if self.interruption:
            parts.append(self.interruption)
        if self.not_run:
            parts.append(f"{len(self.not_run)} cas non exécuté(s) : {', '.join(self.not_run)}")
        for status in (Status.FAIL, Status.ERROR, Status.SKIPPED):
            ids = [r.case_id for r in self.results if r.status is status]
            if ids:
                parts.append(f"{status.label_fr.lower()} : {', '.join(ids)}")
        if not self.results and not parts:
            parts.append("aucun cas jugé")
        return " ; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``latest.json``, ``--json``)."""
        return {
            "format": FORMAT_VERSION, "profile": self.profile.value, "bal": self.bal, "client": self.client,
            "sandbox_domain": self.sandbox_domain, "started_at": self.started_at, "ended_at": self.ended_at,
            "tool_version": self.tool_version,
            "summary": {s.value: self.count(s) for s in Status} | {
                "not_run": len(self.not_run), "total": len(self.results) + len(self.not_run), "ok": self.ok,
                "verdict": self.verdict, "complete": self.complete},
            "not_run": list(self.not_run), "interruption": self.interruption,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        """Read the JSON form.

        Raises:
            ContentError: not a conformance run of a known format.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_VERSION:
            raise ContentError("not a conformance run (unknown or missing 'format')")
        try:
            return cls(
                profile=Profile(data["profile"]), bal=str(data["bal"]), client=str(data["client"]),
                sandbox_domain=str(data["sandbox_domain"]), started_at=float(data["started_at"]),
                ended_at=float(data["ended_at"]), tool_version=str(data.get("tool_version", "")),
                results=tuple(CaseResult.from_dict(r) for r in data["results"]),
                not_run=tuple(str(i) for i in data.get("not_run", ())), interruption=str(data.get("interruption", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ContentError(f"invalid conformance run: {exc}") from exc
