"""The SQLite broker's schema and its SQL: one function per broker call, each run
on the broker's thread as ``fn(conn, *args)`` (``batch.py``).

Functions called with write=True run inside the batch's transaction, each in a
savepoint when the batch holds more than one: their statements commit together
or not at all. A move (retry, dead-letter, requeue) still adds the message to
its next home before it deletes it from the old one, as on every broker.

Rows may come from another program, whatever the schema says: SQLite keeps any
value in any column. So every body is read as bytes (``CAST(body AS BLOB)``: TEXT
that is not UTF-8 made the lease query fail, and every worker with it), text is
decoded leniently (``SQLiteBroker._open``), and a row whose ``visible_at`` is not
a number is dead-lettered by a lease of its queue (within a second): TEXT and BLOB compare
greater than any number, so such a row never came due, and a ``--burst`` worker
waited for it forever.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from hurtle.brokers.base import DeadLetter, Delivery, Location, Message, QueueStats

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
CREATE TABLE IF NOT EXISTS hurtle_tallies (
    key    TEXT    NOT NULL,
    field  TEXT    NOT NULL,
    value  INTEGER NOT NULL,
    PRIMARY KEY (key, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hurtle_tally_keys (
    key         TEXT PRIMARY KEY,
    expires_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hurtle_added (
    queue  TEXT    PRIMARY KEY,
    added  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hurtle_records (
    key         TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    expires_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hurtle_rates (
    key  TEXT PRIMARY KEY,
    tat  REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hurtle_permits (
    key         TEXT NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (key, holder)
) WITHOUT ROWID;
"""

# True for a row whose visible_at is a number past ?1 (leased, or delayed). Any TEXT
# or BLOB is >= '' and every number is < '': the index on (queue, visible_at) finds
# the unreadable ones with one seek.
_FUTURE = "(visible_at > ?1 AND visible_at < '')"
_UNREADABLE = "visible_at >= ''"
BURY_BATCH = 100  # rows with an unreadable visible_at dead-lettered per lease, at most
IDS_PER_QUERY = 500  # ids per IN (...) of the result waiters' lookup: SQLite allows 999 values at least

Buried = list[tuple[str, str]]  # (queue, reason) of each row a lease dead-lettered


def nothing(conn: sqlite3.Connection) -> None:
    """Opening the connection (and the schema) is all ``connect`` asks for."""


def enqueue(conn: sqlite3.Connection, messages: Sequence[Message], now: float) -> None:
    conn.executemany(
        "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(m.id, m.queue, m.body, m.eta if m.eta is not None else now, now) for m in messages],
    )
    _count_added(conn, Counter(m.queue for m in messages))


def _count_added(conn: sqlite3.Connection, counted: Mapping[str, int]) -> None:
    # What each queue ever took in (``added_counts``): one statement per queue of a
    # batch, where a trigger would run one per row.
    conn.executemany(
        "INSERT INTO hurtle_added (queue, added) VALUES (?, ?)"
        " ON CONFLICT (queue) DO UPDATE SET added = added + excluded.added",
        list(counted.items()),
    )


def added_counts(conn: sqlite3.Connection, queues: tuple[str, ...]) -> dict[str, int]:
    marks = ",".join("?" * len(queues))
    rows = conn.execute(f"SELECT queue, added FROM hurtle_added WHERE queue IN ({marks})", queues)
    counts = {queue: 0 for queue in queues}  # a queue never sent to took in nothing
    counts.update((str(queue), int(added)) for queue, added in rows)
    return counts


def probe(conn: sqlite3.Connection, queues: tuple[str, ...], now: float, bury: bool) -> bool:
    """True when a lease of ``queues`` has work: a ready row, or (``bury``) one to
    dead-letter."""
    marks = ",".join("?" * len(queues))
    ready = f"SELECT 1 FROM hurtle_messages WHERE queue IN ({marks}) AND visible_at <= ? LIMIT 1"
    unreadable = f"SELECT 1 FROM hurtle_messages WHERE queue IN ({marks}) AND {_UNREADABLE} LIMIT 1"
    return conn.execute(ready, (*queues, now)).fetchone() is not None or (
        bury and conn.execute(unreadable, queues).fetchone() is not None
    )


