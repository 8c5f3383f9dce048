"""What a case works with: the sandbox control, the LPS driver, the BALs, timing, and helpers.

Waiting is always bounded: :meth:`CaseContext.wait_for` polls the sandbox until a probe
returns something or the (scaled) deadline passes. Nothing here judges; it gathers evidence.

Deadlines, polling intervals and quiet windows are waited on :attr:`CaseContext.clock` (a
:class:`mssante.clock.Clock`), so a test can run a case's minutes of waiting instantly with a
:class:`mssante.testing.FakeClock`. The timestamps compared with the journal (``since``) stay on
the wall clock the sandbox writes them with.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.conformance._causes import diagnose
from mssante.conformance._control import SandboxControl
from mssante.conformance._driver import DocumentKind, LPSDriver, SendRequest, Understood
from mssante.conformance._events import ACK_GRACE, RunEvents
from mssante.conformance._judge import Submission, header, submissions
from mssante.conformance._model import Case, Cause, Evidence, Profile
from mssante.errors import MssanteError, UsageError
from mssante.sandbox.fronts.journal import SessionRecord

__all__ = ["CaseContext", "RunSettings"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Timing of a run. Defaults suit a person driving an external LPS.

    Attributes:
        time_scale: multiplies every case timeout (0.05 for an automated driver in tests).
        poll_interval: how often the journal and mailboxes are polled, in seconds.
        quiet_window: how long to watch for unwanted retries after a refusal.
        min_retry_interval: shortest acceptable gap between two attempts after
            ``[UNAVAILABLE]``; closer attempts are a tight loop (ECO.1.2.3).
        unavailable_for: how long the service stays unavailable in the UNAVAILABLE cases.
    """

    time_scale: float = 1.0
    poll_interval: float = 0.25
    quiet_window: float = 10.0
    min_retry_interval: float = 1.0
    unavailable_for: float = 10.0

    def __post_init__(self) -> None:
        if min(self.time_scale, self.poll_interval, self.quiet_window, self.unavailable_for) <= 0:
            raise UsageError("run settings must be positive")
        if self.min_retry_interval < 0:
            raise UsageError("min_retry_interval must be >= 0")


