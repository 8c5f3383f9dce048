"""The fleet's model in a real redis-server: leases, fencing, checkpoints, the event stream, consumer groups."""

from __future__ import annotations

import asyncio

import pytest

from mssante.client import MessageSummary
from mssante.errors import TransportError, UsageError
from mssante.fleet import BALSpec, Checkpoint, EventReader, FleetStore, message_fields
from tests.fleet.conftest import RedisServer

BAL = "dpi.hopital@mss.sandbox.test"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI4OTk3MDAwMDAwMDEifQ.c2lnbmF0dXJl"


def summary(uid: int, uidvalidity: int = 7, subject: str = "CR") -> MessageSummary:
    return MessageSummary(folder="INBOX", uid=uid, uidvalidity=uidvalidity, subject=subject, sender="a@b.test",
                          to=(BAL,), message_id=f"<{uid}@test>", size=123)


async def until_gone(store: FleetStore, key: str, within: float = 5.0) -> None:
    """Wait for ``key`` to expire (its TTL is the event; Redis has no cheaper way to say so)."""
    async with asyncio.timeout(within):
        while await store.redis.exists(key):  # noqa: ASYNC110 - polling the key the test waits on
            await asyncio.sleep(0.02)


PEM_HEADER = "-----BEGIN " + "PRIVATE KEY-----"  # a header only, built here: no key-looking text committed


@pytest.mark.parametrize("ref", [TOKEN, "a" * 129, "has space", PEM_HEADER, ""])
def test_a_reference_that_is_not_a_short_identifier_is_refused(ref: str) -> None:
    with pytest.raises(UsageError, match="never a secret"):
        BALSpec(address=BAL, kind="APP", ref=ref)


def test_bad_address_and_kind_are_refused() -> None:
    with pytest.raises(UsageError, match="address"):
        BALSpec(address="pas-une-adresse", kind="APP", ref="s1")
    with pytest.raises(UsageError, match="kind"):
        BALSpec(address=BAL, kind="XXX", ref="s1")  # type: ignore[arg-type]


async def test_the_desired_set_holds_references_only(store: FleetStore) -> None:
    await store.add(BALSpec(address=BAL, kind="APP", ref="structure-42"))
    await store.add(BALSpec(address="marie.curie@mss.sandbox.test", kind="PER", ref="sess-1234"))
    assert {a: s.ref for a, s in (await store.bals()).items()} == {BAL: "structure-42",
                                                                  "marie.curie@mss.sandbox.test": "sess-1234"}
    assert await store.remove(BAL) and not await store.remove(BAL)
    assert list(await store.bals()) == ["marie.curie@mss.sandbox.test"]


async def test_a_lease_expires_and_another_worker_takes_over_with_a_higher_fence(store: FleetStore) -> None:
    first = await store.acquire(BAL, "w1", 300)
    assert first is not None and first.fence == 1
    assert await store.acquire(BAL, "w2", 300) is None  # held
    assert await store.renew([first], 300) == [True]
    await until_gone(store, store.keys.lease(BAL))  # w1 stopped renewing
    second = await store.acquire(BAL, "w2", 10_000)
    assert second is not None and second.fence == 2 and await store.holder(BAL) == "w2|2"
    assert await store.renew([first], 300) == [False]  # not w1's any more
    assert not await store.release(first) and await store.holder(BAL) == "w2|2"
    assert await store.release(second) and await store.holder(BAL) is None


async def test_a_stale_fencing_token_cannot_publish(store: FleetStore) -> None:
    old = await store.acquire(BAL, "w1", 100)
    assert old is not None
    assert (await store.publish(old, 7, 1, message_fields(BAL, summary(1)))).status == "published"
    await until_gone(store, store.keys.lease(BAL))
    new = await store.acquire(BAL, "w2", 10_000)
    assert new is not None
    # w1 was paused while its lease expired; its late publish is refused, nothing reaches the stream.
    assert (await store.publish(old, 7, 2, message_fields(BAL, summary(2)))).status == "stale"
    assert (await store.stop(old, "bal-error", "late")) is False
    assert [e.uid for e in await store.events()] == [1]
    assert (await store.publish(new, 7, 2, message_fields(BAL, summary(2)))).status == "published"
    assert await store.checkpoint(BAL) is not None
    assert (await store.checkpoint(BAL)).uid == 2  # type: ignore[union-attr]