def lease(
    conn: sqlite3.Connection, queues: tuple[str, ...], max_count: int, visibility: float, bury: bool
) -> tuple[list[Delivery], Buried]:
    """Lease up to ``max_count`` ready rows, oldest first; with ``bury``, first
    dead-letter (up to ``BURY_BATCH``) rows whose visible_at cannot be read."""
    marks = ",".join("?" * len(queues))
    now = time.time()
    buried = _bury_unreadable(conn, queues, now) if bury else []
    rows = conn.execute(
        "UPDATE hurtle_messages SET leased = 1, deliveries = deliveries + 1, visible_at = ?"
        " WHERE seq IN (SELECT seq FROM hurtle_messages"
        f"  WHERE queue IN ({marks}) AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?)"
        " RETURNING seq, queue, CAST(body AS BLOB), deliveries",
        (now + visibility, *queues, now, max_count),
    ).fetchall()
    rows.sort()
    return [Delivery(queue, body, n, (seq, n)) for seq, queue, body, n in rows], buried


def lease_in_order(
    conn: sqlite3.Connection, queues: tuple[str, ...], max_count: int, visibility: float, bury: bool,
    *, quotas: tuple[int, ...],
) -> tuple[list[Delivery], Buried]:
    """``lease`` by the quotas rule of ``Broker.fetch``: up to its quota from each
    queue in turn, then the room left from each in turn; each queue's oldest first.
    One transaction, so no other worker's lease lands between the turns."""
    now = time.time()
    buried = _bury_unreadable(conn, queues, now) if bury else []
    taken: list[Delivery] = []
    taken_from = dict.fromkeys(queues, 0)
    for limits in (quotas, (max_count,) * len(queues)):
        for queue, limit in zip(queues, limits, strict=True):
            want = min(limit - taken_from[queue], max_count - len(taken))
            if want <= 0:
                continue
            rows = conn.execute(
                "UPDATE hurtle_messages SET leased = 1, deliveries = deliveries + 1, visible_at = ?"
                " WHERE seq IN (SELECT seq FROM hurtle_messages"
                "  WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?)"
                " RETURNING seq, CAST(body AS BLOB), deliveries",
                (now + visibility, queue, now, want),
            ).fetchall()
            rows.sort()
            taken += [Delivery(queue, body, n, (seq, n)) for seq, body, n in rows]
            taken_from[queue] += len(rows)
    return taken, buried


def _bury_unreadable(conn: sqlite3.Connection, queues: tuple[str, ...], now: float) -> Buried:
    """Dead-letter the rows of ``queues`` whose visible_at is not a number, with why."""
    marks = ",".join("?" * len(queues))
    rows = conn.execute(
        "SELECT seq, queue, 'visible_at is not a number (unix seconds): '"
        " || substr(quote(visible_at), 1, 80) FROM hurtle_messages"
        f" WHERE queue IN ({marks}) AND {_UNREADABLE} LIMIT {BURY_BATCH}",
        queues,
    ).fetchall()
    for seq, _, reason in rows:
        _move_to_dead(conn, "seq = ?", (seq,), reason, now)
    return [(queue, reason) for _, queue, reason in rows]


def _move_to_dead(
    conn: sqlite3.Connection, where: str, params: tuple[Any, ...], reason: str, now: float
) -> bool:
    """Copy the row ``where`` names to the dead letters, then delete it; False when
    no row matched. The row moves as stored, byte for byte."""
    added = conn.execute(
        "INSERT INTO hurtle_dead (id, queue, body, reason, failed_at)"
        f" SELECT id, queue, body, ?, ? FROM hurtle_messages WHERE {where}",
        (reason, now, *params),
    ).rowcount
    if added:
        conn.execute(f"DELETE FROM hurtle_messages WHERE {where}", params)
    return bool(added)


def ack(conn: sqlite3.Connection, receipts: list[tuple[int, int]]) -> None:
    conn.executemany("DELETE FROM hurtle_messages WHERE seq = ? AND deliveries = ?", receipts)


def retry(conn: sqlite3.Connection, receipt: tuple[int, int], message: Message, now: float) -> None:
    owned = "seq = ? AND deliveries = ?"
    if conn.execute(f"SELECT 1 FROM hurtle_messages WHERE {owned}", receipt).fetchone() is None:
        return  # the lease expired and another worker owns the message now
    conn.execute(
        "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (message.id, message.queue, message.body, message.eta or now, now),
    )
    _count_added(conn, {message.queue: 1})
    conn.execute(f"DELETE FROM hurtle_messages WHERE {owned}", receipt)


