"""The mssante client library: one BAL on the API LPS, over IMAP and SMTP submission.

* :class:`Mailbox` (async) and :class:`SyncMailbox` (the same, from threads): send, list,
  fetch, flag, move, delete, watch; traces every action (ECO.4.1.x).
* :class:`SessionSupervisor`: the sessions of several BALs, reopened while credentials are
  valid (ECO.1.2.7), closed when the PSC session ends (ECO.1.2.6), isolated (ECO.1.2.3).
* Settings: :class:`TrustSettings` (IGC Santé anchors, revocation), :class:`MailboxOptions`,
  :class:`ConnectionSettings`, :class:`Backoff`, :class:`ConnectLimiter`.
* Low level: :class:`IMAPConnection` (asyncio driver over :mod:`mssante.wire.imap`) and
  :class:`SMTPSubmission` (aiosmtplib).
"""

from mssante.client._config import (
    APP_PLAIN_PASSWORD,
    Backoff,
    BALKind,
    ConnectionSettings,
    MailboxOptions,
    TrustSettings,
)
from mssante.client._imap import IMAPConnection
from mssante.client._imap_results import SelectInfo
from mssante.client._limiter import ConnectLimiter
from mssante.client._mailbox import Mailbox
from mssante.client._models import Folder, MailboxEvent, MessageSummary, ReceivedMessage, SendResult, WatchState
from mssante.client._smtp import SMTPSubmission, SubmissionResult
from mssante.client._supervisor import BALStatus, SessionSupervisor, SupervisorEvent
from mssante.client._sync import SyncMailbox

__all__ = [
    "APP_PLAIN_PASSWORD",
    "BALKind",
    "BALStatus",
    "Backoff",
    "ConnectLimiter",
    "ConnectionSettings",
    "Folder",
    "IMAPConnection",
    "Mailbox",
    "MailboxEvent",
    "MailboxOptions",
    "MessageSummary",
    "ReceivedMessage",
    "SMTPSubmission",
    "SelectInfo",
    "SendResult",
    "SessionSupervisor",
    "SubmissionResult",
    "SupervisorEvent",
    "SyncMailbox",
    "TrustSettings",
    "WatchState",
]
