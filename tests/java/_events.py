"""A stand-in for ``mssante conformance run --events``: the suite's driver actions as schema v1 events.

Until the event stream of the conformance suite lands on main, this :class:`LPSDriver` writes, for
each action the cases ask for, a ``step`` event (docs/schemas/conformance-events.schema.json) to a
JSON Lines file, and returns when the LPS acknowledges it with a POST to the step's ``ack.url``
(served here on loopback). ``run``, ``case``, ``verdict`` and ``end`` events frame the steps as the
schema orders them. The LPS under test (the Java one) only reads this file and ``sandbox.json``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mssante.conformance import CaseResult, Profile, RunReport, RunSettings, SendRequest, Status, select_cases
from mssante.errors import CommandFailed

_CASE = re.compile(r"^\[((?:PERORG|APP)-\d{2})\]")


def _now(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LPSActionFailed(CommandFailed):
    """The LPS acknowledged a step with ``ok: false``."""


class EventsDriver:
    """Writes the steps to ``path`` and waits for the LPS's acknowledgements."""

    def __init__(self, path: Path, *, profile: Profile, bal: str, peer: str, info: dict[str, Any],
                 settings: RunSettings, cases: tuple[str, ...] = (), step_timeout: float = 30.0) -> None:
        self.path = path
        self.profile = profile
        self.settings = settings
        self.catalogue = {c.id: c for c in select_cases(profile, cases)}
        self.run_id = uuid.uuid4().hex
        self.bal = bal
        self.step_timeout = step_timeout
        self.case: str | None = None
        self.steps = 0
        self.acks: list[dict[str, Any]] = []
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="events-ack", daemon=True)
        self._thread.start()
        path.write_text("", encoding="utf-8")
        self._write({"type": "run", "profile": profile.value, "bal": bal, "peer": peer, "lps": self.name,
                     "cases": list(self.catalogue), "sandbox": {"domain": info["domain"], "api_url": info["api_url"]}})

    @property
    def name(self) -> str:
        return "LPS Java d'exemple (flux d'événements)"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        driver = self

        class Ack(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = min(int(self.headers.get("Content-Length") or 0), 65536)
                body = self.rfile.read(size)
                step = self.path.rsplit("/", 1)[-1]
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    data = None
                found = driver._waiting.pop(step, None)
                if not isinstance(data, dict) or found is None:
                    self.send_response(404 if found is None else 400)
                    self.end_headers()
                    return
                loop, future = found
                loop.call_soon_threadsafe(lambda: future.done() or future.set_result(data))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Ack

    def _write(self, event: dict[str, Any]) -> None:
        line = json.dumps({"v": 1, "type": event.pop("type"), "time": _now(), "run_id": self.run_id, **event},
                          ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    async def _step(self, action: str, text_fr: str, **params: Any) -> None:
        if self.case is None:
            raise RuntimeError("a step outside a case")
        self.steps += 1
        step = f"{self.case}.{self.steps}"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiting[step] = (loop, future)
        host, port = self._server.server_address[:2]
        self._write({"type": "step", "case": self.case, "step": step, "action": action,
                     "params": {"bal": self.bal, **params}, "deadline": _now(self.step_timeout),
                     "ack": {"method": "POST", "url": f"http://{host!s}:{port}/ack/{step}"}, "text_fr": text_fr})
        try:
            ack = await asyncio.wait_for(future, self.step_timeout)
        except TimeoutError:
            self._waiting.pop(step, None)
            raise LPSActionFailed(f"no acknowledgement of step {step} within {self.step_timeout:g} s") from None
        self.acks.append({"step": step, "action": action, **ack})
        if ack.get("ok") is False:
            raise LPSActionFailed(str(ack.get("detail", "")))

    # -------------------------------------------------------------- LPSDriver
    async def inform(self, text: str) -> None:
        found = _CASE.match(text)
        if found and found.group(1) in self.catalogue:
            case = self.catalogue[found.group(1)]
            self.case = case.id
            self._write({"type": "case", "case": case.id, "code": case.code, "title_fr": case.title_fr,
                         "requirements": list(case.requirements), "needs_action": case.needs_action,
                         "timeout": case.timeout * self.settings.time_scale,
                         "index": list(self.catalogue).index(case.id) + 1, "total": len(self.catalogue)})

    async def open_session(self, *, fresh: bool = False) -> None:
        auth = "psc" if self.profile is Profile.PER_ORG else "certificate"
        if fresh:
            await self._step("reconnect", "Fermez puis rouvrez la messagerie de votre LPS.", auth=auth)
        else:
            await self._step("open-session", "Vérifiez que votre LPS est connecté, messagerie ouverte.", auth=auth)

    async def send_message(self, request: SendRequest) -> None:
        await self._step("send", f"Envoyez depuis votre LPS un message à {request.to}.", to=[request.to],
                         document=request.document, mdn=request.request_mdn, dsn=None)

    async def read_new_messages(self) -> None:
        await self._step("read", "Ouvrez et lisez les nouveaux messages.", folder="INBOX")

    async def answer_mdns(self) -> None:
        await self._step("reply-mdn", "Acceptez l'envoi de l'accusé de lecture demandé.")

    async def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -------------------------------------------------------------- framing
    def on_result(self) -> Callable[[CaseResult], None]:
        def write(result: CaseResult) -> None:
            self._write({"type": "verdict", "case": result.case_id, "code": result.code, "title_fr": result.title_fr,
                         "status": result.status.value, "status_fr": result.status.label_fr,
                         "explanation": result.explanation, "requirements": list(result.requirements),
                         "evidence": [e.to_dict() for e in result.evidence], "duration": result.duration})
        return write

    def end(self, report: RunReport) -> None:
        counts = {s.value: report.count(s) for s in Status} | {"not_run": 0, "total": len(report.results)}
        conforme = all(r.status is Status.PASS for r in report.results)
        self._write({"type": "end", "verdict": "CONFORME" if conforme else "NON CONFORME", "complete": True,
                     "counts": counts, "exit_code": 0 if conforme else 1})
