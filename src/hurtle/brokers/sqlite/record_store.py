"""Records in the SQLite broker's database (``hurtle.records``), on its SQLite thread.

One table, ``hurtle_records`` (schema in ``sql.py``): a row per key with its
bytes and the time it expires. A record whose time has passed is never read as
live (``get_all`` checks ``expires_at``); expired rows are deleted by a ``put``
at most once a minute, so a worker killed without a goodbye leaves no row for long.
``put_if`` reads and writes in one write call, which runs inside the batch's
``BEGIN IMMEDIATE`` transaction: atomic across processes.

A set (``gather``) is rows of the same table: member ``i`` of set ``K`` is the
row ``K/i``, and the row ``K`` counts the members, so adding one is an insert
that does nothing when the member is there and, when it is new, a counter moved
by one, in one write call: atomic across processes, and a constant cost
however large the set.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence

from hurtle.brokers.sqlite.batch import SQLThread
from hurtle.records import RecordStore

_SWEEP_EVERY = 60.0  # seconds between deletions of expired records


def put_record(
    conn: sqlite3.Connection, key: str, value: bytes, expires_at: float, now: float, sweep: bool
) -> None:
    if sweep:
        conn.execute("DELETE FROM hurtle_records WHERE expires_at <= ?", (now,))
    conn.execute(
        "INSERT INTO hurtle_records (key, value, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        (key, value, expires_at),
    )


def live_records(conn: sqlite3.Connection, prefix: str, now: float) -> dict[str, bytes]:
    # ``key >= prefix`` lets the primary key's index skip what sorts before the prefix;
    # substr compares the prefix exactly (LIKE would need escapes and ignores case).
    # ``expires_at < ''`` holds for numbers only: a row another program wrote with
    # text there (text sorts above every number) must not live for ever.
    rows = conn.execute(
        "SELECT key, CAST(value AS BLOB) FROM hurtle_records"
        " WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1 AND expires_at > ?2 AND expires_at < ''",
        (prefix, now),
    )
    return {key: bytes(value) for key, value in rows}


def live_record(conn: sqlite3.Connection, key: str, now: float) -> bytes | None:
    row = conn.execute(
        "SELECT CAST(value AS BLOB) FROM hurtle_records WHERE key = ? AND expires_at > ? AND expires_at < ''",
        (key, now),
    ).fetchone()
    return None if row is None else bytes(row[0])


def put_record_if(
    conn: sqlite3.Connection, key: str, value: bytes, expires_at: float, now: float, current: bytes | None
) -> bool:
    # A write call runs inside BEGIN IMMEDIATE (batch.py): no other process
    # writes between this read and the put.
    if live_record(conn, key, now) != current:
        return False
    put_record(conn, key, value, expires_at, now, sweep=False)
    return True


def delete_records(conn: sqlite3.Connection, keys: list[str]) -> None:
    conn.executemany("DELETE FROM hurtle_records WHERE key = ?", [(k,) for k in keys])
    # A set's members: the rows ``key/...`` (``/`` sorts just before ``0``).
    conn.executemany(
        "DELETE FROM hurtle_records WHERE key >= ? AND key < ?", [(f"{k}/", f"{k}0") for k in keys]
    )


def gather_member(
    conn: sqlite3.Connection, key: str, index: int, value: bytes, expires_at: float, now: float
) -> tuple[bool, int]:
    # A write call runs inside BEGIN IMMEDIATE (batch.py): the insert and the
    # count move together, whoever else adds a member at the same moment.
    added = conn.execute(
        "INSERT INTO hurtle_records (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (f"{key}/{index}", value, expires_at),
    ).rowcount == 1
    counted = live_record(conn, key, now)
    count = int(counted) if counted is not None else 0
    if added:
        count += 1
    put_record(conn, key, str(count).encode(), expires_at, now, sweep=False)
    return added, count


def gather_members(
    conn: sqlite3.Connection, items: list[tuple[str, int, bytes, float]], now: float
) -> list[tuple[bool, int]]:
    return [gather_member(conn, k, index, value, expires_at, now) for k, index, value, expires_at in items]


def gathered_members(conn: sqlite3.Connection, key: str, now: float) -> dict[int, bytes]:
    prefix = f"{key}/"
    return {int(k[len(prefix):]): v for k, v in live_records(conn, prefix, now).items()}


class SQLiteRecords(RecordStore):
    """The record store of a ``SQLiteBroker``, in the same database, on its SQLite thread.

    Closing it closes the thread too, as ``SQLiteTallies`` does; the thread starts
    again if the broker is used after."""

    def __init__(self, thread: SQLThread) -> None:
        self._sql = thread
        self._next_sweep = 0.0

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        now = time.time()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + _SWEEP_EVERY
        await self._sql.call(put_record, key, bytes(value), now + ttl, now, sweep, write=True)

    async def get_all(self, prefix: str) -> dict[str, bytes]:
        return await self._sql.call(live_records, prefix, time.time(), write=False)

    async def get(self, key: str) -> bytes | None:
        return await self._sql.call(live_record, key, time.time(), write=False)

    async def put_if(self, key: str, value: bytes, ttl: float, *, current: bytes | None) -> bool:
        now = time.time()
        expected = None if current is None else bytes(current)
        return await self._sql.call(put_record_if, key, bytes(value), now + ttl, now, expected, write=True)

    async def gather(self, key: str, index: int, value: bytes, ttl: float) -> tuple[bool, int]:
        now = time.time()
        return await self._sql.call(gather_member, key, index, bytes(value), now + ttl, now, write=True)

    async def gather_many(self, items: Sequence[tuple[str, int, bytes, float]]) -> list[tuple[bool, int]]:
        now = time.time()
        return await self._sql.call(gather_members, [(k, i, bytes(v), now + t) for k, i, v, t in items], now,
                                    write=True)

    async def gathered(self, key: str) -> dict[int, bytes]:
        return await self._sql.call(gathered_members, key, time.time(), write=False)

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self._sql.call(delete_records, list(keys), write=True)

    async def close(self) -> None:
        self._sql.close(asyncio.get_running_loop())
