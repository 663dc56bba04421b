"""Embedded broker and result store: ``sqlite:///relative.db`` or ``sqlite:////abs.db``.

Zero setup, safe for many processes on one host: WAL mode lets readers run
beside the one writer, ``BEGIN IMMEDIATE`` takes the write lock up front so two
writers never deadlock on an upgrade, and a writer that finds the lock taken
waits its turn (``sqlite_batch.py``). A lease is a row whose ``visible_at`` lies in the future; the
heartbeat pushes it on, and a dead worker's rows simply become visible again.

``deliveries`` is the fencing token of a lease: ack, retry and extend match on
(seq, deliveries), so a worker whose lease expired and was taken by another
cannot delete the other's delivery. ``seq`` is AUTOINCREMENT so a deleted row's
number is never reused by a new message.

All SQLite calls run on one thread per broker object (sqlite3 blocks, and the
event loop must not), and the calls of one loop tick share one transaction:
see ``sqlite_batch.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from hurtle.brokers.base import (
    Broker,
    DeadLetter,
    Delivery,
    Location,
    Message,
    QueueStats,
    Requeued,
)
from hurtle.brokers.sqlite_batch import SQLThread
from hurtle.brokers.url_options import query_options, refuse_unknown
from hurtle.errors import ConfigurationError
from hurtle.results import ResultStore
from hurtle.urls import SecretURL

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
# Task ids per locate query: SQLite allows 999 bound values at least.
_LOCATE_BATCH = 500
_IDS_PER_QUERY = 500  # ids per IN (...) of the result waiters' lookup, for the same reason


def path_from_url(url: str | SecretURL) -> str:
    """``sqlite:///a.db`` is ``a.db`` (relative); ``sqlite:////tmp/a.db`` is absolute.
    A ``?`` begins the query (the broker takes no options), not a file name."""
    prefix = "sqlite://"
    url = SecretURL(url)
    head = url.reveal().partition("?")[0]
    if not head.startswith(prefix) or len(head) <= len(prefix) + 1 or head[len(prefix)] != "/":
        raise ConfigurationError(
            f"bad SQLite URL {str(url)!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    return head[len(prefix) + 1 :]


class SQLiteBroker(Broker, ResultStore):
    schemes = ("sqlite",)
    locates_messages = True

    def __init__(
        self, url: str | SecretURL = "sqlite:///hurtle.db", *, visibility_timeout: float = 30.0
    ) -> None:
        super().__init__(url, visibility_timeout=visibility_timeout)
        options = query_options(urlsplit(self.url.reveal()))
        refuse_unknown("SQLite", (k for k, _ in options), {"hurtle": self.url_options})
        self.path = path_from_url(self.url)
        self._sql = SQLThread(self._open, self.path)
        self._next_sweep = 0.0
        # The last lease found messages: lease again at once, without a probe first.
        self._busy = False

    # -- plumbing -------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise ConfigurationError(f"SQLite broker: directory {str(parent)!r} does not exist")
        # busy_timeout 0: a locked database raises at once and SQLThread waits
        # in finer steps than SQLite's own busy handler.
        conn = sqlite3.connect(
            self.path, timeout=0.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives a process crash; only power loss
            # can roll back the last transactions, the trade SQLite itself recommends.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._sql.call(fn, *args, write=True)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._sql.call(fn, *args, write=False)

    async def connect(self) -> None:
        await self._read(_nothing)

    async def close(self) -> None:
        await self.close_waiters()
        self._sql.close(asyncio.get_running_loop())

    # -- messages --------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._write(_enqueue, messages, time.time())

    async def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        if max_count <= 0:
            return []
        names = tuple(queues)
        deadline = time.monotonic() + timeout
        interval = _POLL_MIN
        while True:
            # A read first when idle: polling must not take the write lock every time.
            if self._busy or await self._read(_probe, names, time.time()):
                taken = await self._write(_lease, names, max_count, self.visibility_timeout)
                self._busy = bool(taken)
                if taken:
                    return taken
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 2, _POLL_MAX)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._write(_ack, [d.receipt for d in deliveries])

    async def retry(self, delivery: Delivery, message: Message) -> None:
        await self._write(_retry, delivery.receipt, message, time.time())

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self._write(_dead_letter, delivery.receipt, reason, time.time())

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            until = time.time() + self.visibility_timeout
            await self._write(_extend, [d.receipt for d in deliveries], until)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._write(_release, [d.receipt for d in deliveries], time.time())

    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        return await self._read(_stats, None if queues is None else tuple(queues), time.time())

    async def purge(self, queue: str) -> int:
        return await self._write(_purge, queue, time.time())

    async def locate(
        self, task_ids: Sequence[str], queues: Sequence[str] | None = None
    ) -> dict[str, Location]:
        """One read of ``hurtle_messages`` per 500 ids: a scan of the table (only waiting
        and leased rows stay in it: about 30 ms per 100,000). Not an index on ``id``:
        it slowed every send and ack (``hurtle bench noop -n 20000 -p 2``, async, one
        run each: enqueue 139,000 -> 109,000/s, processing 78,000 -> 35,000/s)."""
        ids = list(dict.fromkeys(task_ids))
        names = None if queues is None else tuple(queues)
        found: dict[str, Location] = {}
        for first in range(0, len(ids), _LOCATE_BATCH):
            chunk = ids[first : first + _LOCATE_BATCH]
            found.update(await self._read(_locate, chunk, names, time.time()))
        return found

    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return await self._read(_dead_letters, queue, limit)

    async def requeue_dead(self, ids: Sequence[str] | None = None) -> int:
        if ids is not None:
            return (await self.requeue_dead_by_id(ids)).count
        return len(await self._write(_requeue_dead, None, time.time()))

    async def requeue_dead_by_id(self, ids: Sequence[str]) -> Requeued:
        moved = await self._write(_requeue_dead, list(ids), time.time())
        return Requeued.of(ids, moved)

    async def purge_dead(self, queue: str | None = None) -> int:
        return await self._write(_purge_dead, queue)

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
        await self._write(_store_results, results, now + ttl, now if sweep else None)

    async def get(self, task_id: str) -> bytes | None:
        return await self._read(_get_result, task_id, time.time())

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """One read for every id: the waiters' poller asks for all of them at once."""
        return await self._read(_get_results, list(task_ids), time.time())

    async def forget(self, task_ids: Sequence[str]) -> None:
        await self._write(_forget_results, list(task_ids))


