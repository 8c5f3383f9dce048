"""What happens to a message once a submission front accepted it.

* each local recipient gets it in its INBOX through :class:`MailDelivery`, behind the
  ``Received:`` trace line the session wrote (RFC 5321 §4.4);
* recipients that cannot be reached (unknown BAL, other domain, store error) are reported to
  the sender in a failure DSN; ``NOTIFY=SUCCESS`` recipients in a success DSN (RFC 3461 §4.1,
  RFC 3464); both land in the sender's INBOX;
* a :class:`Responder` registered on a recipient runs in a background task and what it returns
  is delivered the same way. Loop guard (RFC 3834 §2): no answer to a message with a null
  sender, ``Auto-Submitted`` other than ``no``, ``Precedence: bulk/list/junk``, ``List-Id`` or a
  ``multipart/report`` (DSN, MDN); answers get ``Auto-Submitted: auto-replied`` unless the
  responder set the header itself (RFC 3834 §5); and at most ``responder_limit`` answers per
  responder address per ``responder_window`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Literal

from mssante.sandbox.fronts.delivery import MailDelivery, Responder
from mssante.sandbox.fronts.dsn import RecipientReport, build_dsn, original_headers
from mssante.sandbox.fronts.smtp_options import Replies, SubmissionOptions
from mssante.sandbox.fronts.smtp_params import MailRequest, RcptRequest

__all__ = ["Accepted", "Dispatcher", "header_map", "is_auto_generated", "new_queue_id"]

log = logging.getLogger(__name__)

RecipientKind = Literal["local", "unknown", "foreign"]


def new_queue_id() -> str:
    """A short random queue id, as shown in ``250 ... queued as`` and ``Received: ... id``."""
    return secrets.token_hex(6).upper()


def header_map(message: bytes) -> dict[str, list[str]]:
    """The header fields of ``message``, unfolded: name (first spelling seen) → values in order."""
    text = original_headers(message).decode("utf-8", "replace")
    text = re.sub(r"\r?\n(?=[ \t])", "", text)
    out: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or not name.isprintable():
            continue
        key = names.setdefault(name.lower(), name)
        out.setdefault(key, []).append(value.strip())
    return out


def is_auto_generated(sender: str, message: bytes) -> bool:
    """Whether ``message`` must never be answered automatically (RFC 3834 §2)."""
    if not sender or sender.split("@")[0].lower() in ("mailer-daemon", "postmaster") or sender.lower().startswith(
        "owner-"
    ):
        return True
    headers = {k.lower(): v for k, v in header_map(message).items()}
    if any(v.split(";")[0].strip().lower() != "no" for v in headers.get("auto-submitted", [])):
        return True
    if any(v.strip().lower() in ("bulk", "list", "junk") for v in headers.get("precedence", [])):
        return True
    if "list-id" in headers:
        return True
    return any(v.lower().startswith("multipart/report") for v in headers.get("content-type", []))


@dataclass(kw_only=True)
class Accepted:
    """A message accepted at the end of DATA, with the trace line to prepend."""

    queue_id: str
    mail: MailRequest
    recipients: Sequence[RcptRequest]
    data: bytes
    received: bytes
    arrival: datetime = field(default_factory=lambda: datetime.now().astimezone())


class Dispatcher:
    """Delivers accepted messages, sends DSNs, runs responders (one per front)."""

    def __init__(
        self,
        *,
        hostname: str,
        domain: str,
        delivery: MailDelivery,
        responders: Mapping[str, Responder],
        options: SubmissionOptions,
    ) -> None:
        """Deliver for ``domain`` through ``delivery``; ``hostname`` names this MTA in traces."""
        self.hostname = hostname
        self.domain = domain.lower()
        self._delivery = delivery
        self._responders = {k.lower(): v for k, v in responders.items()}
        self._options = options
        self._answers: dict[str, deque[float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def classify(self, address: str) -> RecipientKind:
        """``local`` (a BAL), ``unknown`` (sandbox domain, no BAL) or ``foreign`` (other domain)."""
        if self._delivery.has_mailbox(address):
            return "local"
        return "unknown" if address.rpartition("@")[2].lower() == self.domain else "foreign"

    def _trace(self, queue_id: str, how: str) -> bytes:
        date = format_datetime(datetime.now().astimezone())
        line = f"Received: from localhost by {self.hostname} (mssante sandbox {how})\r\n\tid {queue_id}; {date}\r\n"
        return line.encode()

    async def dispatch(self, msg: Accepted) -> dict[str, list[str]]:
        """Deliver ``msg``, then send the DSNs it calls for; return delivered and bounced addresses.

        Never raises for a recipient: a store error becomes a failure DSN (status ``5.3.0``).

        Raises:
            Nothing: a store error becomes a failure DSN.
        """
        full = msg.received + msg.data
        reports: list[RecipientReport] = []
        delivered: list[str] = []
        bounced: list[str] = []
        for rcpt in msg.recipients:
            kind = self.classify(rcpt.address)
            diagnostic, status = None, "2.0.0"
            if kind == "unknown":
                diagnostic, status = Replies.UNKNOWN_USER, "5.1.1"
            elif kind == "foreign":
                diagnostic, status = "550 5.4.4 Unable to route: the sandbox reaches no other operator", "5.4.4"
            elif not await self._store(rcpt.address, msg.mail.address, full):
                diagnostic, status = "550 5.3.0 Mailbox store error", "5.3.0"
            if diagnostic is None:
                delivered.append(rcpt.address)
                if rcpt.wants("SUCCESS"):
                    reports.append(RecipientReport(final_recipient=rcpt.address, action="delivered", status=status,
                                                   original_recipient=rcpt.orcpt))
            else:
                bounced.append(rcpt.address)
                if rcpt.wants("FAILURE"):
                    reports.append(RecipientReport(final_recipient=rcpt.address, action="failed", status=status,
                                                   original_recipient=rcpt.orcpt, diagnostic=diagnostic))
        if self._options.copy_to_sent and msg.mail.address:
            with contextlib.suppress(Exception):
                await self._delivery.deliver(msg.mail.address, full, folder="Sent")
        if reports and msg.mail.address and self._delivery.has_mailbox(msg.mail.address):
            dsn = build_dsn(
                reporting_mta=self.hostname, postmaster=f"MAILER-DAEMON@{self.domain}", recipient=msg.mail.address,
                reports=reports, original=msg.data, arrival=msg.arrival, envid=msg.mail.envid, ret=msg.mail.ret,
                lang=self._options.report_lang,
            )
            await self._store(msg.mail.address, "", self._trace(new_queue_id(), "DSN") + dsn)
        return {"delivered": delivered, "bounced": bounced}

    async def _store(self, address: str, sender: str, data: bytes) -> bool:
        try:
            await self._delivery.deliver(address, data, folder="INBOX")
        except Exception:
            log.exception("delivery to %s failed", address)
            return False
        responder = self._responders.get(address.lower())
        if responder is not None and not is_auto_generated(sender, data) and self._allow_answer(address):
            task = asyncio.get_running_loop().create_task(self._respond(responder, address, sender, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def _allow_answer(self, address: str) -> bool:
        now = time.monotonic()
        times = self._answers.setdefault(address.lower(), deque())
        while times and now - times[0] > self._options.responder_window:
            times.popleft()
        if len(times) >= self._options.responder_limit:
            log.warning("responder on %s rate-limited (loop guard, RFC 3834 §2)", address)
            return False
        times.append(now)
        return True

    async def _respond(self, responder: Responder, address: str, sender: str, data: bytes) -> None:
        try:
            answers = await responder(sender, address, data)
        except Exception:
            log.exception("responder on %s failed", address)
            return
        for answer in answers:
            body = answer.data
            if not any(k.lower() == "auto-submitted" for k in header_map(body)):
                body = b"Auto-Submitted: auto-replied\r\n" + body  # RFC 3834 §5
            trace = self._trace(new_queue_id(), "responder")
            for rcpt in answer.recipients:
                if self._delivery.has_mailbox(rcpt):
                    await self._store(rcpt, answer.sender, trace + body)
                else:
                    log.warning("responder on %s answered %s, not a local BAL: dropped", address, rcpt)

    async def wait_idle(self, seconds: float = 10.0) -> None:
        """Wait until every responder task (and those they started) finished.

        Raises:
            TimeoutError: (the builtin) responders still run after ``seconds``.
        """
        async with asyncio.timeout(seconds):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the responder tasks still running."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
