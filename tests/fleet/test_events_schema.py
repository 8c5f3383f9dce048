"""Every kind of event the fleet publishes, read back from a real Redis, is valid against its published schema.

docs/schemas/fleet-event.schema.json is what a C#/Java consumer codes against: the events are made by the real
worker and store (sandbox IMAP, real Redis), and every field they carry must be declared for their kind.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mssante.client import ConnectLimiter, Mailbox
from mssante.errors import PSCError
from mssante.fleet import BALSpec, FleetEvent, FleetStore, MailboxConnector, Worker
from mssante.secret import Secret
from tests.client.test_mailbox_support import PER, running_sandbox
from tests.fleet._support import APPS, Events, app, connector, fleet_config, raw
from tests.fleet.conftest import RedisServer
from tests.fleet.test_worker import QUICK, running

pytestmark = pytest.mark.slow

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "schemas" / "fleet-event.schema.json").read_text("utf-8"))
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"  # packaged with redis-server
KINDS = ("message", "uidvalidity-changed", "psc-session-ended", "bal-error")


class _EndedSession:
    """A PSC token source whose session is over (refresh refused with invalid_grant)."""

    async def token(self, *, fresh: bool = False) -> Secret:
        raise PSCError("the PSC session is over (logout)", oauth_error="invalid_grant")


class _Connector:
    """The standard connector for APP; PER BALs get a session that has ended (ECO.1.2.6)."""

    def __init__(self, standard: MailboxConnector) -> None:
        self.standard = standard

    async def mailbox(self, spec: BALSpec, *, limiter: ConnectLimiter | None = None) -> Mailbox:
        if spec.kind == "APP":
            return await self.standard.mailbox(spec, limiter=limiter)
        return Mailbox(spec.address, kind=spec.kind, credentials=_EndedSession(), resolver=self.standard.resolver,
                       tls=self.standard.trust(), options=self.standard.options_with(limiter))

    async def close(self, box: Mailbox) -> None:
        await self.standard.close(box)


def declared(kind: str) -> set[str]:
    """The fields the schema declares for ``kind`` (its own and those of the definitions it includes)."""
    node = SCHEMA["$defs"][kind]
    fields = set(node.get("properties", {}))
    for part in node.get("allOf", ()):
        fields |= set(SCHEMA["$defs"][part["$ref"].rsplit("/", 1)[1]]["properties"])
    return fields


def check(events: list[FleetEvent]) -> dict[str, list[dict[str, str]]]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    by_kind: dict[str, list[dict[str, str]]] = {}
    for event in events:
        validator.validate(event.fields)
        undeclared = set(event.fields) - declared(event.kind)
        assert not undeclared, f"{event.kind}: fields not in the schema: {undeclared}"
        if "x_mss" in event.fields:
            jsonschema.Draft202012Validator(SCHEMA["$defs"]["x_mss"]).validate(json.loads(event.fields["x_mss"]))
        by_kind.setdefault(event.kind, []).append(event.fields)
    return by_kind


X_MSS = (b"From: labo@mss.sandbox.test\r\nTo: a@mss.sandbox.test, b@mss.sandbox.test\r\n"
         b"Subject: =?utf-8?q?R=C3=A9sultats?=\r\nMessage-ID: <cr-1@labo>\r\nDate: Sun, 06 Dec 2026 18:40:21 +0100\r\n"
         b"X-MSS-NIL: DEV000001\r\nX-MSS-INS: 1840699185022\r\nX-MSS-CODECDA: 11502-2\r\nX-MSS-CODECDA: 57833-6\r\n"
         b"\r\nCorps.\r\n")
BARE = b"X-Quoi: rien\r\n\r\nsans en-tetes\r\n"  # no From, To, Subject, Message-ID, Date


async def redis_cli(server: RedisServer, *argv: str) -> list[str]:
    """``redis-cli`` (software we did not write, as in the guides), its raw output lines."""
    proc = await asyncio.create_subprocess_exec(REDIS_CLI, "-p", str(server.port), *argv,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0 and not err, err
    return out.decode().splitlines()


async def test_every_kind_of_event_matches_the_schema(tmp_path: Path, store: FleetStore,
                                                      redis_server: RedisServer) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(90):
        address = APPS[0]
        engine = sb.store.engine
        engine.create(engine.account(address), "Suivi", subscribed=True)
        await store.add(BALSpec(address=address, kind="APP", ref=app(address).ref, folder="Suivi"))
        await store.add(app(APPS[1], ref="structure-inconnue"))
        await store.add(BALSpec(address=PER, kind="PER", ref="session-finie"))
        for message in (X_MSS, BARE):
            await sb.store.deliver(address, message, folder="Suivi")
        events = Events(store)
        standard = connector(sb, tmp_path)
        async with running(Worker(store, _Connector(standard), settings=QUICK)):
            await events.until(lambda seen: len(events.messages()) == 2 and
                               {e.kind for e in seen} >= {"bal-error", "psc-session-ended"})
        # every UID of the folder changes (RFC 3501 §2.3.1.1): reported, then published again, without X-MSS
        await sb.store.reset(address)
        engine.create(engine.account(address), "Suivi", subscribed=True)
        await sb.store.deliver(address, raw(address, "nouveau"), folder="Suivi")
        async with running(Worker(store, _Connector(standard), settings=replace(QUICK, x_mss=False))):
            await events.until(lambda seen: len(events.messages()) == 3)
        by_kind = check(events.seen)
    assert set(by_kind) == set(KINDS)
    full, bare, later = by_kind["message"]
    assert (full["subject"], full["from"], full["to"], full["message_id"], full["date"]) == (
        "Résultats", "labo@mss.sandbox.test", "a@mss.sandbox.test,b@mss.sandbox.test", "<cr-1@labo>",
        "Sun, 06 Dec 2026 18:40:21 +0100")
    assert json.loads(full["x_mss"]) == {"X-MSS-NIL": "DEV000001", "X-MSS-INS": "1840699185022",
                                         "X-MSS-CODECDA": "11502-2, 57833-6"}
    assert [bare[k] for k in ("subject", "from", "to", "message_id", "date")] == [""] * 5
    assert bare["x_mss"] == "{}" and "x_mss" not in later
    [changed] = by_kind["uidvalidity-changed"]
    assert changed["previous"] == full["uidvalidity"] and changed["previous_uid"] == "2"
    [error] = by_kind["bal-error"]
    assert error["reason"].startswith("CertificateFileError: ") and error["bal_kind"] == "APP"
    [ended] = by_kind["psc-session-ended"]
    assert ended["bal"] == PER and ended["bal_kind"] == "PER"
    await the_guides_commands_read_them(redis_server, [e.id for e in events.seen])


async def the_guides_commands_read_them(server: RedisServer, ids: list[str]) -> None:
    """The redis-cli commands of docs/fr/flotte-evenements.md and docs/en/fleet-events.md, on the stream."""
    key = "mssante:fleet:events"
    assert await redis_cli(server, "XGROUP", "CREATE", key, "dpi", "0", "MKSTREAM") == ["OK"]
    pending = await redis_cli(server, "XREADGROUP", "GROUP", "dpi", "dpi-1", "COUNT", "100", "STREAMS", key, "0")
    assert not set(pending) & set(ids)  # nothing read yet, nothing pending
    read = await redis_cli(server, "XREADGROUP", "GROUP", "dpi", "dpi-1", "COUNT", "100", "BLOCK", "5000",
                           "STREAMS", key, ">")
    assert [line for line in read if line in ids] == ids  # every entry, in order
    assert (await redis_cli(server, "XPENDING", key, "dpi"))[0] == str(len(ids))
    assert await redis_cli(server, "XACK", key, "dpi", ids[0]) == ["1"]
    # dpi-1 died holding the rest: dpi-2 takes them over (min idle 0 here, 60000 in the guide)
    claimed = await redis_cli(server, "XAUTOCLAIM", key, "dpi", "dpi-2", "0", "0-0", "COUNT", "100")
    assert [line for line in claimed if line in ids] == ids[1:]
    assert await redis_cli(server, "XACK", key, "dpi", *ids[1:]) == [str(len(ids) - 1)]
    assert (await redis_cli(server, "XPENDING", key, "dpi"))[0] == "0"
    # trimmed once every group acknowledged: what is before the last entry goes
    assert await redis_cli(server, "XTRIM", key, "MINID", ids[-1]) == [str(len(ids) - 1)]


def test_the_schema_refuses_what_a_consumer_must_not_get() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    good: dict[str, Any] = {"kind": "message", "bal": APPS[0], "folder": "INBOX", "uidvalidity": "7", "uid": "1",
                            "message_id": "", "subject": "", "from": "", "to": "", "date": "", "size": "12"}
    validator.validate(good)
    for change in ({"uid": "0"}, {"uid": 1}, {"from": "Labo <labo@x.fr>"}, {"to": "a@x.fr, b@x.fr"},
                   {"kind": "autre"}, {"size": "-1"}):
        assert not validator.is_valid({**good, **change}), change
    assert not validator.is_valid({k: v for k, v in good.items() if k != "date"})
