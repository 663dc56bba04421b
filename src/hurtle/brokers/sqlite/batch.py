"""The SQLite broker's thread: the calls of one event-loop tick, one transaction.

sqlite3 blocks, so SQL runs on one thread per broker object. Calls are not
handed over one by one: ``call`` queues them, and at the end of the loop tick
the whole list goes to the thread (with whatever else queued while it was
busy), which runs them in order inside one ``BEGIN IMMEDIATE`` ... ``COMMIT``.
A worker acknowledges the tasks that just finished and leases the next ones
in the same tick, so both share one commit, which costs much less than two.

Reads that come before any write run outside the transaction, so idle polling
never takes the write lock. Each write runs in its own SAVEPOINT when a batch
holds more than one: a write that fails is rolled back alone and only its
caller gets the error. Every future is resolved after the COMMIT, so an ack
has returned only once it is durable.

While another process holds the write lock the batch is rolled back and run
again after a pause of 50 us, doubling to 2 ms, for up to 30 s: SQLite's own
busy handler sleeps 1, 2, 5, 10 ms..., far longer than a write here holds the
lock.

WAL checkpoints (copying the log back into the database, with an fsync) run on
a second thread with its own connection, every ``CHECKPOINT_EVERY`` committed
batches: SQLite's automatic checkpoint runs inside the commit that crosses
1,000 pages and stalls that worker. The writer keeps an automatic checkpoint at
``BACKSTOP_PAGES`` in case the background one falls behind. Under a steady load
from several processes the WAL grows past 1,000 pages either way (a PASSIVE
checkpoint cannot finish while others append, and it grows larger with these
checkpoints than with SQLite's own); it is cut back to ``WAL_KEEP_BYTES`` once
it restarts, and deleted when the last connection closes.
"""

# Measured:
# - one transaction per tick, 8-message batches: 280 us per ack+lease cycle, 447 us in two;
# - a write holds the lock for about 0.1 ms; a 0.2 ms hold cost a waiter on SQLite's
#   own busy handler 1.2 ms;
# - SQLite's automatic checkpoint stalled the committing worker for ~20 ms, ~100 us per
#   commit on average (4-message ack+lease batches);
# - 20,000 no-op tasks with 2 workers: a WAL of 18-37 MB with SQLite's own checkpoints,
#   41-70 MB with the background ones.

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hurtle.errors import BrokerDataError, BrokerError, HurtleError

T = TypeVar("T")

BUSY_TIMEOUT = 30.0  # seconds a batch waits for another process's write lock
CHECKPOINT_EVERY = 200  # committed write batches between background checkpoints
BACKSTOP_PAGES = 10_000  # the writer checkpoints itself past this many WAL pages
WAL_KEEP_BYTES = 16 * 1024 * 1024  # a WAL file that grew under load is cut back to this
_PAUSE_MIN = 0.00005  # seconds: first pause when the database is locked
_PAUSE_MAX = 0.002  # seconds: longest pause between tries
_SQLITE_BUSY = 5  # result code; extended codes (BUSY_RECOVERY, ...) share the low byte
# Result codes that say the database cannot be used now, whatever the data: PERM,
# BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, CORRUPT, FULL, CANTOPEN,
# PROTOCOL, AUTH, NOTADB. Any other (a constraint, a type mismatch, a value that
# cannot be read) is about the data, and no outage.
_UNAVAILABLE = frozenset({3, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 23, 26})


def is_busy(exc: sqlite3.Error) -> bool:
    """True when ``exc`` says another connection holds a lock: worth a retry."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return bool(code & 0xFF == _SQLITE_BUSY)
    return isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc)


def is_unavailable(exc: sqlite3.Error) -> bool:
    """True when ``exc`` says the database cannot be used (an outage), not that the
    data or a statement was wrong."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11; None for the module's own
    if code is not None:
        return code & 0xFF in _UNAVAILABLE
    # sqlite3's own "Could not decode to UTF-8" is an OperationalError too
    return isinstance(exc, sqlite3.OperationalError) and "decode" not in str(exc)


@dataclass(slots=True)
class Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    write: bool
    future: asyncio.Future[Any]


Outcome = tuple[bool, Any]  # (True, value) or (False, exception)
_Job = tuple[asyncio.AbstractEventLoop, list[Call]]


