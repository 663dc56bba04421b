"""Limits in the SQLite broker's database (``hurtle.limit_store``), on its SQLite thread.

Two tables (schema in ``sql.py``): ``hurtle_rates``, one row per rate key with
its theoretical arrival time (the GCRA's one number, ``gcra_take``), and
``hurtle_permits``, one row per held permit with the time it expires. Each step
is one write call, so it runs inside the batch's ``BEGIN IMMEDIATE``
transaction: no other process writes between its read and its write. The clock
is read inside the transaction, so the processes of one machine (SQLite's
reach) agree on it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Mapping, Sequence

from hurtle.brokers.sqlite.batch import SQLThread
from hurtle.limit_store import LimitStore, RateTake, gcra_take

#: A rate row this long past its arrival time is at its full burst whether kept or
#: not: a take deletes such rows, so a task that stopped sending leaves none for long.
_FORGET_AFTER = 3600.0


def take_rate(conn: sqlite3.Connection, key: str, interval: float, burst: int, count: int) -> RateTake:
    now = time.time()
    row = conn.execute("SELECT tat FROM hurtle_rates WHERE key = ?", (key,)).fetchone()
    # A value another program left that is not a number reads as an empty bucket.
    tat = row[0] if row is not None and isinstance(row[0], (int, float)) else 0.0
    taken, tat = gcra_take(float(tat), now, interval, burst, count)
    if taken.granted:
        conn.execute(
            "INSERT INTO hurtle_rates (key, tat) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
            (key, tat),
        )
        conn.execute("DELETE FROM hurtle_rates WHERE tat < ?", (now - _FORGET_AFTER,))
    return taken


def _expire(conn: sqlite3.Connection, key: str, now: float) -> None:
    # ``expires_at < ''`` holds for numbers only: a row with text there must not live for ever.
    conn.execute(
        "DELETE FROM hurtle_permits WHERE key = ? AND NOT (expires_at > ? AND expires_at < '')", (key, now)
    )


def acquire(conn: sqlite3.Connection, key: str, holders: list[str], limit: int, ttl: float) -> int:
    now = time.time()
    _expire(conn, key, now)
    (live,) = conn.execute("SELECT count(*) FROM hurtle_permits WHERE key = ?", (key,)).fetchone()
    given = max(0, min(len(holders), limit - int(live)))
    conn.executemany(
        "INSERT OR REPLACE INTO hurtle_permits (key, holder, expires_at) VALUES (?, ?, ?)",
        [(key, holder, now + ttl) for holder in holders[:given]],
    )
    return given


def renew(conn: sqlite3.Connection, permits: list[tuple[str, str]], ttl: float) -> None:
    now = time.time()
    conn.executemany(
        "UPDATE hurtle_permits SET expires_at = ? WHERE key = ? AND holder = ? AND expires_at > ?",
        [(now + ttl, key, holder, now) for key, holder in permits],
    )


def release(conn: sqlite3.Connection, permits: list[tuple[str, str]]) -> None:
    conn.executemany("DELETE FROM hurtle_permits WHERE key = ? AND holder = ?", permits)


def held(conn: sqlite3.Connection, key: str) -> int:
    (count,) = conn.execute(
        "SELECT count(*) FROM hurtle_permits WHERE key = ? AND expires_at > ? AND expires_at < ''",
        (key, time.time()),
    ).fetchone()
    return int(count)


def _pairs(permits: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    return [(key, holder) for key, holders in permits.items() for holder in holders]


class SQLiteLimits(LimitStore):
    """The limit store of a ``SQLiteBroker``, in the same database, on its SQLite thread.

    Closing it closes the thread too, as ``SQLiteRecords`` does; the thread starts
    again if the broker is used after."""

    def __init__(self, thread: SQLThread) -> None:
        self._sql = thread

    async def take_rate(self, key: str, interval: float, burst: int, count: int) -> RateTake:
        return await self._sql.call(take_rate, key, interval, burst, count, write=True)

    async def acquire(self, key: str, holders: Sequence[str], limit: int, ttl: float) -> int:
        return await self._sql.call(acquire, key, list(holders), limit, ttl, write=True)

    async def renew(self, permits: Mapping[str, Sequence[str]], ttl: float) -> None:
        if pairs := _pairs(permits):
            await self._sql.call(renew, pairs, ttl, write=True)

    async def release(self, permits: Mapping[str, Sequence[str]]) -> None:
        if pairs := _pairs(permits):
            await self._sql.call(release, pairs, write=True)

    async def held(self, key: str) -> int:
        return await self._sql.call(held, key, write=False)

    async def close(self) -> None:
        self._sql.close(asyncio.get_running_loop())