# -- the SQL, run on the broker's thread ------------------------------------
#
# Functions called with write=True run inside the batch's transaction (see
# sqlite_batch.py), each in a savepoint when the batch holds more than one:
# their statements commit together or not at all.


def _nothing(conn: sqlite3.Connection) -> None:
    """Opening the connection (and the schema) is all ``connect`` asks for."""


def _as_bytes(body: bytes | str) -> bytes:
    # A foreign producer may insert the JSON as TEXT; hand the worker bytes.
    return body.encode() if isinstance(body, str) else body


def _enqueue(conn: sqlite3.Connection, messages: Sequence[Message], now: float) -> None:
    conn.executemany(
        "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(m.id, m.queue, m.body, m.eta if m.eta is not None else now, now) for m in messages],
    )


def _probe(conn: sqlite3.Connection, queues: tuple[str, ...], now: float) -> bool:
    marks = ",".join("?" * len(queues))
    return (
        conn.execute(
            f"SELECT 1 FROM hurtle_messages WHERE queue IN ({marks}) AND visible_at <= ? LIMIT 1",
            (*queues, now),
        ).fetchone()
        is not None
    )


def _lease(
    conn: sqlite3.Connection, queues: tuple[str, ...], max_count: int, visibility: float
) -> list[Delivery]:
    marks = ",".join("?" * len(queues))
    now = time.time()
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
    conn.executemany("DELETE FROM hurtle_messages WHERE seq = ? AND deliveries = ?", receipts)


def _take_owned(conn: sqlite3.Connection, receipt: tuple[int, int]) -> tuple[str, str, bytes] | None:
    """Delete the leased row if this lease still owns it; return (id, queue, body)."""
    row = conn.execute(
        "DELETE FROM hurtle_messages WHERE seq = ? AND deliveries = ? RETURNING id, queue, body",
        receipt,
    ).fetchone()
    return None if row is None else (row[0], row[1], _as_bytes(row[2]))


def _retry(conn: sqlite3.Connection, receipt: tuple[int, int], message: Message, now: float) -> None:
    if _take_owned(conn, receipt) is None:
        return  # the lease expired and another worker owns the message now
    conn.execute(
        "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (message.id, message.queue, message.body, message.eta or now, now),
    )


