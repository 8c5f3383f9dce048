"""The LPS's side: read the fleet's events with a consumer group (XREADGROUP), acknowledge them (XACK).

Example::

    store = FleetStore.from_url("redis://redis.lps.local:6379/0")
    reader = EventReader(store, group="dpi", consumer="dpi-1")
    await reader.ensure_group()
    while True:
        for event in await reader.read(block_ms=5000):
            if event.kind == "message":
                ...  # fetch the message (event.bal, event.uid), file it in the patient record
            await reader.ack(event)

An event not acknowledged (the consumer crashed) stays pending; :meth:`EventReader.read` with
``pending=True`` gives it back to the same consumer on restart, and :meth:`EventReader.claim_stale`
lets another consumer take over what a dead one held for too long (XAUTOCLAIM).
"""

from __future__ import annotations

import redis.exceptions

from ._model import FleetEvent
from ._store import FleetStore, redis_errors

__all__ = ["EventReader"]


class EventReader:
    """One consumer of a consumer group on the fleet's event stream.

    Args:
        store: the fleet's store (its stream key).
        group: the consumer group (one per application reading the events).
        consumer: this consumer's name within the group (one per process).
    """

    def __init__(self, store: FleetStore, *, group: str, consumer: str) -> None:
        self.store = store
        self.group = group
        self.consumer = consumer

    async def ensure_group(self, start: str = "0") -> None:
        """Create the group if it does not exist (``start="0"``: from the first event kept; ``"$"``: new ones).

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            try:
                await self.store.redis.xgroup_create(self.store.keys.events, self.group, id=start, mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, *, count: int = 100, block_ms: int | None = None, pending: bool = False
                   ) -> list[FleetEvent]:
        """New events for this consumer (``pending``: those delivered to it and not acknowledged yet).

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            answer = await self.store.redis.xreadgroup(self.group, self.consumer, {self.store.keys.events:
                                                       "0" if pending else ">"}, count=count, block=block_ms)
        return [FleetEvent.from_entry(eid, raw) for _, entries in answer or [] for eid, raw in entries if raw]

    async def ack(self, *events: FleetEvent) -> int:
        """Acknowledge processed events; returns how many were pending.

        Raises:
            TransportError: Redis is unreachable.
        """
        if not events:
            return 0
        with redis_errors():
            return int(await self.store.redis.xack(self.store.keys.events, self.group, *(e.id for e in events)))

    async def claim_stale(self, min_idle_ms: int, *, count: int = 100) -> list[FleetEvent]:
        """Take over events another consumer left unacknowledged for ``min_idle_ms`` (XAUTOCLAIM).

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            answer = await self.store.redis.xautoclaim(self.store.keys.events, self.group, self.consumer,
                                                       min_idle_ms, start_id="0-0", count=count)
        return [FleetEvent.from_entry(eid, raw) for eid, raw in answer[1] if raw]
