"""Limits in Redis (``hurtle.limit_store``): ``P:limit:<key>``, one key per limit.

A rate is a string holding its GCRA arrival time in ms, moved by
``rate_take.lua``; a concurrency limit a ZSET of holders scored by when their
permit expires, taken by ``permit_take.lua`` and renewed by
``permit_renew.lua``. Each script touches one key (legal on a cluster) and
reads the time with ``TIME``, so every worker on every machine is measured by
one clock, the server's. Keys expire by themselves once nothing uses them.
Releases are ``ZREM``s, and renewals one script per key, pipelined (split by
slot on a cluster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.link import RedisLink
from hurtle.brokers.redis.url import Keys
from hurtle.limit_store import LimitStore, RateTake


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisLimits(LimitStore):
    """The limit store of a ``RedisBroker``, on the broker's link.

    Closing it closes the link too, as ``RedisRecords`` does; the link opens again
    if the broker is used after."""

    def __init__(self, keys: Keys, link: RedisLink) -> None:
        self._names = keys
        self._link = link

    async def take_rate(self, key: str, interval: float, burst: int, count: int) -> RateTake:
        name = self._names.limit(key)
        args = [repr(interval * 1000), burst, count]
        granted, wait_ms = await self._link.call(lambda conn: conn.script("rate_take", [name], args))
        return RateTake(int(granted), float(wait_ms) / 1000)

    async def acquire(self, key: str, holders: Sequence[str], limit: int, ttl: float) -> int:
        if not holders:
            return 0
        name = self._names.limit(key)
        args = [limit, _ms(ttl), *holders]
        return int(await self._link.call(lambda conn: conn.script("permit_take", [name], args)))

    async def renew(self, permits: Mapping[str, Sequence[str]], ttl: float) -> None:
        calls = [
            ([self._names.limit(key)], [_ms(ttl), *holders]) for key, holders in permits.items() if holders
        ]
        if calls:
            await self._link.call(lambda conn: self._renew(conn, calls))

    @staticmethod
    async def _renew(conn: RedisConn, calls: list[tuple[list[str], list[object]]]) -> None:
        await conn.scripts_in(conn.client.pipeline(transaction=False), "permit_renew", calls)

    async def release(self, permits: Mapping[str, Sequence[str]]) -> None:
        removals = [(self._names.limit(key), list(holders)) for key, holders in permits.items() if holders]
        if removals:
            await self._link.call(lambda conn: self._release(conn, removals))

    @staticmethod
    async def _release(conn: RedisConn, removals: list[tuple[str, list[str]]]) -> None:
        pipe = conn.client.pipeline(transaction=False)
        for name, holders in removals:
            pipe.zrem(name, *holders)
        await pipe.execute()

    async def held(self, key: str) -> int:
        name = self._names.limit(key)
        return int(await self._link.call(lambda conn: conn.script("permit_count", [name], [])))

    async def close(self) -> None:
        await self._link.close()