async def test_nothing_is_published_twice(store: FleetStore) -> None:
    lease = await store.acquire(BAL, "w1", 10_000)
    assert lease is not None
    results = [(await store.publish(lease, 7, uid, message_fields(BAL, summary(uid)))).status
               for uid in (1, 2, 2, 1, 3)]
    assert results == ["published", "published", "duplicate", "duplicate", "published"]
    events = await store.events()
    assert [(e.kind, e.bal, e.uidvalidity, e.uid) for e in events] == [("message", BAL, 7, 1), ("message", BAL, 7, 2),
                                                                         ("message", BAL, 7, 3)]
    fields = events[0].fields
    assert fields["message_id"] == "<1@test>" and fields["size"] == "123" and fields["from"] == "a@b.test"
    assert fields["to"] == BAL and "x_mss" not in fields  # not fetched


async def test_each_bal_keeps_the_lag_of_its_last_publication(store: FleetStore) -> None:
    other = "autre@mss.sandbox.test"
    lease = await store.acquire(BAL, "w1", 10_000)
    assert lease is not None
    await store.publish(lease, 7, 1, message_fields(BAL, summary(1)), lag_ms=1200)
    await store.publish(lease, 7, 2, message_fields(BAL, summary(2)), lag_ms=40)
    assert (await store.publish(lease, 7, 2, message_fields(BAL, summary(2)), lag_ms=9999)).status == "duplicate"
    lags = await store.lags([BAL, other])
    (now_s, now_us) = await store.redis.time()
    assert lags[other] is None and lags[BAL] is not None
    lag, at = lags[BAL]
    assert lag == 40 and 0 <= now_s * 1000 + now_us // 1000 - at < 60_000  # the duplicate changed nothing
    await store.publish(lease, 7, 3, message_fields(BAL, summary(3)))
    assert (await store.lags([BAL]))[BAL][0] == -1  # type: ignore[index] - arrival unknown


async def test_a_uidvalidity_change_is_reported_and_the_checkpoint_restarts(store: FleetStore) -> None:
    lease = await store.acquire(BAL, "w1", 10_000)
    assert lease is not None
    for uid in (1, 2, 3):
        await store.publish(lease, 7, uid, message_fields(BAL, summary(uid)))
    # RFC 3501 §2.3.1.1: the folder was recreated, UIDs start again; UID 1 is a new message.
    assert (await store.publish(lease, 9, 1, message_fields(BAL, summary(1, 9, "nouveau")))).status == "published"
    assert (await store.publish(lease, 9, 1, message_fields(BAL, summary(1, 9, "nouveau")))).status == "duplicate"
    events = await store.events()
    changed = events[3]
    assert changed.kind == "uidvalidity-changed" and changed.bal == BAL
    assert changed.fields["previous"] == "7" and changed.uidvalidity == 9 and changed.fields["previous_uid"] == "3"
    assert (events[4].kind, events[4].uidvalidity, events[4].uid) == ("message", 9, 1)
    checkpoint = await store.checkpoint(BAL)
    assert checkpoint is not None and (checkpoint.uidvalidity, checkpoint.uid) == (9, 1)


async def test_stop_emits_the_event_marks_the_bal_and_releases_the_lease(store: FleetStore) -> None:
    await store.add(BALSpec(address=BAL, kind="PER", ref="sess-1"))
    lease = await store.acquire(BAL, "w1", 10_000)
    assert lease is not None
    assert await store.stop(lease, "psc-session-ended", "logout")
    (event,) = await store.events()
    assert (event.kind, event.bal, event.fields["reason"]) == ("psc-session-ended", BAL, "logout")
    assert await store.stopped() == {BAL: "psc-session-ended: logout"} and await store.holder(BAL) is None
    await store.add(BALSpec(address=BAL, kind="PER", ref="sess-2"))  # a new session: watched again
    assert await store.stopped() == {}


