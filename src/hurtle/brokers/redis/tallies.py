"""Tallies in Redis (``hurtle.tallies``): one hash per tally, ``P:tally:<key>``, with a TTL.

An add is one ``tally_add.lua`` call: ``HINCRBY`` per count, a compare-and-set per
highest field, then ``PEXPIRE``, atomic in one round trip. Redis drops an
expired hash itself, so a tally is never read after its time.

``keys`` is ``SCAN`` with ``MATCH`` on the prefix, its glob characters escaped:
it walks the whole database, which suits listing profiles at a command, not a
hot path. Redis leaves expired keys out of a scan's replies.
On a Redis Cluster each tally key hashes to a slot of its own, so the keys lie
on every node: redis-py's cluster ``scan_iter`` scans every primary, each to its
cursor's end. A scan running while a slot migrates may miss a key that moves
under it, or see one twice (deduplicated here): a listing, as on one server,
of what existed throughout the scan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.link import RedisLink
from hurtle.brokers.redis.url import Keys
from hurtle.tallies import TallyStore

_SCAN_COUNT = 1000  # keys Redis looks at per SCAN call (a hint)
_GLOB = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern (``SCAN MATCH``)."""
    return _GLOB.sub(r"\\\1", text)


class RedisTallies(TallyStore):
    """The tally store of a ``RedisBroker``, on the broker's link.

    Closing it closes the link too, as ``RedisResults`` does; the link opens again
    if the broker is used after."""

    def __init__(self, keys: Keys, link: RedisLink) -> None:
        self._names = keys
        self._link = link

    async def add(
        self, key: str, counts: Mapping[str, int], ttl: float, *, highest: Mapping[str, int] | None = None
    ) -> None:
        if not counts and not highest:
            return
        args: list[Any] = [max(1, int(ttl * 1000)), len(counts)]
        for name, value in counts.items():
            args += (name, int(value))
        for name, value in (highest or {}).items():
            args += (name, int(value))
        name = self._names.tally(key)
        await self._link.call(lambda conn: conn.script("tally_add", [name], args))

    async def read(self, key: str) -> dict[str, int]:
        name = self._names.tally(key)
        fields = await self._link.call(lambda conn: _hgetall(conn, name))
        return {field.decode(errors="replace"): int(value) for field, value in fields.items()}

    async def read_many(self, keys: Sequence[str]) -> list[dict[str, int]]:
        if not keys:
            return []
        names = [self._names.tally(key) for key in keys]
        replies = await self._link.call(lambda conn: _hgetall_many(conn, names))
        return [{name.decode(errors="replace"): int(n) for name, n in got.items()} for got in replies]

    async def keys(self, prefix: str) -> list[str]:
        return await self._link.call(lambda conn: self._scan(conn, prefix))

    async def _scan(self, conn: RedisConn, prefix: str) -> list[str]:
        pattern = glob_escape(self._names.tallies + prefix) + "*"
        skip = len(self._names.tallies.encode())
        found: set[str] = set()
        async for name in conn.client.scan_iter(match=pattern, count=_SCAN_COUNT):
            found.add(bytes(name)[skip:].decode(errors="replace"))
        return sorted(found)

    async def delete(self, keys: Sequence[str]) -> None:
        # A cluster client splits a DEL of several keys by slot.
        names = [self._names.tally(key) for key in keys]
        if names:
            await self._link.call(lambda conn: conn.client.delete(*names))

    async def close(self) -> None:
        await self._link.close()


async def _hgetall(conn: RedisConn, name: str) -> dict[bytes, bytes]:
    # The client decodes nothing: redis-py's type says str too.
    return cast("dict[bytes, bytes]", await conn.client.hgetall(name))


async def _hgetall_many(conn: RedisConn, names: list[str]) -> list[dict[bytes, bytes]]:
    # One pipeline, one round trip (a cluster client splits it by slot): 480 minutes
    # of history read one HGETALL at a time would be 480 round trips.
    pipe = conn.client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(name)
    return cast("list[dict[bytes, bytes]]", await pipe.execute())
