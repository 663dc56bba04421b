"""Results in Redis: one list key per task id holding one element, with a TTL.

Storing is ``store.lua`` once per result, pipelined (the flusher's batch in one
round trip; on a cluster each result key is a slot of its own, so no MULTI): it
replaces the list whole, sets its TTL and publishes the result to whoever waits
for it. Waiting is ``waiters.py``: one subscribed connection for every
waiter of the store.

A client that waits with ``BLMOVE key key LEFT LEFT`` (hurtle before the
subscription) still works: the key is the same list.
"""

from __future__ import annotations

from collections.abc import Sequence

from hurtle.brokers.redis.link import RedisLink
from hurtle.brokers.redis.url import Keys
from hurtle.brokers.redis.waiters import PUBLISH_MAX_BYTES, RedisWaiters, can_subscribe, lindex, lindex_many
from hurtle.results import PollingWaiters, ResultStore, Waiters


class RedisResults(ResultStore):
    """The result store of a ``RedisBroker``, on the broker's link.

    Closing it closes the link too, for a store used apart from its broker's other
    work (``results=`` a Redis URL). The broker's own ``close`` closes its store, so
    whoever holds both closes one of them (``Connection.close``)."""

    def __init__(self, keys: Keys, link: RedisLink) -> None:
        super().__init__()
        self.keys = keys
        self._link = link

    async def store(self, results: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """One round trip; each result replaces the old one whole and is published."""
        if not results:
            return
        ttl_ms = max(1, int(ttl * 1000))
        calls = [
            ([self.keys.result(task_id)], [record, ttl_ms, PUBLISH_MAX_BYTES]) for task_id, record in results
        ]
        await self._link.call(
            lambda conn: conn.scripts_in(conn.client.pipeline(transaction=False), "store", calls)
        )

    async def get(self, task_id: str) -> bytes | None:
        key = self.keys.result(task_id)
        return await self._link.call(lambda conn: lindex(conn, key))

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        ids = list(task_ids)
        return await self._link.call(lambda conn: lindex_many(conn, self.keys, ids))

    def make_waiters(self) -> Waiters:
        if not can_subscribe():
            return PollingWaiters(self)
        return RedisWaiters(self._link, self.keys)

    async def forget(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            keys = [self.keys.result(task_id) for task_id in task_ids]
            await self._link.call(lambda conn: conn.client.delete(*keys))

    async def close(self) -> None:
        await self.close_waiters()
        await self._link.close()
