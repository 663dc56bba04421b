"""Embedded broker and result store: ``sqlite:///relative.db`` or ``sqlite:////abs.db``.

Zero setup, safe for many processes on one host: WAL mode lets readers run
beside the one writer, ``BEGIN IMMEDIATE`` takes the write lock up front so two
writers never deadlock on an upgrade, and ``busy_timeout`` makes a writer wait
its turn. A lease is a row whose ``visible_at`` lies in the future; the
heartbeat pushes it on, and a dead worker's rows simply become visible again.

``deliveries`` is the fencing token of a lease: ack, retry and extend match on
(seq, deliveries), so a worker whose lease expired and was taken by another
cannot delete the other's delivery. ``seq`` is AUTOINCREMENT so a deleted row's
number is never reused by a new message.

All SQLite calls run on one thread per broker object: sqlite3 blocks, and the
event loop must not.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hurtle.brokers.base import Broker, DeadLetter, Delivery, Message, QueueStats
from hurtle.errors import BrokerError, ConfigurationError
from hurtle.results import ResultStore

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS hurtle_messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    visible_at   REAL    NOT NULL,
    enqueued_at  REAL    NOT NULL,
    leased       INTEGER NOT NULL DEFAULT 0,
    deliveries   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS hurtle_messages_visible ON hurtle_messages (queue, visible_at);
CREATE TABLE IF NOT EXISTS hurtle_dead (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL,
    queue      TEXT NOT NULL,
    body       BLOB NOT NULL,
    reason     TEXT NOT NULL,
    failed_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hurtle_results (
    id          TEXT PRIMARY KEY,
    body        BLOB NOT NULL,
    expires_at  REAL NOT NULL
) WITHOUT ROWID;
"""

_POLL_MIN = 0.001  # seconds between polls right after activity
_POLL_MAX = 0.02  # idle polling cap: a new message waits at most this long
_SWEEP_EVERY = 60.0  # seconds between deletions of expired results


def path_from_url(url: str) -> str:
    """``sqlite:///a.db`` is ``a.db`` (relative); ``sqlite:////tmp/a.db`` is absolute."""
    prefix = "sqlite://"
    if not url.startswith(prefix) or len(url) <= len(prefix) + 1 or url[len(prefix)] != "/":
        raise ConfigurationError(
            f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    return url[len(prefix) + 1 :]


class SQLiteBroker(Broker, ResultStore):
    schemes = ("sqlite",)

    def __init__(self, url: str = "sqlite:///hurtle.db", *, visibility_timeout: float = 30.0) -> None:
        super().__init__(url, visibility_timeout=visibility_timeout)
        self.path = path_from_url(url)
        self._thread: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._next_sweep = 0.0

    # -- plumbing -------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="hurtle-sqlite")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, self._call, fn, args)
        except sqlite3.Error as exc:
            raise BrokerError(f"SQLite {self.path}: {exc}") from exc

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._conn is None:
            self._conn = self._open()
        return fn(self._conn, *args)

    def _open(self) -> sqlite3.Connection:
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise ConfigurationError(f"SQLite broker: directory {str(parent)!r} does not exist")
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives a process crash; only power loss
        # can roll back the last transactions, the trade SQLite itself recommends.
        conn.execute("PRAGMA synchronous = NORMAL")
        with _write(conn):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        return conn

    async def connect(self) -> None:
        await self._run(lambda conn: None)

    async def close(self) -> None:
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            thread.submit(conn.close).result()
        thread.shutdown(wait=True)

    # -- messages --------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._run(_enqueue, messages, time.time())

    async def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        interval = _POLL_MIN
        while True:
            taken = await self._run(_fetch, tuple(queues), max_count, self.visibility_timeout)
            remaining = deadline - time.monotonic()
            if taken or remaining <= 0 or max_count <= 0:
                return taken
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 2, _POLL_MAX)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._run(_ack, [d.receipt for d in deliveries])

    async def retry(self, delivery: Delivery, message: Message) -> None:
        await self._run(_retry, delivery.receipt, message, time.time())

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self._run(_dead_letter, delivery.receipt, reason, time.time())

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            until = time.time() + self.visibility_timeout
            await self._run(_extend, [d.receipt for d in deliveries], until)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._run(_release, [d.receipt for d in deliveries], time.time())

    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        return await self._run(_stats, None if queues is None else tuple(queues), time.time())

    async def purge(self, queue: str) -> int:
        return await self._run(_purge, queue, time.time())

    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return await self._run(_dead_letters, queue, limit)

    async def requeue_dead(self, ids: Sequence[str] | None = None) -> int:
        return await self._run(_requeue_dead, None if ids is None else list(ids), time.time())

    async def purge_dead(self, queue: str | None = None) -> int:
        return await self._run(_purge_dead, queue)

    # -- results -----------------------------------------------------------

    def result_store(self) -> ResultStore:
        return self

    async def store(self, results: Sequence[tuple[str, bytes]], ttl: float) -> None:
        if not results:
            return
        now = time.time()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + _SWEEP_EVERY
        await self._run(_store_results, results, now + ttl, now if sweep else None)

    async def get(self, task_id: str) -> bytes | None:
        return await self._run(_get_result, task_id, time.time())

    async def forget(self, task_ids: Sequence[str]) -> None:
        await self._run(_forget_results, list(task_ids))


