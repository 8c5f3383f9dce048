"""The whole facade against the sandbox operator: PER → APP, list/fetch/flag/move/delete, watch, Sent, traces."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from mssante.client import Mailbox, MessageSummary, TrustSettings, WatchState
from mssante.message import Draft, DSNRequest, Sender
from mssante.trace import JSONLinesSink, MemorySink
from mssante.trust import CRLCache
from tests.client.test_mailbox_support import (
    APP,
    MARIE,
    PER,
    MintingSource,
    app_mailbox,
    per_mailbox,
    running_sandbox,
)

pytestmark = pytest.mark.slow


async def _first(box: Mailbox) -> MessageSummary:
    # last_uid=0: deliver everything above UID 0 (the INBOX starts empty), so no start-up race.
    async with contextlib.aclosing(box.watch(state=WatchState(last_uid=0))) as watcher:
        return await anext(watcher)


async def test_per_to_app_round_trip(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # (pymap's DEBUG logging needs a context the fronts do not set)
    caplog.set_level(logging.DEBUG, logger="mssante.client")
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    per_traces, app_traces = MemorySink(), MemorySink()
    file_traces = JSONLinesSink(client_dir / "traces.jsonl")
    async with running_sandbox(tmp_path_factory.mktemp("sb")) as sb, asyncio.timeout(60):
        source = MintingSource(sb)
        crls = CRLCache(directory=client_dir / "crls")
        per = per_mailbox(sb, source, traces=per_traces)
        per._trust = TrustSettings(ca_bundle=Path(sb.info["ca_bundle"]), crls=crls)
        app = app_mailbox(sb, traces=app_traces)
        async with per, app:
            watched = asyncio.create_task(_first(app))
            message_draft = Draft(sender=Sender(address=PER), to=(APP,), subject="CR consultation 42",
                                  text="Bonjour, voici le compte rendu.", dsn=DSNRequest())
            sent = await per.send(message_draft)
            assert sent.accepted == (APP,) and sent.reply.startswith("250")
            assert sent.sent_folder == "Sent" and sent.sent_uid is not None
            sent_copies = await sb.store.list_messages(PER, "Sent")
            assert [m.headers.get("Subject") for m in sent_copies] == ["CR consultation 42"]

            # watch saw it (IDLE on its own connection)
            summary = await asyncio.wait_for(watched, 15)
            assert summary.subject == "CR consultation 42" and summary.sender == PER

            # list / fetch / flag / move / delete on the APP side
            listed = await app.list("INBOX", unseen_only=True)
            assert [s.uid for s in listed] == [summary.uid] and not listed[0].seen
            message = await app.fetch(summary.uid)
            assert message.parsed.subject == "CR consultation 42"
            assert message.parsed.mss.nil == "DEV000001"
            assert b"compte rendu" in message.raw
            assert not (await app.list("INBOX"))[0].seen  # BODY.PEEK[] left \Seen alone
            await app.flag(summary.uid, seen=True)
            assert await app.list("INBOX", unseen_only=True) == []
            folders = {f.name: f.special_use for f in await app.folders()}
            assert folders["Sent"] == "\\Sent" and folders["Trash"] == "\\Trash"
            moved = await app.move(summary.uid, "Drafts")
            assert moved is not None and await app.list("INBOX") == []
            await app.delete(moved, "Drafts")
            trash = await app.list("Trash")
            assert len(trash) == 1 and trash[0].subject == "CR consultation 42"
            await app.delete(trash[0].uid, "Trash")
            assert await app.list("Trash") == []

            # the DSN parameters reached the operator with the message
            smtp_sessions = [r for r in sb.journal.records(bal=PER) if r.protocol == "smtp"]
            commands = " ".join(c.command for r in smtp_sessions for c in r.commands)
            assert "NOTIFY=SUCCESS,FAILURE,DELAY" in commands and "ORCPT=rfc822;" in commands
            assert "RET=HDRS" in commands
            for trace in [*per_traces.records, *app_traces.records]:
                file_traces.emit(trace)

    # ECO.4.1.x: every action traced, with the author
    per_actions = [r.action for r in per_traces.records]
    app_actions = [r.action for r in app_traces.records]
    assert {"authenticate", "send", "append", "list"} <= set(per_actions)
    assert {"authenticate", "fetch", "flag", "move", "delete", "list", "select"} <= set(app_actions)
    assert {r.author for r in per_traces.records} == {MARIE}
    assert {r.author for r in app_traces.records} == {APP}
    assert all(r.ok for r in per_traces.records if r.action == "send")

    # ECO.1.2.5: no access token in traces, logs or files written by the client
    assert source.issued
    haystacks = [r.to_json() for r in [*per_traces.records, *app_traces.records]]
    haystacks.append(caplog.text)
    haystacks += [p.read_bytes().decode("latin-1") for p in client_dir.rglob("*") if p.is_file()]
    haystacks += [repr(per), repr(app), repr(source)]
    for token in source.issued:
        assert all(token not in text for text in haystacks)
