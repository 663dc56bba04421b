"""Tallies in the SQLite broker's database (``hurtle.tallies``), on its SQLite thread.

Two tables (their schema is in ``sql.py``): ``hurtle_tallies`` holds one row per
(key, field), ``hurtle_tally_keys`` one row per key with the time it expires.
An add is one write call, so it runs inside the thread's transaction (in a
savepoint of its own when the batch holds other writes) and commits whole:
counts are added by ``ON CONFLICT DO UPDATE SET value = value + excluded.value``,
highest values by ``max()``, so two processes adding to one field never lose an
increment whatever order their transactions take.

A key whose time has passed is never read as live: reads and ``keys`` check
``expires_at``, and an add to an expired key first deletes its old fields, so it
starts again from nothing as on Redis. Expired rows are deleted by an add at
most once a minute.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Mapping, Sequence

from hurtle.brokers.sqlite.batch import SQLThread
from hurtle.tallies import TallyStore

_SWEEP_EVERY = 60.0  # seconds between deletions of expired tallies

_ADD = (
    "INSERT INTO hurtle_tallies (key, field, value) VALUES (?, ?, ?)"
    " ON CONFLICT (key, field) DO UPDATE SET value = value + excluded.value"
)
_RAISE = (
    "INSERT INTO hurtle_tallies (key, field, value) VALUES (?, ?, ?)"
    " ON CONFLICT (key, field) DO UPDATE SET value = max(value, excluded.value)"
)
_LIVE = "SELECT 1 FROM hurtle_tally_keys WHERE key = ?1 AND expires_at > ?2"


def add_counts(
    conn: sqlite3.Connection, key: str, counts: list[tuple[str, int]], highest: list[tuple[str, int]],
    now: float, expires_at: float, sweep: bool,
) -> None:
    if sweep:
        conn.execute(
            "DELETE FROM hurtle_tallies WHERE key IN"
            " (SELECT key FROM hurtle_tally_keys WHERE expires_at <= ?)", (now,)
        )
        conn.execute("DELETE FROM hurtle_tally_keys WHERE expires_at <= ?", (now,))
    elif conn.execute(_LIVE, (key, now)).fetchone() is None:
        conn.execute("DELETE FROM hurtle_tallies WHERE key = ?", (key,))  # expired: from nothing
    conn.executemany(_ADD, [(key, name, value) for name, value in counts])
    conn.executemany(_RAISE, [(key, name, value) for name, value in highest])
    conn.execute(
        "INSERT INTO hurtle_tally_keys (key, expires_at) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at",
        (key, expires_at),
    )


def read_fields(conn: sqlite3.Connection, key: str, now: float) -> dict[str, int]:
    rows = conn.execute(
        f"SELECT field, value FROM hurtle_tallies WHERE key = ?1 AND EXISTS ({_LIVE})", (key, now)
    )
    return {name: int(value) for name, value in rows}


def read_many_fields(conn: sqlite3.Connection, keys: list[str], now: float) -> list[dict[str, int]]:
    return [read_fields(conn, key, now) for key in keys]  # one call on the thread, one read transaction


def live_keys(conn: sqlite3.Connection, prefix: str, now: float) -> list[str]:
    # ``key >= prefix`` lets the primary key's index skip what sorts before the prefix;
    # substr compares the prefix exactly (LIKE would need escapes and ignores case).
    rows = conn.execute(
        "SELECT key FROM hurtle_tally_keys WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1"
        " AND expires_at > ?2",
        (prefix, now),
    )
    return sorted(key for (key,) in rows)


def delete_keys(conn: sqlite3.Connection, names: list[str]) -> None:
    conn.executemany("DELETE FROM hurtle_tallies WHERE key = ?", [(k,) for k in names])
    conn.executemany("DELETE FROM hurtle_tally_keys WHERE key = ?", [(k,) for k in names])


class SQLiteTallies(TallyStore):
    """The tally store of a ``SQLiteBroker``, in the same database, on its SQLite thread.

    Closing it closes the thread too, as ``SQLiteResults`` does; the thread starts
    again if the broker is used after."""

    def __init__(self, thread: SQLThread) -> None:
        self._sql = thread
        self._next_sweep = 0.0

    async def add(
        self, key: str, counts: Mapping[str, int], ttl: float, *, highest: Mapping[str, int] | None = None
    ) -> None:
        if not counts and not highest:
            return
        now = time.time()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + _SWEEP_EVERY
        raised = [(name, int(value)) for name, value in (highest or {}).items()]
        added = [(name, int(value)) for name, value in counts.items()]
        await self._sql.call(add_counts, key, added, raised, now, now + ttl, sweep, write=True)

    async def read(self, key: str) -> dict[str, int]:
        return await self._sql.call(read_fields, key, time.time(), write=False)

    async def read_many(self, keys: Sequence[str]) -> list[dict[str, int]]:
        if not keys:
            return []
        return await self._sql.call(read_many_fields, list(keys), time.time(), write=False)

    async def keys(self, prefix: str) -> list[str]:
        return await self._sql.call(live_keys, prefix, time.time(), write=False)

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self._sql.call(delete_keys, list(keys), write=True)

    async def close(self) -> None:
        self._sql.close(asyncio.get_running_loop())