# -- the SQL, run on the broker's thread ------------------------------------


class _write:
    """``with _write(conn):`` one IMMEDIATE transaction, committed or rolled back."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _as_bytes(body: bytes | str) -> bytes:
    # A foreign producer may insert the JSON as TEXT; hand the worker bytes.
    return body.encode() if isinstance(body, str) else body


def _enqueue(conn: sqlite3.Connection, messages: Sequence[Message], now: float) -> None:
    rows = [
        (m.id, m.queue, m.body, m.eta if m.eta is not None else now, now) for m in messages
    ]
    with _write(conn):
        conn.executemany(
            "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )


def _fetch(
    conn: sqlite3.Connection, queues: tuple[str, ...], max_count: int, visibility: float
) -> list[Delivery]:
    marks = ",".join("?" * len(queues))
    now = time.time()
    # A read first: idle polling must not take the write lock every time.
    probe = conn.execute(
        f"SELECT 1 FROM hurtle_messages WHERE queue IN ({marks}) AND visible_at <= ? LIMIT 1",
        (*queues, now),
    ).fetchone()
    if probe is None or max_count <= 0:
        return []
    with _write(conn):
        rows = conn.execute(
            "UPDATE hurtle_messages SET leased = 1, deliveries = deliveries + 1, visible_at = ?"
            " WHERE seq IN (SELECT seq FROM hurtle_messages"
            f"  WHERE queue IN ({marks}) AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?)"
            " RETURNING seq, queue, body, deliveries",
            (now + visibility, *queues, now, max_count),
        ).fetchall()
    rows.sort()
    return [Delivery(queue, _as_bytes(body), n, (seq, n)) for seq, queue, body, n in rows]


def _ack(conn: sqlite3.Connection, receipts: list[tuple[int, int]]) -> None:
    with _write(conn):
        conn.executemany("DELETE FROM hurtle_messages WHERE seq = ? AND deliveries = ?", receipts)


def _take_owned(conn: sqlite3.Connection, receipt: tuple[int, int]) -> tuple[str, str, bytes] | None:
    """Delete the leased row if this lease still owns it; return (id, queue, body)."""
    row = conn.execute(
        "DELETE FROM hurtle_messages WHERE seq = ? AND deliveries = ? RETURNING id, queue, body",
        receipt,
    ).fetchone()
    return None if row is None else (row[0], row[1], _as_bytes(row[2]))


def _retry(conn: sqlite3.Connection, receipt: tuple[int, int], message: Message, now: float) -> None:
    with _write(conn):
        if _take_owned(conn, receipt) is None:
            return  # the lease expired and another worker owns the message now
        conn.execute(
            "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (message.id, message.queue, message.body, message.eta or now, now),
        )


def _dead_letter(conn: sqlite3.Connection, receipt: tuple[int, int], reason: str, now: float) -> None:
    with _write(conn):
        owned = _take_owned(conn, receipt)
        if owned is not None:
            conn.execute(
                "INSERT INTO hurtle_dead (id, queue, body, reason, failed_at) VALUES (?, ?, ?, ?, ?)",
                (*owned, reason, now),
            )


def _extend(conn: sqlite3.Connection, receipts: list[tuple[int, int]], until: float) -> None:
    with _write(conn):
        conn.executemany(
            "UPDATE hurtle_messages SET visible_at = ? WHERE seq = ? AND deliveries = ?",
            [(until, seq, n) for seq, n in receipts],
        )


def _release(conn: sqlite3.Connection, receipts: list[tuple[int, int]], now: float) -> None:
    with _write(conn):
        conn.executemany(
            "UPDATE hurtle_messages SET leased = 0, deliveries = deliveries - 1, visible_at = ?"
            " WHERE seq = ? AND deliveries = ?",
            [(now, seq, n) for seq, n in receipts],
        )


def _stats(conn: sqlite3.Connection, queues: tuple[str, ...] | None, now: float) -> list[QueueStats]:
    counts: dict[str, list[int]] = {}
    for queue, ready, delayed, in_flight in conn.execute(
        "SELECT queue, SUM(visible_at <= ?1), SUM(visible_at > ?1 AND leased = 0),"
        " SUM(visible_at > ?1 AND leased = 1) FROM hurtle_messages GROUP BY queue",
        (now,),
    ):
        counts[queue] = [ready, delayed, in_flight, 0]
    for queue, dead in conn.execute("SELECT queue, COUNT(*) FROM hurtle_dead GROUP BY queue"):
        counts.setdefault(queue, [0, 0, 0, 0])[3] = dead
    names = sorted(counts) if queues is None else list(queues)
    return [QueueStats(name, *counts.get(name, [0, 0, 0, 0])) for name in names]


def _purge(conn: sqlite3.Connection, queue: str, now: float) -> int:
    with _write(conn):
        cursor = conn.execute(
            "DELETE FROM hurtle_messages WHERE queue = ? AND NOT (leased = 1 AND visible_at > ?)",
            (queue, now),
        )
    return cursor.rowcount


def _dead_letters(conn: sqlite3.Connection, queue: str | None, limit: int) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT seq, queue, body, reason, failed_at FROM hurtle_dead"
        " WHERE ?1 IS NULL OR queue = ?1 ORDER BY seq DESC LIMIT ?2",
        (queue, limit),
    ).fetchall()
    return [DeadLetter(str(seq), q, _as_bytes(body), reason, at) for seq, q, body, reason, at in rows]


def _requeue_dead(conn: sqlite3.Connection, ids: list[str] | None, now: float) -> int:
    with _write(conn):
        if ids is None:
            rows = conn.execute("DELETE FROM hurtle_dead RETURNING id, queue, body").fetchall()
        else:
            rows = []
            for dead_id in ids:
                if not dead_id.isdigit():
                    continue
                rows += conn.execute(
                    "DELETE FROM hurtle_dead WHERE seq = ? RETURNING id, queue, body", (int(dead_id),)
                ).fetchall()
        conn.executemany(
            "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(msg_id, queue, body, now, now) for msg_id, queue, body in rows],
        )
    return len(rows)


def _purge_dead(conn: sqlite3.Connection, queue: str | None) -> int:
    with _write(conn):
        cursor = conn.execute("DELETE FROM hurtle_dead WHERE ?1 IS NULL OR queue = ?1", (queue,))
    return cursor.rowcount


def _store_results(
    conn: sqlite3.Connection, results: Sequence[tuple[str, bytes]], expires_at: float, sweep: float | None
) -> None:
    with _write(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO hurtle_results (id, body, expires_at) VALUES (?, ?, ?)",
            [(task_id, body, expires_at) for task_id, body in results],
        )
        if sweep is not None:
            conn.execute("DELETE FROM hurtle_results WHERE expires_at < ?", (sweep,))


def _get_result(conn: sqlite3.Connection, task_id: str, now: float) -> bytes | None:
    row = conn.execute(
        "SELECT body FROM hurtle_results WHERE id = ? AND expires_at > ?", (task_id, now)
    ).fetchone()
    return None if row is None else _as_bytes(row[0])


def _forget_results(conn: sqlite3.Connection, task_ids: list[str]) -> None:
    with _write(conn):
        conn.executemany("DELETE FROM hurtle_results WHERE id = ?", [(i,) for i in task_ids])
