"""Audit records: who did what, when, with which outcome. Never a token or a secret.

Each record is one JSON object (JSON Lines) with ``ts`` (UTC ISO 8601), ``event``,
``outcome`` and optional ``installation``, ``session`` (a short SHA-256 fingerprint of the
session id, never the id itself), ``ip``, ``subject`` and ``detail``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Audit", "fingerprint"]

log = logging.getLogger("mssante.bridge.audit")


def fingerprint(session_id: str) -> str:
    """Return a 12-hex-digit fingerprint of a session id, for logs."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:12] if session_id else ""


class Audit:
    """Writes audit records to a JSON Lines file, or to the ``mssante.bridge.audit`` logger."""

    def __init__(self, path: Path | None = None) -> None:
        """Append to ``path`` (mode 0600) when given.

        Raises:
            Nothing: the file is opened at the first record.
        """
        self.path = path
        self._lock = threading.Lock()

    def record(self, event: str, outcome: str, *, installation: str = "", session: str = "", ip: str = "",
               subject: str = "", detail: str = "") -> dict[str, Any]:
        """Write one record and return it.

        Raises:
            Nothing: a failing audit file is reported on the logger.
        """
        entry: dict[str, Any] = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event,
                                 "outcome": outcome}
        for key, value in (("installation", installation), ("session", fingerprint(session)), ("ip", ip),
                           ("subject", subject), ("detail", detail)):
            if value:
                entry[key] = value
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        if self.path is None:
            log.info("%s", line)
            return entry
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.touch(mode=0o600, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        except OSError as exc:
            log.error("cannot write the audit file %s: %s", self.path, exc.strerror)
        return entry