class SQLThread:
    """Runs ``fn(conn, *args)`` calls on one thread, a loop tick's worth per transaction."""

    def __init__(self, open_connection: Callable[[], sqlite3.Connection], where: str) -> None:
        self._open = open_connection
        self._where = where  # names the database in error messages
        self._conn: sqlite3.Connection | None = None
        self._pending: list[Call] = []
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._checkpointer = Checkpointer(open_connection)
        self._commits = 0

    async def call(self, fn: Callable[..., T], *args: Any, write: bool) -> T:
        """Run ``fn(conn, *args)`` on the thread; ``write`` ones in the tick's transaction."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._submit, loop)
        self._pending.append(Call(fn, args, write, future))
        return await future

    def _submit(self, loop: asyncio.AbstractEventLoop) -> None:
        calls, self._pending = self._pending, []
        if not calls:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="hurtle-sqlite", daemon=True)
            self._thread.start()
        self._jobs.put((loop, calls))

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run what is queued, close the connection, stop the thread. Idempotent."""
        self._submit(loop)
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()
        self._checkpointer.close()

    # -- on the thread -------------------------------------------------------

    def _serve(self) -> None:
        running = True
        while running:
            jobs = [self._jobs.get()]
            with contextlib.suppress(queue.Empty):
                while True:  # what queued while the last batch ran joins this one
                    jobs.append(self._jobs.get_nowait())
            if None in jobs:
                running = False
            for loop, calls in _by_loop(jobs):
                outcomes = self._execute(calls)
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    loop.call_soon_threadsafe(_resolve, calls, outcomes)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _execute(self, calls: list[Call]) -> list[Outcome]:
        deadline = 0.0
        pause = _PAUSE_MIN
        while True:
            try:
                return self._attempt(calls)
            except HurtleError as exc:  # the database could not be opened
                return [(False, type(exc)(*exc.args)) for _ in calls]
            except sqlite3.Error as exc:
                self._rollback()
                now = time.monotonic()
                if not deadline:
                    deadline = now + BUSY_TIMEOUT
                if not is_busy(exc) or now >= deadline:
                    return [(False, self._error(exc)) for _ in calls]
            time.sleep(pause)
            pause = min(pause * 2, _PAUSE_MAX)

    def _attempt(self, calls: list[Call]) -> list[Outcome]:
        if self._conn is None:
            self._conn = self._open()
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            self._conn.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
        conn = self._conn
        savepoints = sum(call.write for call in calls) > 1
        outcomes: list[Outcome] = []
        for call in calls:
            if call.write:
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                if savepoints:
                    conn.execute("SAVEPOINT hurtle_call")
            try:
                value = call.fn(conn, *call.args)
            except Exception as exc:
                if isinstance(exc, sqlite3.Error) and is_busy(exc):
                    raise  # the whole batch is run again
                if call.write:
                    self._undo(conn, savepoints)
                error = self._error(exc) if isinstance(exc, sqlite3.Error) else exc
                outcomes.append((False, error))
                continue
            if call.write and savepoints:
                conn.execute("RELEASE hurtle_call")
            outcomes.append((True, value))
        if conn.in_transaction:
            conn.execute("COMMIT")
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0:
                self._checkpointer.nudge()
        return outcomes

    @staticmethod
    def _undo(conn: sqlite3.Connection, savepoint: bool) -> None:
        """Roll back the failed call's writes: its savepoint, or the transaction
        when it was the batch's only write."""
        if savepoint:
            conn.execute("ROLLBACK TO hurtle_call")
            conn.execute("RELEASE hurtle_call")
        elif conn.in_transaction:
            conn.execute("ROLLBACK")

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                # A connection that cannot roll back is not trusted again.
                conn, self._conn = self._conn, None
                conn.close()

    def _error(self, exc: sqlite3.Error) -> BrokerError:
        kind = BrokerError if is_unavailable(exc) else BrokerDataError
        error = kind(f"SQLite {self._where}: {exc}")
        error.__cause__ = exc
        return error


class Checkpointer:
    """A thread with its own connection that checkpoints the WAL when nudged.

    PASSIVE: it never waits for readers or writers; when another process is
    checkpointing at the same moment this one is skipped, and the next nudge
    tries again.
    """

    def __init__(self, open_connection: Callable[[], sqlite3.Connection]) -> None:
        self._open = open_connection
        self._wanted = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._serve, name="hurtle-sqlite-wal", daemon=True)
            self._thread.start()
        self._wanted.set()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wanted.set()
            thread.join()

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                break
            try:
                conn = conn or self._open()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except (sqlite3.Error, HurtleError):
                pass  # busy, or the database went away: the next nudge tries again
        if conn is not None:
            conn.close()


def _by_loop(jobs: list[_Job | None]) -> list[_Job]:
    """Consecutive jobs of the same loop, merged in order (one broker, one loop:
    there is normally just one)."""
    merged: list[_Job] = []
    for job in jobs:
        if job is None:
            continue
        if merged and merged[-1][0] is job[0]:
            merged[-1][1].extend(job[1])
        else:
            merged.append((job[0], list(job[1])))
    return merged


def _resolve(calls: list[Call], outcomes: list[Outcome]) -> None:
    for call, (ok, value) in zip(calls, outcomes, strict=True):
        if call.future.done():  # the caller was cancelled
            continue
        if ok:
            call.future.set_result(value)
        else:
            call.future.set_exception(value)
