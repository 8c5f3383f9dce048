"""The session journal: what every connection to the sandbox did, for conformance checks.

Each connection gets a :class:`SessionRecord`: time, front, TLS version and cipher, whether
STARTTLS came before authentication, SASL mechanism, identity, each command with its result,
and the headers of submitted messages. Never message bodies, never tokens or passwords: the
fronts record commands through :func:`redact_command`, which keeps only the verb and safe
arguments (ECO.4.1.x trace rule applied to the operator side).

The journal is queryable from Python, bounded in size, exported as JSON Lines, and can be
watched live (:meth:`Journal.subscribe`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from mssante.wire import AuthOutcome, outcome_from_imap, outcome_from_smtp

__all__ = ["CommandRecord", "Journal", "SessionRecord", "is_auth_command", "redact_command"]

# SMTP lines start with one of these verbs; IMAP lines start with a tag (RFC 5321 §4.1, RFC 3501 §2.2.1).
_SMTP_VERBS = frozenset(
    {"EHLO", "HELO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "AUTH", "STARTTLS", "QUIT", "RSET", "NOOP", "VRFY"}
)
_MAX_ARG_CHARS = 200
_AUTH_VERBS: Final = frozenset({"AUTHENTICATE", "AUTH", "LOGIN"})
# Older journals (before AuthOutcome) kept the outcome as prose: "BAD: cancelled", "CANNOT: ...".
_LEGACY_PREFIX: Final = {"BAD": AuthOutcome.MALFORMED, "CANNOT": AuthOutcome.NOMECHANISM}
_IMAP_RESULT: Final = re.compile(r"^(OK|NO|BAD)\b(?: \[([A-Za-z0-9-]+))?")
_SMTP_RESULT: Final = re.compile(r"^(\d{3})(?:[ -](.*))?$", re.DOTALL)
_T = TypeVar("_T")
log = logging.getLogger(__name__)


def redact_command(line: bytes | str) -> str:
    """Return a command line safe to record: credentials and long arguments removed.

    ``AUTHENTICATE XOAUTH2 dXNlcj0...`` becomes ``AUTHENTICATE XOAUTH2 <initial-response>``;
    ``LOGIN user pass`` becomes ``LOGIN user <password>``. IMAP tags are kept.
    """
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.rstrip("\r\n")
    words = text.split(" ")
    # SMTP lines start with the verb; IMAP lines start with a tag, then the verb.
    verb_at = 0 if words[0].upper() in _SMTP_VERBS else 1
    verb = words[verb_at].upper() if len(words) > verb_at else ""
    if verb in ("AUTHENTICATE", "AUTH"):
        kept = words[: verb_at + 2]
        if len(words) > verb_at + 2:
            kept.append("<initial-response>")
        return " ".join(kept)
    if verb == "LOGIN":
        return " ".join([*words[: verb_at + 2], "<password>"])
    if len(text) > _MAX_ARG_CHARS:
        return text[:_MAX_ARG_CHARS] + "…"
    return text


def is_auth_command(command: str, protocol: str) -> bool:
    """True for ``AUTHENTICATE``/``LOGIN`` (IMAP, after the tag) and ``AUTH`` (SMTP) lines."""
    words = command.split(" ")
    at = 1 if protocol == "imap" else 0
    return len(words) > at and words[at].upper() in _AUTH_VERBS


def _outcome(value: object) -> AuthOutcome | None:
    try:
        return AuthOutcome(str(value)) if value is not None else None
    except ValueError:
        return None  # an outcome this version does not know: the rest of the record still counts


def outcome_of_result(result: str, protocol: str) -> AuthOutcome | None:
    """Read the outcome of an authentication command from its recorded answer (older journals).

    ``NO [AUTHENTICATIONFAILED]`` (IMAP) or ``535 5.7.8 ...`` (SMTP), through the wire mapping.
    """
    if protocol == "imap":
        m = _IMAP_RESULT.match(result)
        return outcome_from_imap(m.group(1), m.group(2)) if m else None
    m = _SMTP_RESULT.match(result)
    return outcome_from_smtp(int(m.group(1)), m.group(2) or "") if m else None


def _legacy_auth_result(prose: str) -> tuple[AuthOutcome | None, str | None]:
    """``"AUTHENTICATIONFAILED: token refused"`` → the outcome and the detail."""
    head, sep, detail = prose.partition(": ")
    outcome = _outcome(head)
    if outcome is None and head in _LEGACY_PREFIX:
        outcome = AuthOutcome.CANCELLED if detail == "cancelled" else _LEGACY_PREFIX[head]
    if outcome is None:
        return None, prose
    return outcome, (detail if sep else None)


@dataclass
class CommandRecord:
    """One command and its result, as recorded (already redacted).

    ``outcome`` is set by the fronts on authentication commands only.
    """

    at: float
    command: str
    result: str
    outcome: AuthOutcome | None = None


@dataclass
class SessionRecord:
    """Everything a conformance check needs about one connection."""

    id: int
    front: str
    protocol: str
    peer: str
    started_at: float
    ended_at: float | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    starttls_at: float | None = None
    auth_at: float | None = None
    credentials_before_tls: bool = False
    mechanism: str | None = None
    identity: str | None = None
    bal: str | None = None
    auth_result: AuthOutcome | None = None
    auth_detail: str | None = None
    client_cert_subject: str | None = None
    commands: list[CommandRecord] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def starttls_before_auth(self) -> bool | None:
        """True when STARTTLS completed before the first authentication attempt; None if no attempt."""
        if self.auth_at is None:
            return None
        return self.starttls_at is not None and self.starttls_at <= self.auth_at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the JSON Lines export format)."""
        data = asdict(self)
        data["starttls_before_auth"] = self.starttls_before_auth
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionRecord:
        """Read back :meth:`to_dict`'s form (the persisted journal, the sandbox API's JSON).

        Journals written before :class:`~mssante.wire.AuthOutcome` kept the outcome as prose
        (``"AUTHENTICATIONFAILED: token refused"``, ``"BAD: cancelled"``) and no outcome on the
        commands: what can be read is read (the prose's outcome and detail, the outcome of each
        authentication command from its recorded answer); what cannot stays in ``auth_detail``.

        Raises:
            KeyError, TypeError, ValueError: not a session record.
        """
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "commands"}
        prose = fields.pop("auth_result", None)
        record = cls(**fields)
        if prose is not None and "auth_detail" not in data:
            record.auth_result, record.auth_detail = _legacy_auth_result(str(prose))
        else:
            record.auth_result = _outcome(prose)
        protocol = str(record.protocol)
        commands = []
        for c in data.get("commands", ()):
            command, result = str(c["command"]), str(c["result"])
            if "outcome" in c:
                outcome = _outcome(c["outcome"])
            elif is_auth_command(command, protocol):
                outcome = outcome_of_result(result, protocol)
            else:
                outcome = None
            commands.append(CommandRecord(at=float(c["at"]), command=command, result=result, outcome=outcome))
        record.commands = commands
        return record