@dataclass(kw_only=True)
class CaseContext:
    """Shared by the cases of one job; :attr:`case` is set by the runner before each case.

    Attributes:
        bal: the BAL under test; ``peer``: another BAL of the sandbox the LPS writes to and
        that sends it messages; ``responder``: the XDM auto-responder address (if any).
        shared: a cache between cases of one job (e.g. the document message already sent,
            so one sending serves several message cases).
        product_reference: the X-MSS-NIL declared for the LPS under test (``--product-reference``,
            ECO.2.4.3), or None when not declared.
    """

    control: SandboxControl
    driver: LPSDriver
    profile: Profile
    bal: str
    peer: str
    responder: str | None
    settings: RunSettings = field(default_factory=RunSettings)
    trace_file: Path | None = None
    product_reference: str | None = None
    events: RunEvents | None = None
    job_started: float = field(default_factory=time.time)
    case: Case | None = None
    shared: dict[str, Any] = field(default_factory=dict)
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)

    # ------------------------------------------------------------------ timing

    def bound(self, seconds: float | None = None) -> float:
        """``seconds`` (default: the current case's timeout) scaled by the run settings.

        Raises:
            UsageError: no seconds given and no current case.
        """
        if seconds is None:
            if self.case is None:
                raise UsageError("no current case")
            seconds = self.case.timeout
        return seconds * self.settings.time_scale

    async def wait_for(self, probe: Callable[[], Awaitable[T | None]], within: float, *,
                       asked: bool = False) -> T | None:
        """Poll ``probe`` until it returns a value (returned) or ``within`` seconds pass (None).

        ``asked``: the evidence is what the case's steps asked the LPS to do; once the LPS has
        acknowledged them all (``--events``), the wait ends :data:`ACK_GRACE` seconds after the
        last acknowledgement instead of at the deadline.

        Raises:
            Whatever ``probe`` raises; TransportError: the sandbox cannot be reached.
        """
        clock = self.clock
        deadline = clock.now() + within
        shortened = False
        while True:
            found = await probe()
            if found is not None:
                return found
            now = clock.now()
            if now >= deadline:
                return None
            if asked and not shortened and self.events is not None:
                acked = await self.events.acked_at()  # a wall-clock time, as the events file writes it
                if acked is not None:
                    shortened = True
                    deadline = min(deadline, now + max(0.0, acked + ACK_GRACE - time.time()))
            await clock.sleep(min(self.settings.poll_interval, max(0.0, deadline - clock.now())))

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the run's clock (a quiet window, a spell of unavailability).

        Raises:
            asyncio.CancelledError: the case was cancelled (its hard limit passed).
        """
        await self.clock.sleep(seconds)

    async def diagnose(self, since: float) -> Cause | None:
        """The known client-side mistake behind a failure, from the BAL's sessions since ``since``
        (or since the shared connection window, when a case judges it).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        window = self.shared.get("window_since")
        start = min(since, window) if isinstance(window, float) else since
        records = [r for r in await self.control.records(since=start) if self._mine(r)]
        return diagnose(records, self.case.code if self.case is not None else "")

    def notes(self) -> list[Evidence]:
        """What the LPS's driver reported while the job asked it for the shared messages."""
        return [n for n in self.shared.get("notes", []) if isinstance(n, Evidence)]

    # ------------------------------------------------------------------ driver actions

    async def act(self, action: Awaitable[object], what: str) -> Evidence | None:
        """Run a driver action; an error it raises becomes evidence, not a crash.

        The LPS under test may fail an action (that is often what a case provokes); the case
        judges from the journal either way, so any :class:`Exception` of the driver is kept as
        evidence. Cancellation still propagates.

        Raises:
            Nothing (``asyncio.CancelledError`` excepted).
        """
        try:
            await action
        except MssanteError as exc:
            return Evidence(title=f"Réaction du LPS : {what}", lines=(f"{type(exc).__name__}: {exc}",))
        except Exception as exc:  # the LPS's own failure, whatever its type
            return Evidence(title=f"Échec du LPS : {what}", lines=(f"{type(exc).__name__}: {str(exc)[:300]}",))
        return None

    async def read(self) -> tuple[Sequence[Understood] | None, Evidence | None]:
        """Ask the LPS to read its new messages: what it says it understood, and its error as evidence.

        Raises:
            Nothing (``asyncio.CancelledError`` excepted).
        """
        got: list[Sequence[Understood] | None] = [None]

        async def reading() -> None:
            got[0] = await self.driver.read_new_messages()

        note = await self.act(reading(), "lecture")
        return got[0], note

    # ------------------------------------------------------------------ journal

    def _mine(self, record: SessionRecord) -> bool:
        return record.bal is None or record.bal.lower() == self.bal.lower()

    async def sessions(self, since: float, protocol: str | None = None) -> list[SessionRecord]:
        """Sessions started at or after ``since`` for the BAL (or not yet bound to a BAL).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        return [r for r in await self.control.records(since=since)
                if self._mine(r) and (protocol is None or r.protocol == protocol)]

    async def live_sessions(self, protocol: str = "imap") -> list[SessionRecord]:
        """Authenticated sessions of the BAL that are still open.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        return [r for r in await self.control.records(since=self.job_started - 3600)
                if (r.bal or "").lower() == self.bal.lower() and r.protocol == protocol
                and r.ended_at is None and r.auth_result == "OK"]

    async def ensure_live_session(self, within: float | None = None) -> SessionRecord | None:
        """Ask the LPS for an open IMAP session and wait until the journal shows one.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        live = await self.live_sessions()
        if live:
            return live[-1]
        await self.act(self.driver.open_session(), "ouverture de session")

        async def probe() -> SessionRecord | None:
            found = await self.live_sessions()
            return found[-1] if found else None

        return await self.wait_for(probe, self.bound(120.0) if within is None else within, asked=True)

    # ------------------------------------------------------------------ messages

    async def submissions(self, since: float) -> list[Submission]:
        """Messages the LPS submitted from the BAL since ``since``.

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        return submissions(await self.control.records(since=self.job_started - 3600), self.bal, since)

    async def wait_submission(
        self, since: float, accept: Callable[[Submission], bool], within: float
    ) -> Submission | None:
        """Wait for a submission accepted by ``accept``.

        Raises:
            TransportError: the sandbox cannot be reached.
        """

        async def probe() -> Submission | None:
            return next((s for s in await self.submissions(since) if accept(s)), None)

        return await self.wait_for(probe, within, asked=True)

    async def stored_copy(self, submission: Submission, within: float | None = None) -> bytes | None:
        """The submitted message as delivered to its first sandbox recipient (matched by Message-ID).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        wanted = submission.message_id
        if wanted is None or not submission.recipients:
            return None
        to = submission.recipients[0]

        async def probe() -> bytes | None:
            try:
                for m in await self.control.list_messages(to):
                    if m.message_id == wanted:
                        return await self.control.get_message(to, "INBOX", m.uid)
            except UsageError:
                return None
            return None

        return await self.wait_for(probe, self.bound(10.0) if within is None else within)

    async def document_message(self, kind: DocumentKind = "crbio") -> tuple[Submission, bytes] | None:
        """A message with an XDM document sent by the LPS to :attr:`peer` during this job.

        Reuses the one already obtained by an earlier case of the job; otherwise asks the LPS
        to send one and waits for it (bounded by the case timeout).

        Raises:
            TransportError: the sandbox cannot be reached.
        """
        cached = self.shared.get("document")
        if cached is not None:
            sub, raw = cached
            assert isinstance(sub, Submission) and isinstance(raw, bytes)
            return sub, raw
        since = time.time()
        note = await self.act(self.driver.send_message(SendRequest(to=self.peer, document=kind)), "envoi")
        if note is not None:
            self.shared.setdefault("notes", []).append(note)

        def accept(s: Submission) -> bool:
            return self.peer.lower() in (r.lower() for r in s.recipients) and (
                "multipart/mixed" in (header(s.entry.get("headers", {}), "Content-Type") or "").lower())

        sub = await self.wait_submission(since, accept, self.bound())
        if sub is None:
            return None
        raw = await self.stored_copy(sub)
        if raw is None:
            return None
        self.shared["document"] = (sub, raw)
        return sub, raw