def dead_letter(conn: sqlite3.Connection, receipt: tuple[int, int], reason: str, now: float) -> None:
    _move_to_dead(conn, "seq = ? AND deliveries = ?", receipt, reason, now)


def extend(conn: sqlite3.Connection, receipts: list[tuple[int, int]], until: float) -> None:
    conn.executemany(
        "UPDATE hurtle_messages SET visible_at = ? WHERE seq = ? AND deliveries = ?",
        [(until, seq, n) for seq, n in receipts],
    )


def release(conn: sqlite3.Connection, receipts: list[tuple[int, int]], now: float) -> None:
    conn.executemany(
        "UPDATE hurtle_messages SET leased = 0, deliveries = deliveries - 1, visible_at = ?"
        " WHERE seq = ? AND deliveries = ?",
        [(now, seq, n) for seq, n in receipts],
    )


def stats(conn: sqlite3.Connection, queues: tuple[str, ...] | None, now: float) -> list[QueueStats]:
    """Ready counts rows due now and rows to dead-letter (the next lease takes both).

    The oldest ready row's age is ``now - visible_at``: a row's visible_at is when it
    was sent, its eta, when it was given back, or when its lease ran out (a lease
    sets it to the lease's end). Rows to dead-letter have no time and add no age."""
    counts: dict[str, list[int]] = {}
    ready_since: dict[str, float] = {}
    # The age rides on the counts' one pass over the table: no second query.
    for queue, *row, oldest in conn.execute(
        f"SELECT CAST(queue AS TEXT), SUM(NOT {_FUTURE}), SUM({_FUTURE} AND leased != 1),"
        f" SUM({_FUTURE} AND leased = 1), MIN(CASE WHEN visible_at <= ?1 THEN visible_at END)"
        " FROM hurtle_messages GROUP BY queue",
        (now,),
    ):
        _add(counts, queue, *row, 0)
        if oldest is not None:
            ready_since[queue] = min(ready_since.get(queue, now), oldest)
    for queue, dead in conn.execute("SELECT CAST(queue AS TEXT), COUNT(*) FROM hurtle_dead GROUP BY queue"):
        _add(counts, queue, 0, 0, 0, dead)
    names = sorted(counts) if queues is None else list(queues)
    return [_queue_stats(name, counts.get(name, [0, 0, 0, 0]), now - ready_since.get(name, now))
            for name in names]


def _queue_stats(name: str, counts: list[int], oldest_ready_age: float) -> QueueStats:
    ready, delayed, leased, dead = counts
    return QueueStats(name, ready, delayed, leased, dead, oldest_ready_age)


def _add(counts: dict[str, list[int]], queue: str, *values: int) -> None:
    # Two stored names that are not UTF-8 may read as one: their counts add up.
    row = counts.setdefault(queue, [0, 0, 0, 0])
    for i, value in enumerate(values):
        row[i] += value


def locate(
    conn: sqlite3.Connection, ids: list[str], queues: tuple[str, ...] | None, now: float
) -> dict[str, Location]:
    """Running: leased with the lease alive; queued: any other row (ready, delayed,
    or leased with its lease run out, up for delivery again)."""
    sql = (
        f"SELECT id, MAX(leased = 1 AND {_FUTURE}) FROM hurtle_messages"
        f" WHERE id IN ({','.join('?' * len(ids))})"
    )
    params: list[Any] = [now, *ids]
    if queues is not None:
        sql += f" AND queue IN ({','.join('?' * len(queues))})"
        params += queues
    rows = conn.execute(sql + " GROUP BY id", params).fetchall()
    return {task_id: "running" if running else "queued" for task_id, running in rows}


def purge(conn: sqlite3.Connection, queue: str, now: float) -> int:
    cursor = conn.execute(
        f"DELETE FROM hurtle_messages WHERE queue = ?2 AND NOT (leased = 1 AND {_FUTURE})",
        (now, queue),
    )
    return cursor.rowcount


