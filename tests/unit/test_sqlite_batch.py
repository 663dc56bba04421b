"""The SQLite broker's thread: one transaction per loop tick, each write isolated, busy waits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hurtle.brokers.sqlite.batch import SQLThread
from hurtle.errors import BrokerError


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x INTEGER NOT NULL)")
    return path


@pytest.fixture
async def sql(db: Path) -> AsyncIterator[SQLThread]:
    def open_connection() -> sqlite3.Connection:
        return sqlite3.connect(db, timeout=0.0, isolation_level=None, check_same_thread=False)

    thread = SQLThread(open_connection, str(db))
    yield thread
    thread.close(asyncio.get_running_loop())


def rows(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]


def insert(conn: sqlite3.Connection, *values: int) -> None:
    for value in values:
        conn.execute("INSERT INTO t (x) VALUES (?)", (value,))


def insert_then_fail(conn: sqlite3.Connection) -> None:
    insert(conn, 99)
    conn.execute("INSERT INTO t (x) VALUES (NULL)")  # NOT NULL: fails after one row went in


def in_transaction(conn: sqlite3.Connection) -> bool:
    return conn.in_transaction


async def test_calls_of_one_tick_commit_together_and_a_failing_write_is_rolled_back_alone(
    sql: SQLThread, db: Path
) -> None:
    # Given three writes made in the same loop tick, the middle one failing halfway
    results = await asyncio.gather(
        sql.call(insert, 1, write=True),
        sql.call(insert_then_fail, write=True),
        sql.call(insert, 2, 3, write=True),
        return_exceptions=True,
    )

    # Then its caller gets a BrokerError and none of its rows; the others commit
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], BrokerError)
    assert rows(db) == [1, 2, 3]


async def test_a_read_before_any_write_runs_outside_a_transaction(sql: SQLThread) -> None:
    assert await sql.call(in_transaction, write=False) is False
    in_batch = await asyncio.gather(
        sql.call(insert, 1, write=True), sql.call(in_transaction, write=False)
    )
    assert list(in_batch) == [None, True]  # after a write, in the tick's transaction


async def test_a_write_waits_for_another_connection_to_release_the_lock(
    sql: SQLThread, db: Path
) -> None:
    # Given another connection holding the write lock for a moment
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (x) VALUES (0)")
    release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    release.start()

    # When this thread writes, it waits its turn instead of failing
    await sql.call(insert, 1, write=True)

    release.join()
    other.close()
    assert rows(db) == [0, 1]
