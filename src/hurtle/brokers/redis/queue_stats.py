"""What a Redis broker's queues hold and took in, one script per queue."""

from __future__ import annotations

from collections.abc import Sequence

from hurtle.brokers.base import QueueStats
from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.url import GROUP, Keys


async def queue_stats(conn: RedisConn, keys: Keys, queues: Sequence[str], lease_ms: int) -> list[QueueStats]:
    """Each queue's counts and its oldest ready entry's age (stats.lua), by the
    server's clock: since it entered the stream (sent, due, retried) or its lease
    ran out. A due message no fetch has moved onto the stream yet counts as
    delayed, so it adds no age."""
    rows = []
    for name in queues:
        script_keys = [keys.stream(name), keys.delayed(name), keys.dead(name)]
        counted = await conn.script("stats", script_keys, [GROUP, lease_ms])
        ready, delayed, leased, dead, oldest_ms = map(int, counted)
        rows.append(QueueStats(name, ready, delayed, leased, dead, oldest_ms / 1000))
    return rows


async def added_counts(conn: RedisConn, keys: Keys, queues: Sequence[str]) -> dict[str, int]:
    """Each stream's ``entries-added`` (added.lua): sends, due delayed messages and
    retries, each counted once as it entered the stream. A queue whose count Redis
    does not keep is left out."""
    counts = {}
    for name in queues:
        added = int(await conn.script("added", [keys.stream(name)], []))
        if added >= 0:
            counts[name] = added
    return counts