def dead_letters(conn: sqlite3.Connection, queue: str | None, limit: int) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT seq, CAST(queue AS TEXT), CAST(body AS BLOB), CAST(reason AS TEXT),"
        " CASE WHEN typeof(failed_at) IN ('integer', 'real') THEN failed_at END,"
        " CAST(id AS TEXT) FROM hurtle_dead"
        " WHERE ?1 IS NULL OR queue = ?1 ORDER BY seq DESC LIMIT ?2",
        (queue, limit),
    ).fetchall()
    # A failed_at that is no number (another program's) is NaN, as on Redis: no time made up.
    return [
        DeadLetter(str(seq), q, body, reason, math.nan if at is None else float(at), msg_id)
        for seq, q, body, reason, at, msg_id in rows
    ]


def dead_named(conn: sqlite3.Connection, ids: list[str] | None) -> dict[int, str]:
    """The dead letters ``ids`` name by seq or else by message id (all when None):
    each one's message id, by seq."""
    select = "SELECT seq, CAST(id AS TEXT) FROM hurtle_dead"
    found: dict[int, str] = {}
    if ids is None:
        found.update(conn.execute(select + " ORDER BY seq").fetchall())
    for named in ids or ():
        rows = []
        if named.isascii() and named.isdigit() and len(named) < 19:  # a seq fits in 63 bits
            rows = conn.execute(select + " WHERE seq = ?", (int(named),)).fetchall()
        found.update(rows or conn.execute(select + " WHERE id = ?", (named,)).fetchall())
    return found


def last_dead_seq(conn: sqlite3.Connection) -> int:
    """The seq of the newest dead letter; 0 when there is none."""
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM hurtle_dead").fetchone()[0])


def dead_between(conn: sqlite3.Connection, after: int, through: int, limit: int) -> dict[int, str]:
    """The first ``limit`` dead letters with a seq past ``after`` and at most ``through``:
    each one's message id, by seq."""
    rows = conn.execute(
        "SELECT seq, CAST(id AS TEXT) FROM hurtle_dead WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (after, through, limit),
    )
    return dict(rows.fetchall())


def requeue_dead(conn: sqlite3.Connection, ids: list[str] | None, now: float) -> list[tuple[str, str]]:
    """Move dead letters back: all, or those ``ids`` name (``dead_named``).
    Returns each one's (dead letter id, message id)."""
    found = dead_named(conn, ids)
    conn.executemany(
        "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
        " SELECT id, queue, body, ?, ? FROM hurtle_dead WHERE seq = ?",
        [(now, now, seq) for seq in found],
    )
    counted: dict[str, int] = {}
    for seq in found:
        for (queue,) in conn.execute("SELECT queue FROM hurtle_dead WHERE seq = ?", (seq,)):
            counted[str(queue)] = counted.get(str(queue), 0) + 1
    _count_added(conn, counted)
    conn.executemany("DELETE FROM hurtle_dead WHERE seq = ?", [(seq,) for seq in found])
    return [(str(seq), msg_id) for seq, msg_id in found.items()]


def purge_dead(conn: sqlite3.Connection, queue: str | None) -> int:
    cursor = conn.execute("DELETE FROM hurtle_dead WHERE ?1 IS NULL OR queue = ?1", (queue,))
    return cursor.rowcount


def store_results(
    conn: sqlite3.Connection, results: Sequence[tuple[str, bytes]], expires_at: float, sweep: float | None
) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO hurtle_results (id, body, expires_at) VALUES (?, ?, ?)",
        [(task_id, body, expires_at) for task_id, body in results],
    )
    if sweep is not None:
        conn.execute("DELETE FROM hurtle_results WHERE expires_at < ?", (sweep,))


def get_result(conn: sqlite3.Connection, task_id: str, now: float) -> bytes | None:
    row = conn.execute(
        "SELECT CAST(body AS BLOB) FROM hurtle_results WHERE id = ? AND expires_at > ?", (task_id, now)
    ).fetchone()
    return None if row is None else bytes(row[0])


def get_results(conn: sqlite3.Connection, task_ids: list[str], now: float) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for start in range(0, len(task_ids), IDS_PER_QUERY):
        chunk = task_ids[start : start + IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT id, CAST(body AS BLOB) FROM hurtle_results WHERE id IN ({marks}) AND expires_at > ?",
            (*chunk, now),
        )
        found.update((task_id, bytes(body)) for task_id, body in rows)
    return found


def forget_results(conn: sqlite3.Connection, task_ids: list[str]) -> None:
    conn.executemany("DELETE FROM hurtle_results WHERE id = ?", [(i,) for i in task_ids])
