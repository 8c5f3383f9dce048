"""Functional traces of every action on a BAL (Référentiel #2 ECO.4.1.1 / ECO.4.1.2).

Each :class:`TraceRecord` holds what the rule asks for, and nothing more:

* the authenticated author of the action (national id, or structure id for a BAL APP);
* the local time of the workstation;
* the type of action (``send``, ``delete``, ``fetch``...);
* the request made to the MSSanté server;
* the server's answer, including on failure.

Message contents are never traced, and credentials are redacted (:func:`redact`) before a
record is built, so that no sink can leak them (ECO.1.2.5). Sinks are pluggable: the standard
``logging`` module, a JSON Lines file, or memory (tests, the conformance suite).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "Action",
    "JSONLinesSink",
    "LoggingSink",
    "MemorySink",
    "TraceRecord",
    "TraceSink",
    "make_record",
    "redact",
]

Action = Literal[
    "connect", "authenticate", "select", "list", "search", "fetch", "read", "send", "append",
    "flag", "move", "copy", "delete", "expunge", "idle", "logout", "disconnect",
]

# A JWT (three base64url segments) or a long base64 blob: what tokens and SASL responses look like.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
# A SASL initial response after the mechanism: base64 (RFC 4648 alphabet) or "=" (empty).
_SASL_LINE = re.compile(
    r"(?i)^((?:\S+\s+)?(?:AUTHENTICATE|AUTH)\s+[A-Z0-9_-]+)\s+(?:[A-Za-z0-9+/]{4,}={0,2}|=)(?=\s|$)"
)
_LOGIN = re.compile(r"(?i)^(\S+\s+LOGIN\s+\S+)\s+.*$")
_LONG_B64 = re.compile(r"\b[A-Za-z0-9+/]{60,}={0,2}")
_MAX = 500


def redact(text: str) -> str:
    """Remove credentials from a protocol line: SASL responses, bearer tokens, JWTs, passwords.

    The result is also cut to 500 characters, so a trace never holds a message body.
    """
    text = _SASL_LINE.sub(r"\1 <redacted>", text)
    text = _LOGIN.sub(r"\1 <redacted>", text)
    text = _BEARER.sub(r"\1<redacted>", text)
    text = _JWT.sub("<redacted-jwt>", text)
    text = _LONG_B64.sub("<redacted>", text)
    return text if len(text) <= _MAX else text[:_MAX] + "…"


@dataclass(frozen=True, kw_only=True)
class TraceRecord:
    """One traced action (ECO.4.1.1). Build it with :func:`make_record`, which redacts."""

    at: str
    author: str
    bal: str
    action: Action
    request: str
    response: str
    ok: bool

    def to_json(self) -> str:
        """The record as one JSON line (no trailing newline)."""
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


def make_record(
    *, author: str, bal: str, action: Action, request: str, response: str, ok: bool, now: datetime | None = None
) -> TraceRecord:
    """Build a record stamped with the workstation's local time, credentials redacted."""
    moment = (now or datetime.now()).astimezone()
    return TraceRecord(
        at=moment.isoformat(timespec="milliseconds"),
        author=author,
        bal=bal,
        action=action,
        request=redact(request),
        response=redact(response),
        ok=ok,
    )


class TraceSink(Protocol):
    """Where trace records go."""

    def emit(self, record: TraceRecord) -> None:
        """Store or forward one record. Must not raise for a full disk: log and drop instead."""
        ...


class LoggingSink:
    """Sends records to a :mod:`logging` logger (``mssante.trace`` by default), at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        """Use ``logger``, or ``logging.getLogger("mssante.trace")``."""
        self._logger = logger or logging.getLogger("mssante.trace")

    def emit(self, record: TraceRecord) -> None:
        """Log the record as one JSON line."""
        self._logger.info("%s", record.to_json())


class JSONLinesSink:
    """Appends records to a JSON Lines file (keep it 6 months: Ref #2 §5 recommendation)."""

    def __init__(self, path: Path) -> None:
        """Append to ``path`` (created with mode 0600 if missing)."""
        self._path = path
        self._lock = threading.Lock()
        if not path.exists():
            path.touch(mode=0o600)

    def emit(self, record: TraceRecord) -> None:
        """Append one line; an OS error is logged, never raised into the mail flow (ECO.1.2.3)."""
        line = record.to_json() + "\n"
        with self._lock:
            try:
                with self._path.open("a", encoding="utf-8") as fh:
                    fh.write(line)
            except OSError as exc:
                logging.getLogger(__name__).error("cannot write trace to %s: %s", self._path, exc.strerror)


class MemorySink:
    """Keeps the last records in memory (tests, conformance evidence)."""

    def __init__(self, maxlen: int = 10_000) -> None:
        """Keep at most ``maxlen`` records."""
        self.records: deque[TraceRecord] = deque(maxlen=maxlen)

    def emit(self, record: TraceRecord) -> None:
        """Keep the record."""
        self.records.append(record)
