"""Make-before-break handover: a BAL moves to a worker whose IMAP session is already up, its previous holder
watching it until the lease moves; nothing missed, nothing doubled, no BAL ever without a session."""

from __future__ import annotations

from mssante.fleet import BALSpec, FleetStore, message_fields
from tests.fleet.test_store import summary

BAL = "dpi.hopital@mss.sandbox.test"
OTHER = "labo@mss.sandbox.test"


async def test_an_offer_is_taken_by_another_worker_and_the_lease_moves_with_a_new_fence(store: FleetStore) -> None:
    await store.add(BALSpec(address=BAL, kind="APP", ref="s1"))
    old = await store.acquire(BAL, "w1", 60_000)
    assert old is not None
    assert await store.offer([old], 60_000) > 0
    assert [x.value for x in await store.live_offers()] == [old.value]
    assert await store.take_offers("w1", 10) == []  # not its own offer
    ((address, replaced, left),) = await store.take_offers("w2", 10)
    assert (address, replaced) == (BAL, old.value) and 0 < left <= 60_000
    assert await store.take_offers("w3", 10) == [] and await store.live_offers() == []  # popped: one taker only
    # the old holder still holds it (and renews it) until the taker's session is up
    assert await store.renew([old], 60_000) == [True]
    how, new = await store.transfer(BAL, replaced, "w2", 60_000)
    assert how == "handed-over" and new is not None and new.fence == old.fence + 1
    assert await store.holder(BAL) == new.value
    assert await store.redis.smembers(store.keys.held("w1")) == set()
    assert await store.redis.smembers(store.keys.held("w2")) == {BAL}
    # the old holder: renew refused, publication stale (fencing); the new one publishes
    assert await store.renew([old], 60_000) == [False]
    fields = message_fields(BAL, summary(1))
    assert (await store.publish(old, 7, 1, fields)).status == "stale"
    assert (await store.publish(new, 7, 1, fields)).status == "published"
    # a second transfer of the same offer fails: someone (w2) holds it now
    assert await store.transfer(BAL, replaced, "w3", 60_000) == ("taken", None)


async def test_an_offer_dies_with_its_lease_and_expires_at_its_deadline(store: FleetStore) -> None:
    for address in (BAL, OTHER):
        await store.add(BALSpec(address=address, kind="APP", ref="s1"))
    first = await store.acquire(BAL, "w1", 60_000)
    other = await store.acquire(OTHER, "w1", 60_000)
    assert first is not None and other is not None
    await store.offer([first, other], 0)  # a deadline already reached
    assert await store.live_offers() == [] and await store.take_offers("w2", 10) == []
    # released: the offer is withdrawn with the lease
    await store.offer([first], 60_000)
    assert await store.release(first) and await store.live_offers() == []
    # taken back by its holder with a new fencing token: the offer made under the old lease is dropped
    await store.offer([other], 60_000)
    await store.redis.delete(store.keys.lease(OTHER))
    again = await store.acquire(OTHER, "w1", 60_000)
    assert again is not None
    assert await store.take_offers("w2", 10) == [] and await store.live_offers() == []


async def test_a_transfer_after_the_holder_died_acquires_and_one_for_a_removed_bal_fails(store: FleetStore) -> None:
    for address in (BAL, OTHER):
        await store.add(BALSpec(address=address, kind="APP", ref="s1"))
    leases = [await store.acquire(a, "w1", 60_000) for a in (BAL, OTHER)]
    assert all(leases)
    await store.offer([x for x in leases if x], 60_000)
    taken = {a: replaced for a, replaced, _ in await store.take_offers("w2", 10)}
    assert taken.keys() == {BAL, OTHER}
    # w1 dies and is evicted (its leases deleted, fences bumped) while w2 connects: w2 acquires as a normal claim
    for address in (BAL, OTHER):
        await store.redis.delete(store.keys.lease(address))
        await store.redis.incr(store.keys.fence(address))
    how, lease = await store.transfer(BAL, taken[BAL], "w2", 60_000)
    assert how == "acquired" and lease is not None and lease.fence == 3
    # OTHER is removed from the fleet meanwhile: no lease for it
    await store.remove(OTHER)
    assert await store.transfer(OTHER, taken[OTHER], "w2", 60_000) == ("gone", None)
    assert await store.holder(OTHER) is None
    # an offer taken from a stopped BAL fails too
    await store.add(BALSpec(address=OTHER, kind="APP", ref="s1"))
    await store.redis.hset(store.keys.stopped, OTHER, "bal-error: test")
    assert await store.transfer(OTHER, "", "w2", 60_000) == ("gone", None)


async def test_a_draining_worker_leaves_the_live_set_and_keeps_its_figures(store: FleetStore) -> None:
    assert await store.heartbeat("w1", 60_000, {"bals": 3}) == 1
    assert await store.heartbeat("w2", 60_000, {"bals": 1}) == 2
    assert await store.heartbeat("w1", 60_000, {"bals": 2, "handovers_out": 1}, live=False) == 1
    assert set(await store.live_workers()) == {"w2"}
    assert await store.redis.hget(store.keys.worker("w1"), "handovers_out") == "1"
