"""The curated public API of mssante.client (house rule 4)."""

from __future__ import annotations

import inspect

import mssante.client


def test_exported_members() -> None:
    assert sorted(mssante.client.__all__) == sorted(
        [
            "APP_PLAIN_PASSWORD", "BALKind", "BALStatus", "Backoff", "ConnectLimiter", "ConnectionSettings", "Folder",
            "IMAPConnection",
            "Mailbox", "MailboxEvent", "MailboxOptions", "MessageSummary", "ReceivedMessage", "SMTPSubmission",
            "SelectInfo", "SendResult", "SessionSupervisor", "SubmissionResult", "SupervisorEvent", "SyncMailbox",
            "TrustSettings", "WatchState",
        ]
    )
    for name in mssante.client.__all__:
        assert hasattr(mssante.client, name)


def test_sync_face_mirrors_the_async_one() -> None:
    public = {n for n, v in vars(mssante.client.Mailbox).items() if not n.startswith("_") and inspect.isfunction(v)}
    mirrored = {"send", "folders", "status", "list", "fetch", "flag", "move", "delete", "watch"}
    assert mirrored <= public
    for name in mirrored:
        ours = inspect.signature(getattr(mssante.client.Mailbox, name))
        sync = inspect.signature(getattr(mssante.client.SyncMailbox, name))
        assert list(ours.parameters) == list(sync.parameters), name
