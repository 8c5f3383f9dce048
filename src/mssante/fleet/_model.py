"""What the fleet keeps in Redis: watched BALs (by reference, never a secret), events, key names.

Nothing here does I/O. A BAL is an address, a kind and a *credential reference*:

* APP: a structure id naming certificate files on the worker: ``<dir>/<ref>.p12`` or ``.pfx`` (PKCS#12), else
  ``<dir>/<ref>.pem`` + ``.key``; a password in ``<dir>/<ref>.password`` or ``MSSANTE_CERT_PASSWORD_<REF>``
  (:mod:`mssante.fleet._connect`);
* PER/ORG: a bridge session id; the worker gets tokens from the bridge on demand.

References are short identifiers (``[A-Za-z0-9._:-]``, at most 128 characters): a value that
looks like a token (a JWT, a PEM block) is refused, so a secret cannot land in Redis by mistake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from mssante.client import MessageSummary
from mssante.errors import UsageError

__all__ = ["BALSpec", "EventKind", "FleetEvent", "Keys", "message_fields"]

Kind = Literal["PER", "ORG", "APP"]
EventKind = Literal["message", "uidvalidity-changed", "psc-session-ended", "bal-error"]
_REF = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ADDRESS = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,255}")


@dataclass(frozen=True, kw_only=True)
class BALSpec:
    """One watched BAL as stored in Redis.

    Attributes:
        address: the BAL address.
        kind: ``PER``, ``ORG`` or ``APP``.
        ref: the credential reference (structure id for APP, bridge session id for PER/ORG).
        folder: the watched folder.

    Raises:
        UsageError: a malformed address, an unknown kind, or a reference that is not a short
            identifier (e.g. a token pasted by mistake).
    """

    address: str
    kind: Kind
    ref: str
    folder: str = "INBOX"

    def __post_init__(self) -> None:
        if not _ADDRESS.fullmatch(self.address):
            raise UsageError(f"not a BAL address: {self.address!r}")
        if self.kind not in get_args(Kind):
            raise UsageError(f"unknown BAL kind {self.kind!r} (PER, ORG or APP)")
        if not _REF.fullmatch(self.ref) or self.ref.startswith("eyJ"):
            raise UsageError("the credential reference must be a short identifier (a structure id or a bridge "
                             "session id), never a secret or a token")
        if not self.folder or len(self.folder) > 200:
            raise UsageError("folder must be 1 to 200 characters")

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps({"kind": self.kind, "ref": self.ref, "folder": self.folder}, separators=(",", ":"))

    @classmethod
    def from_json(cls, address: str, raw: str | bytes) -> BALSpec:
        """Read the stored form back.

        Raises:
            UsageError: the stored value is not a BAL description.
        """
        try:
            data = json.loads(raw)
            return cls(address=address, kind=data["kind"], ref=data["ref"], folder=data.get("folder", "INBOX"))
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"stored BAL {address!r} is not readable: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class FleetEvent:
    """One entry of the event stream, as the LPS reads it.

    Attributes:
        id: the stream entry id (``ms-seq``).
        kind: ``message``, ``uidvalidity-changed``, ``psc-session-ended`` or ``bal-error``.
        bal: the BAL address.
        fields: every field of the entry (strings), ``kind`` and ``bal`` included.
    """

    id: str
    kind: str
    bal: str
    fields: dict[str, str]

    @property
    def uid(self) -> int | None:
        """The message UID (``message`` events)."""
        value = self.fields.get("uid")
        return int(value) if value and value.isdigit() else None

    @property
    def uidvalidity(self) -> int | None:
        """The UIDVALIDITY of the message (``message``) or the new one (``uidvalidity-changed``)."""
        value = self.fields.get("uidvalidity")
        return int(value) if value and value.isdigit() else None

    @classmethod
    def from_entry(cls, entry_id: str | bytes, raw: Mapping[Any, Any]) -> FleetEvent:
        """Build from an XREAD/XREADGROUP entry."""
        fields = {_s(k): _s(v) for k, v in raw.items()}
        return cls(id=_s(entry_id), kind=fields.get("kind", ""), bal=fields.get("bal", ""), fields=fields)


def _s(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def message_fields(bal: str, summary: MessageSummary, x_mss: dict[str, str] | None = None) -> dict[str, str]:
    """The fields of a ``message`` event: BAL, UIDVALIDITY, UID, Message-ID, envelope summary, X-MSS, size.

    ``x_mss`` (JSON) is present when the headers were fetched (``WorkerSettings.x_mss``).
    """
    fields = {
        "kind": "message",
        "bal": bal,
        "folder": summary.folder,
        "uidvalidity": str(summary.uidvalidity or 0),
        "uid": str(summary.uid),
        "message_id": summary.message_id or "",
        "subject": summary.subject or "",
        "from": summary.sender or "",
        "to": ",".join(summary.to),
        "date": summary.date or "",
        "size": str(summary.size or 0),
    }
    if x_mss is not None:
        fields["x_mss"] = json.dumps(x_mss, separators=(",", ":"), ensure_ascii=False)
    return fields


@dataclass(frozen=True)
class Keys:
    """Redis key names under one prefix (several fleets can share a Redis)."""

    prefix: str = "mssante:fleet"

    @property
    def bals(self) -> str:
        """Hash: address → BAL description (JSON)."""
        return f"{self.prefix}:bals"

    @property
    def stopped(self) -> str:
        """Hash: address → why its watch stopped (PSC session ended, bad reference); not claimed again."""
        return f"{self.prefix}:stopped"

    @property
    def bals_version(self) -> str:
        """Counter moved by every change of the desired set (workers re-read the set when it moves)."""
        return f"{self.prefix}:bals:version"

    @property
    def rejected(self) -> str:
        """Hash: address → digest of an unreadable desired-set entry already reported (one event per value)."""
        return f"{self.prefix}:rejected"

    @property
    def events(self) -> str:
        """The event stream."""
        return f"{self.prefix}:events"

    @property
    def workers(self) -> str:
        """Sorted set: worker id → heartbeat deadline (Redis time, ms)."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """Hash of one worker's figures (expires with its heartbeat)."""
        return f"{self.prefix}:worker:{worker_id}"

    @property
    def presence(self) -> str:
        """Hash: worker id → ``<client id>|<client name>`` of its presence connection (the failure detector)."""
        return f"{self.prefix}:presence"

    @property
    def offers(self) -> str:
        """Sorted set: ``<address>\\n<lease value>`` → deadline (Redis time, ms): BALs their holder offers to a
        worker below its share (make-before-break handover); the holder watches them until one takes them."""
        return f"{self.prefix}:offers"

    def handed(self, worker_id: str) -> str:
        """Set: the BALs handed over from a worker not yet told (``<address>\\n<new fencing token>``)."""
        return f"{self.prefix}:handed:{worker_id}"

    def released(self, address: str) -> str:
        """Flag: the previous holder of a BAL handed over closed its session (its taker may IDLE)."""
        return f"{self.prefix}:released:{address}"

    def held(self, worker_id: str) -> str:
        """Set: the BALs a worker leased (may hold stale entries; the lease keys are the truth)."""
        return f"{self.prefix}:held:{worker_id}"

    def operator(self, domain: str) -> str:
        """Hash: the fleet-wide connect bucket of an operator (by BAL domain)."""
        return f"{self.prefix}:connect:{domain.lower()}"

    def lease(self, address: str) -> str:
        """String ``worker|fence``, with a TTL: who watches this BAL."""
        return f"{self.prefix}:lease:{address}"

    def fence(self, address: str) -> str:
        """Counter: the last fencing token issued for this BAL."""
        return f"{self.prefix}:fence:{address}"

    def checkpoint(self, address: str) -> str:
        """Hash: ``uidvalidity``, ``uid`` (highest published), ``fence`` (of the last publisher)."""
        return f"{self.prefix}:ckpt:{address}"