def _dead_letter(conn: sqlite3.Connection, receipt: tuple[int, int], reason: str, now: float) -> None:
    owned = _take_owned(conn, receipt)
    if owned is not None:
        conn.execute(
            "INSERT INTO hurtle_dead (id, queue, body, reason, failed_at) VALUES (?, ?, ?, ?, ?)",
            (*owned, reason, now),
        )


def _extend(conn: sqlite3.Connection, receipts: list[tuple[int, int]], until: float) -> None:
    conn.executemany(
        "UPDATE hurtle_messages SET visible_at = ? WHERE seq = ? AND deliveries = ?",
        [(until, seq, n) for seq, n in receipts],
    )


def _release(conn: sqlite3.Connection, receipts: list[tuple[int, int]], now: float) -> None:
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


def _locate(
    conn: sqlite3.Connection, ids: list[str], queues: tuple[str, ...] | None, now: float
) -> dict[str, Location]:
    """Running: leased with the lease alive; queued: any other row (ready, delayed,
    or leased with its lease run out, up for delivery again)."""
    sql = (
        "SELECT id, MAX(leased = 1 AND visible_at > ?) FROM hurtle_messages"
        f" WHERE id IN ({','.join('?' * len(ids))})"
    )
    params: list[Any] = [now, *ids]
    if queues is not None:
        sql += f" AND queue IN ({','.join('?' * len(queues))})"
        params += queues
    rows = conn.execute(sql + " GROUP BY id", params).fetchall()
    return {task_id: "running" if running else "queued" for task_id, running in rows}


def _purge(conn: sqlite3.Connection, queue: str, now: float) -> int:
    cursor = conn.execute(
        "DELETE FROM hurtle_messages WHERE queue = ? AND NOT (leased = 1 AND visible_at > ?)",
        (queue, now),
    )
    return cursor.rowcount


def _dead_letters(conn: sqlite3.Connection, queue: str | None, limit: int) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT seq, queue, body, reason, failed_at, id FROM hurtle_dead"
        " WHERE ?1 IS NULL OR queue = ?1 ORDER BY seq DESC LIMIT ?2",
        (queue, limit),
    ).fetchall()
    return [
        DeadLetter(str(seq), q, _as_bytes(body), reason, at, msg_id)
        for seq, q, body, reason, at, msg_id in rows
    ]


def _requeue_dead(conn: sqlite3.Connection, ids: list[str] | None, now: float) -> list[tuple[str, str]]:
    """Move dead letters back: all, or those ``ids`` name by seq or else by message id.
    Returns each one's (dead letter id, message id)."""
    returning = " RETURNING seq, id, queue, body"
    if ids is None:
        rows = conn.execute("DELETE FROM hurtle_dead" + returning).fetchall()
    else:
        rows = []
        for named in ids:
            if named.isdigit():
                found = conn.execute("DELETE FROM hurtle_dead WHERE seq = ?" + returning, (int(named),))
                if rows_of := found.fetchall():
                    rows += rows_of
                    continue
            rows += conn.execute("DELETE FROM hurtle_dead WHERE id = ?" + returning, (named,)).fetchall()
    conn.executemany(
        "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(msg_id, queue, body, now, now) for _, msg_id, queue, body in rows],
    )
    return [(str(seq), msg_id) for seq, msg_id, _, _ in rows]


def _purge_dead(conn: sqlite3.Connection, queue: str | None) -> int:
    cursor = conn.execute("DELETE FROM hurtle_dead WHERE ?1 IS NULL OR queue = ?1", (queue,))
    return cursor.rowcount


def _store_results(
    conn: sqlite3.Connection, results: Sequence[tuple[str, bytes]], expires_at: float, sweep: float | None
) -> None:
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


def _get_results(conn: sqlite3.Connection, task_ids: list[str], now: float) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for start in range(0, len(task_ids), _IDS_PER_QUERY):
        chunk = task_ids[start : start + _IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT id, body FROM hurtle_results WHERE id IN ({marks}) AND expires_at > ?",
            (*chunk, now),
        )
        found.update((task_id, _as_bytes(body)) for task_id, body in rows)
    return found


def _forget_results(conn: sqlite3.Connection, task_ids: list[str]) -> None:
    conn.executemany("DELETE FROM hurtle_results WHERE id = ?", [(i,) for i in task_ids])