async def test_the_lps_reads_with_a_consumer_group_and_acknowledges(store: FleetStore) -> None:
    lease = await store.acquire(BAL, "w1", 10_000)
    assert lease is not None
    reader = EventReader(store, group="dpi", consumer="dpi-1")
    await reader.ensure_group()
    await reader.ensure_group()  # idempotent
    for uid in (1, 2):
        await store.publish(lease, 7, uid, message_fields(BAL, summary(uid)))
    got = await reader.read(block_ms=1000)
    assert [e.uid for e in got] == [1, 2]
    assert await reader.ack(got[0]) == 1
    # the consumer restarts: what it did not acknowledge comes back, only that
    assert [e.uid for e in await reader.read(pending=True)] == [2]
    other = EventReader(store, group="dpi", consumer="dpi-2")
    assert [e.uid for e in await other.claim_stale(0)] == [2]  # dpi-1 is dead: dpi-2 takes it over
    assert await reader.read(pending=True) == []


async def test_an_unreachable_redis_is_a_transport_error() -> None:
    unreachable = FleetStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(TransportError, match="Redis is unreachable"):
        await unreachable.bals()
    await unreachable.aclose()


def test_x_mss_fields_are_parsed_bounded_and_repeated_ones_joined() -> None:
    from mssante.fleet._headers import parse_x_mss

    block = (b"X-MSS-NIL: DEV000001\r\nX-MSS-CODECDA: 11488-4^1.0^LOINC\r\nX-MSS-CODECDA: 34133-9\r\n"
             b"X-MSS-INS: 1234567890123\r\n ^1.2.250.1.213.1.4.8^INS-NIR\r\nX-Autre: non\r\n\r\n")
    assert parse_x_mss(block) == {"X-MSS-NIL": "DEV000001", "X-MSS-CODECDA": "11488-4^1.0^LOINC, 34133-9",
                                  "X-MSS-INS": "1234567890123 ^1.2.250.1.213.1.4.8^INS-NIR"}
    assert parse_x_mss(b"X-MSS-NIL: " + b"A" * 100_000 + b"\r\n")["X-MSS-NIL"] == "A" * (16 * 1024 - 11)
    assert parse_x_mss(b"") == {}


async def test_the_operator_bucket_is_shared_by_every_worker(store: FleetStore, redis_server: RedisServer) -> None:
    other = FleetStore.from_url(redis_server.url)
    try:
        # burst 2 at 10/s: two workers (two clients) get one each, the third asks too early
        assert await store.take_connect("mss.sandbox.test", 10, 2) == 0
        assert await other.take_connect("mss.sandbox.test", 10, 2) == 0
        wait = await store.take_connect("mss.sandbox.test", 10, 2)
        assert 0 < wait <= 0.1
        assert await other.take_connect("autre-operateur.test", 10, 2) == 0  # one bucket per operator
    finally:
        await other.aclose()


async def test_a_queue_of_bals_takes_its_operator_tokens_in_one_round_trip(store: FleetStore) -> None:
    # burst 5 at 0.01/s (one token per 100 s, so no token comes back between two calls however loaded the
    # machine): a worker with 8 BALs waiting gets the 5 the bucket holds, never more, then waits
    assert await store.take_connects("mss.sandbox.test", 0.01, 5, 8) == (5, 0.0)
    granted, wait = await store.take_connects("mss.sandbox.test", 0.01, 5, 3)
    assert granted == 0 and 0 < wait <= 100
    assert await store.take_connects("autre-operateur.test", 0.01, 5, 2) == (2, 0.0)  # one bucket per operator


async def test_the_checkpoints_of_a_claim_are_read_in_one_round_trip(store: FleetStore) -> None:
    other = "autre@mss.sandbox.test"
    lease = await store.acquire(BAL, "w1", 10_000)
    assert lease is not None
    await store.publish(lease, 7, 12, message_fields(BAL, summary(12)))
    assert await store.checkpoints([BAL, other]) == {BAL: Checkpoint(uidvalidity=7, uid=12), other: None}
    assert await store.checkpoints([]) == {}