class Journal:
    """An in-memory, bounded journal of sessions, shared by every front of one sandbox."""

    def __init__(self, *, max_sessions: int = 10_000, max_commands: int = 1_000) -> None:
        """Keep at most ``max_sessions`` sessions and ``max_commands`` commands per session."""
        self._records: deque[SessionRecord] = deque(maxlen=max_sessions)
        self._ids = itertools.count(1)
        self._max_commands = max_commands
        self._subscribers: set[asyncio.Queue[SessionRecord]] = set()
        self._path: Path | None = None

    def persist_to(self, path: Path) -> None:
        """Keep the journal in ``path`` (JSON Lines) across restarts: load what it holds, then
        append each session as it ends. The file is compacted to the last ``max_sessions``.

        Raises:
            OSError: the file cannot be read or written.
        """
        lines: list[str] = []
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
        loaded = []
        for line in lines:
            try:
                loaded.append(SessionRecord.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a crash: the others still count
        keep = loaded[-(self._records.maxlen or len(loaded)) :]
        self._records.extendleft(reversed(keep))
        self._ids = itertools.count(max((r.id for r in self._records), default=0) + 1)
        if len(keep) != len(lines):
            self._write_atomically(path, keep)
        self._path = path

    def _write_atomically(self, path: Path, records: Iterable[SessionRecord]) -> None:
        text = self.dumps_jsonl(records)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".journal-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self, *, front: str, protocol: str, peer: str) -> SessionRecord:
        """Start the record of a new connection."""
        record = SessionRecord(
            id=next(self._ids), front=front, protocol=protocol, peer=peer, started_at=time.time()
        )
        self._records.append(record)
        self._publish(record)
        return record

    def command(self, record: SessionRecord, line: bytes | str, result: str, outcome: AuthOutcome | None = None
                ) -> None:
        """Record one command (redacted here), its result line and, for authentication, its outcome."""
        if len(record.commands) < self._max_commands:
            record.commands.append(CommandRecord(at=time.time(), command=redact_command(line), result=result[:300],
                                                 outcome=outcome))

    def auth(self, record: SessionRecord, outcome: AuthOutcome, detail: str | None = None) -> None:
        """Record the outcome of the session's latest authentication attempt, and tell subscribers.

        ``detail`` is for people (why the decision was made); never a secret.
        """
        record.auth_result = outcome
        record.auth_detail = detail
        self._publish(record)

    def close(self, record: SessionRecord) -> None:
        """Mark the connection as ended."""
        if record.ended_at is None:
            record.ended_at = time.time()
            self._publish(record)
            if self._path is not None:
                try:
                    with self._path.open("a", encoding="utf-8") as fh:
                        fh.write(self.dumps_jsonl([record]))
                except OSError as exc:  # the session itself is over and fine: say it, carry on
                    log.warning("cannot persist the journal to %s: %s", self._path, exc.strerror)

    def update(self, record: SessionRecord) -> None:
        """Tell live subscribers that ``record`` changed (authentication, message...)."""
        self._publish(record)

    def _publish(self, record: SessionRecord) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                continue
            queue.put_nowait(record)

    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[SessionRecord]:
        """Return a queue receiving each record when it opens, changes or closes."""
        queue: asyncio.Queue[SessionRecord] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[SessionRecord]) -> None:
        """Stop feeding a queue returned by :meth:`subscribe`."""
        self._subscribers.discard(queue)

    async def wait_for(self, predicate: Callable[[], _T], *, timeout: float = 10.0) -> _T:  # noqa: ASYNC109 - a bound is part of the contract
        """Wait until ``predicate()`` is truthy and return its value.

        The predicate is evaluated now, then each time a record opens, changes or closes, so a
        test or a conformance judge waits for the event itself instead of sleeping.

        Raises:
            TimeoutError: ``predicate()`` was still falsy after ``timeout`` seconds.
        """
        queue = self.subscribe()
        try:
            async with asyncio.timeout(timeout):
                while not (value := predicate()):
                    await queue.get()
                return value
        finally:
            self.unsubscribe(queue)

    def records(
        self,
        *,
        bal: str | None = None,
        front: str | None = None,
        since: float | None = None,
        peer: str | None = None,
    ) -> list[SessionRecord]:
        """Return the records matching every given filter, oldest first."""
        out = []
        for r in self._records:
            if bal is not None and (r.bal or "").lower() != bal.lower():
                continue
            if front is not None and r.front != front:
                continue
            if since is not None and r.started_at < since:
                continue
            if peer is not None and r.peer != peer:
                continue
            out.append(r)
        return out

    def __iter__(self) -> Iterator[SessionRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        """Forget every record."""
        self._records.clear()

    @staticmethod
    def dumps_jsonl(records: Iterable[SessionRecord]) -> str:
        """Serialise records as JSON Lines."""
        return "".join(json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n" for r in records)

    def export_jsonl(self, path: Path) -> None:
        """Write the whole journal as JSON Lines to ``path``, atomically.

        Raises:
            OSError: the file cannot be written.
        """
        self._write_atomically(path, self._records)
