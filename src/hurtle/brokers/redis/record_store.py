"""Records in Redis (``hurtle.records``): one string per record, ``P:record:<key>``, with a TTL.

A put is ``SET ... PX``: Redis drops the key itself when its time is up, so an
expired record is never read. ``get_all`` finds the keys with ``SCAN`` and
``MATCH`` on the prefix (its glob characters escaped, as for tallies: it walks
the whole database, which suits a command such as ``hurtle status``, not a hot
path), then reads them with one pipeline of ``GET``: a key that expired between
the two answers nothing and is left out. On a Redis Cluster the keys lie on
every node: the scan covers every primary and the pipeline is split by slot,
as for tallies (``tallies.py``). ``get`` is a ``GET``; ``put_if`` is one
``record_put_if.lua`` call, a compare-and-set on one key (legal on a cluster).
A set (``gather``) is a hash at ``P:record:<key>``: ``HSETNX`` keeps a member's
first value and ``HLEN`` counts them, in one ``MULTI`` transaction on one key.
``gather_many`` makes one ``MULTI`` per key for the whole batch (each ``HSETNX``
followed by its ``HLEN``), the keys' transactions at once: one round trip for
the members of a chord that finished together, and legal on a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.link import RedisLink
from hurtle.brokers.redis.tallies import glob_escape
from hurtle.brokers.redis.url import Keys
from hurtle.records import RecordStore

_SCAN_COUNT = 1000  # keys Redis looks at per SCAN call (a hint)


class RedisRecords(RecordStore):
    """The record store of a ``RedisBroker``, on the broker's link.

    Closing it closes the link too, as ``RedisTallies`` does; the link opens again
    if the broker is used after."""

    def __init__(self, keys: Keys, link: RedisLink) -> None:
        self._names = keys
        self._link = link

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        name = self._names.record(key)
        await self._link.call(lambda conn: conn.client.set(name, bytes(value), px=max(1, int(ttl * 1000))))

    async def get_all(self, prefix: str) -> dict[str, bytes]:
        return await self._link.call(lambda conn: self._read(conn, prefix))

    async def _read(self, conn: RedisConn, prefix: str) -> dict[str, bytes]:
        pattern = glob_escape(self._names.records + prefix) + "*"
        names: set[bytes] = set()  # a scan during a slot migration may see a key twice
        async for name in conn.client.scan_iter(match=pattern, count=_SCAN_COUNT):
            names.add(bytes(name))
        if not names:
            return {}
        ordered = sorted(names)
        pipe = conn.client.pipeline(transaction=False)
        for name in ordered:
            pipe.get(name)
        # A key another program made of another type fails its GET alone: left out.
        values = cast("list[object]", await pipe.execute(raise_on_error=False))
        skip = len(self._names.records.encode())
        return {
            name[skip:].decode(errors="replace"): value
            for name, value in zip(ordered, values, strict=True)
            if isinstance(value, bytes)
        }

    async def get(self, key: str) -> bytes | None:
        name = self._names.record(key)
        value = await self._link.call(lambda conn: conn.client.get(name))
        return value if isinstance(value, bytes) else None

    async def put_if(self, key: str, value: bytes, ttl: float, *, current: bytes | None) -> bool:
        name = self._names.record(key)
        args = [bytes(value), max(1, int(ttl * 1000)), 0 if current is None else 1, current or b""]
        done = await self._link.call(lambda conn: conn.script("record_put_if", [name], args))
        return bool(done)

    async def gather(self, key: str, index: int, value: bytes, ttl: float) -> tuple[bool, int]:
        name = self._names.record(key)
        ttl_ms = max(1, int(ttl * 1000))

        args: list[object] = [ttl_ms, str(index), bytes(value)]
        added, count = await self._link.call(lambda conn: conn.script("record_gather", [name], args))
        return bool(added), int(count)

    async def gather_many(self, items: Sequence[tuple[str, int, bytes, float]]) -> list[tuple[bool, int]]:
        by_key: dict[str, list[int]] = {}
        for position, (key, *_) in enumerate(items):
            by_key.setdefault(key, []).append(position)
        answers: list[tuple[bool, int]] = [(False, 0)] * len(items)

        async def one_key(key: str, positions: list[int]) -> None:
            name = self._names.record(key)
            ttl_ms = max(1, int(max(items[p][3] for p in positions) * 1000))

            args: list[object] = [ttl_ms]
            for position in positions:
                _, index, value, _ = items[position]
                args += [str(index), bytes(value)]
            replies = cast("list[object]", await self._link.call(
                lambda conn: conn.script("record_gather", [name], args)))
            for n, position in enumerate(positions):
                added, count = replies[2 * n], replies[2 * n + 1]
                answers[position] = (bool(added), int(cast("int", count)))

        await asyncio.gather(*(one_key(key, positions) for key, positions in by_key.items()))
        return answers

    async def gathered(self, key: str) -> dict[int, bytes]:
        name = self._names.record(key)
        found = await self._link.call(lambda conn: conn.client.hgetall(name))
        return {int(k): bytes(v) for k, v in cast("dict[bytes, bytes]", found).items()}

    async def delete(self, keys: Sequence[str]) -> None:
        # A cluster client splits a DEL of several keys by slot.
        names = [self._names.record(key) for key in keys]
        if names:
            await self._link.call(lambda conn: conn.client.delete(*names))

    async def close(self) -> None:
        await self._link.close()
