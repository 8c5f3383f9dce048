"""The machine-readable run: JSON Lines events for an LPS harness in any language.

Schema: ``docs/schemas/conformance-events.schema.json`` (JSON Schema 2020-12, ``"v": 1``). A
run writes, in order, one ``run`` event, then per case a ``case`` event, the ``step`` events
asking the LPS to act (structured: action, BAL, recipients, document kind, MDN, deadline, and
the URL to acknowledge the step), the ``verdict``; and last an ``end`` event with the overall
verdict and the exit code. Each event goes to the ``--events`` file (or stdout) and to the
sandbox (``GET /api/conformance/events``), so a harness may follow either.

An acknowledged step (``POST /api/conformance/steps/{step}/done``) ends the case's wait for the
LPS's evidence shortly after (:data:`ACK_GRACE`): the suite judges at once instead of waiting
out the deadline. Acknowledgements never shorten the waits for the LPS's own *reactions*
(retries, reconnections): only for what the step asked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from mssante._version import __version__
from mssante.conformance._control import SandboxControl
from mssante.conformance._driver import StepAction
from mssante.conformance._model import Case, CaseResult, RunReport, Status
from mssante.errors import MssanteError

__all__ = ["ACK_GRACE", "EVENTS_VERSION", "RunEvents", "StepAction", "iso_time"]

#: ``v`` of every event (the schema's version).
EVENTS_VERSION: Final = 1
#: Seconds the suite still watches the journal after the last step of a case was acknowledged.
ACK_GRACE: Final = 1.0

EventSink = Callable[[dict[str, Any]], None]


def iso_time(epoch: float) -> str:
    """``epoch`` as ISO 8601 UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Pending:
    step: str
    action: str = ""
    acked_at: float | None = None
    ack: dict[str, Any] | None = None


@dataclass(kw_only=True)
class RunEvents:
    """Builds and delivers the events of one run (see the module docstring).

    Attributes:
        control: the sandbox, which receives every event and holds the step acknowledgements.
        sinks: where else each event goes (the ``--events`` file or stdout), synchronously.
        run_id: this run's id.
    """

    control: SandboxControl
    sinks: Sequence[EventSink] = ()
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    publish_errors: int = 0
    _case: Case | None = None
    _deadline: float = 0.0
    _steps: int = 0
    _pending: list[_Pending] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        """The sandbox API base URL (``http://127.0.0.1:PORT/api``)."""
        return str(self.control.info.get("api_url", "")).rstrip("/")

    async def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Write one event to the sinks and publish it to the sandbox; the event.

        A sandbox that does not take it is counted in :attr:`publish_errors` (the run goes on:
        the file stays complete).

        Raises:
            OSError: a sink cannot be written.
        """
        event = {"v": EVENTS_VERSION, "type": kind, "time": iso_time(time.time()), "run_id": self.run_id, **fields}
        for sink in self.sinks:
            sink(event)
        try:
            await self.control.publish_event(event)
        except MssanteError:
            self.publish_errors += 1
        return event

    async def run_started(self, *, profile: str, bal: str, peer: str, lps: str, cases: Sequence[Case]) -> None:
        """The ``run`` event.

        Raises:
            OSError: a sink cannot be written.
        """
        info = self.control.info
        sandbox = {"domain": str(info.get("domain", "")), "api_url": self.api_url,
                   "state_file": str(self.control.state_dir / "sandbox.json")}
        await self.emit("run", profile=profile, bal=bal, peer=peer, lps=lps, cases=[c.id for c in cases],
                        sandbox=sandbox, tool_version=__version__)

    async def case_started(self, case: Case, *, index: int, total: int, bound: float, bal: str) -> None:
        """The ``case`` event, and a ``wait`` step when the LPS must react on its own.

        Raises:
            OSError: a sink cannot be written.
        """
        self._case = case
        self._deadline = time.time() + bound
        self._pending = []
        await self.emit("case", case=case.id, code=case.code, title_fr=case.title_fr,
                        requirements=list(case.requirements), needs_action=case.needs_action, timeout=bound,
                        index=index, total=total)
        if not case.needs_action:
            await self.step("wait", {"bal": bal, "reason": case.code},
                            "Rien à faire : laissez le LPS connecté ; il doit réagir seul à ce que fait le bac à "
                            "sable.", track=False)

    async def step(self, action: StepAction, params: Mapping[str, Any], text_fr: str, *, track: bool = True) -> str:
        """A ``step`` event in the current case; its id (empty, and no event, outside a case).

        Raises:
            OSError: a sink cannot be written.
        """
        if self._case is None:
            return ""
        case_id = self._case.id
        self._steps += 1
        # The run's prefix makes the id unique across runs: the sandbox keeps acknowledgements by
        # step id, and a second run of the same profile must not find the first run's.
        step_id = f"{self.run_id[:12]}.{case_id}.{self._steps}"
        if track:
            self._pending.append(_Pending(step=step_id, action=action))
        await self.emit("step", case=case_id, step=step_id, action=action, params=dict(params),
                        deadline=iso_time(self._deadline),
                        ack={"method": "POST", "url": f"{self.api_url}/conformance/steps/{step_id}/done"},
                        text_fr=text_fr)
        return step_id

    async def acked_at(self) -> float | None:
        """When the last of the current case's steps was acknowledged; None while one is not (or none asked).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        if not self._pending:
            return None
        for pending in self._pending:
            if pending.acked_at is None:
                found = await self.control.step_ack(pending.step)
                if found is None:
                    return None
                pending.acked_at = float(found.get("at") or time.time())
                pending.ack = found
        return max(p.acked_at or 0.0 for p in self._pending)

    async def understood(self) -> list[dict[str, Any]] | None:
        """What the LPS reported understanding in its acknowledgements of the current case's ``read``
        steps (``understood``); None when no ``read`` step was acknowledged with it.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        found: list[dict[str, Any]] | None = None
        for pending in self._pending:
            if pending.action != "read":
                continue
            if pending.ack is None:
                pending.ack = await self.control.step_ack(pending.step)
            items = (pending.ack or {}).get("understood")
            if isinstance(items, list):
                found = [*(found or []), *(i for i in items if isinstance(i, dict))]
        return found

    async def verdict(self, result: CaseResult) -> None:
        """The ``verdict`` event.

        Raises:
            OSError: a sink cannot be written.
        """
        self._case = None
        self._pending = []
        await self.emit("verdict", case=result.case_id, code=result.code, title_fr=result.title_fr,
                        status=result.status.value, status_fr=result.status.label_fr, explanation=result.explanation,
                        **({"cause": result.cause.to_dict()} if result.cause is not None else {}),
                        requirements=list(result.requirements),
                        evidence=[e.to_dict() for e in result.evidence], duration=round(result.duration, 3))

    async def ended(self, report: RunReport) -> None:
        """The ``end`` event.

        Raises:
            OSError: a sink cannot be written.
        """
        counts = {s.value: report.count(s) for s in Status}
        counts |= {"not_run": len(report.not_run), "total": len(report.results) + len(report.not_run)}
        reason = report.reason_fr()
        await self.emit("end", verdict=report.verdict, complete=report.complete, counts=counts,
                        exit_code=0 if report.ok else 1, **({"reason_fr": reason} if reason else {}))
