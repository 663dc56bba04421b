"""Results in Redis: one list key per task id holding one element, with a TTL.

A waiter blocks on ``BLMOVE key key LEFT LEFT``: when the element comes, Redis
moves it onto the same list (nothing is consumed, so every waiter sees it and
the TTL stays) and answers at once. No polling; each blocking call holds one
pooled connection while it waits, apart from the connections of other calls.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from typing import cast

from hurtle.brokers.redis_link import BLOCK_CAP, Conn, Keys, Link
from hurtle.errors import BrokerError
from hurtle.results import ResultStore


class RedisResults(ResultStore):
    """The result half of ``RedisBroker`` (which sets ``keys`` and ``_link``)."""

    keys: Keys
    _link: Link

    def result_store(self) -> ResultStore:
        return self

    async def store(self, results: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """One MULTI/EXEC round trip; a rerun's result replaces the old one whole."""
        if not results:
            return
        ttl_ms = max(1, int(ttl * 1000))

        async def write(conn: Conn) -> None:
            pipe = conn.client.pipeline(transaction=True)
            for task_id, record in results:
                key = self.keys.result(task_id)
                pipe.delete(key)
                pipe.rpush(key, record)
                pipe.pexpire(key, ttl_ms)
            await pipe.execute()

        await self._link.call(write)

    async def get(self, task_id: str) -> bytes | None:
        key = self.keys.result(task_id)
        return await self._link.call(lambda conn: _lindex(conn, key))

    async def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block (``BLMOVE``, at most ``BLOCK_CAP`` seconds a call) until the result
        comes or ``timeout`` passes; a lost connection is retried until then."""
        key = self.keys.result(task_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = BLOCK_CAP if deadline is None else min(BLOCK_CAP, deadline - time.monotonic())
            if remaining < 0.001:  # BLMOVE's timeout 0 means "forever": look once instead
                return await self.get(task_id)
            try:
                blmove = functools.partial(_blmove, key=key, seconds=remaining)
                record = await self._link.call(blmove, patience=remaining)
            except BrokerError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.05)  # the link backed off already; try again within the wait
                continue
            if record is not None:
                return record

    async def forget(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            keys = [self.keys.result(task_id) for task_id in task_ids]
            await self._link.call(lambda conn: conn.client.delete(*keys))


# The client is made with decode_responses=False: replies are bytes, never str.


async def _lindex(conn: Conn, key: str) -> bytes | None:
    return cast("bytes | None", await conn.client.lindex(key, 0))


async def _blmove(conn: Conn, key: str, seconds: float) -> bytes | None:
    # BLMOVE takes fractional seconds (Redis >= 6); redis-py's hint says int.
    reply = await conn.client.blmove(key, key, seconds, "LEFT", "LEFT")  # type: ignore[arg-type]
    return cast("bytes | None", reply)
