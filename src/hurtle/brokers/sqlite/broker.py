"""Embedded broker and result store: ``sqlite:///relative.db`` or ``sqlite:////abs.db``.

Zero setup, safe for many processes on one host: WAL mode lets readers run
beside the one writer, ``BEGIN IMMEDIATE`` takes the write lock up front so two
writers never deadlock on an upgrade, and a writer that finds the lock taken
waits its turn (``batch.py``). A lease is a row whose ``visible_at`` lies in the future; the
heartbeat pushes it on, and a dead worker's rows simply become visible again.

``deliveries`` is the fencing token of a lease: ack, retry and extend match on
(seq, deliveries), so a worker whose lease expired and was taken by another
cannot delete the other's delivery. ``seq`` is AUTOINCREMENT so a deleted row's
number is never reused by a new message.

All SQLite calls run on one thread per broker object (sqlite3 blocks, and the
event loop must not), and the calls of one loop tick share one transaction:
see ``batch.py``. The schema and the SQL are in ``sql.py``.

The database file is created readable and writable by its owner only (0600,
whatever the umask): it holds every task's arguments and results. SQLite gives
the ``-wal`` and ``-shm`` files it makes the database file's mode. ``?mode=0640``
asks for other permissions; a file that exists already keeps its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from hurtle.brokers.base import (
    BeforeMove,
    Broker,
    DeadLetter,
    Delivery,
    Location,
    Message,
    QueueStats,
    Requeued,
    each_once,
)
from hurtle.brokers.sqlite import sql
from hurtle.brokers.sqlite.batch import SQLThread
from hurtle.brokers.sqlite.limits import SQLiteLimits
from hurtle.brokers.sqlite.record_store import SQLiteRecords
from hurtle.brokers.sqlite.tallies import SQLiteTallies
from hurtle.brokers.url_options import query_options, refuse_unknown
from hurtle.errors import ConfigurationError
from hurtle.limit_store import LimitStore
from hurtle.records import RecordStore
from hurtle.results import ResultStore
from hurtle.tallies import TallyStore
from hurtle.urls import SecretURL

T = TypeVar("T")

log = logging.getLogger("hurtle.sqlite")

_POLL_MIN = 0.001  # seconds between polls right after activity
_POLL_MAX = 0.02  # idle polling cap: a new message waits at most this long
_SWEEP_EVERY = 60.0  # seconds between deletions of expired results
# Task ids per locate query: SQLite allows 999 bound values at least.
_LOCATE_BATCH = 500
_REQUEUE_BATCH = 1000  # dead letters told to ``before_move`` and moved at a time
# Seconds between looks for rows whose visible_at is not a number: 5 us a look
# would be 2-4% of a lease and ack, at every lease.
_BURY_EVERY = 1.0
DEFAULT_MODE = 0o600  # a new database file: its owner reads and writes it, nobody else


def path_from_url(url: str | SecretURL) -> str:
    """``sqlite:///a.db`` is ``a.db`` (relative); ``sqlite:////tmp/a.db`` is absolute.
    A ``?`` begins the query (``mode``), not a file name."""
    prefix = "sqlite://"
    url = SecretURL(url)
    head = url.reveal().partition("?")[0]
    if not head.startswith(prefix) or len(head) <= len(prefix) + 1 or head[len(prefix)] != "/":
        raise ConfigurationError(
            f"bad SQLite URL {str(url)!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    return head[len(prefix) + 1 :]


def mode_from_url(url: str) -> int:
    """The permissions a new database file gets: ``?mode=0640``, else ``DEFAULT_MODE``."""
    text = dict(query_options(urlsplit(url))).get("mode")
    if text is None:
        return DEFAULT_MODE
    if not re.fullmatch(r"0?[0-7]{3}", text) or int(text, 8) & 0o600 != 0o600:
        raise ConfigurationError(
            f"bad SQLite URL option mode={text!r}: file permissions in octal that let the"
            " owner read and write, like 0600 or 0640"
        )
    return int(text, 8)


def create_private(path: str, mode: int) -> None:
    """Create the database file with ``mode`` (whatever the umask) unless it exists.
    SQLite gives the ``-wal`` and ``-shm`` files it makes the database file's mode."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigurationError(f"SQLite broker: cannot create {path!r}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # the umask took bits off the mode os.open was given
    finally:
        os.close(fd)


def _text(raw: bytes) -> str:
    """TEXT as ``str``: a foreign writer's bytes that are not UTF-8 must not make a
    query fail (a queue name that could not be read stopped every worker's stats)."""
    return raw.decode("utf-8", "replace")


class SQLiteBroker(Broker):
    schemes = ("sqlite",)
    locates_messages = True
    counts_added = True  # hurtle_added: a count per queue, kept by each write that adds a message
    url_options = ("mode",)

    def __init__(
        self, url: str | SecretURL = "sqlite:///hurtle.db", *, visibility_timeout: float = 30.0
    ) -> None:
        super().__init__(url, visibility_timeout=visibility_timeout)
        options = query_options(urlsplit(self.url.reveal()))
        refuse_unknown("SQLite", (k for k, _ in options), {"hurtle": self.url_options})
        self.path = path_from_url(self.url)
        self.mode = mode_from_url(self.url.reveal())
        self._sql = SQLThread(self._open, self.path)
        self._results = SQLiteResults(self._sql)
        self._tallies = SQLiteTallies(self._sql)
        self._records = SQLiteRecords(self._sql)
        self._limits = SQLiteLimits(self._sql)
        # The last lease found messages: lease again at once, without a probe first.
        self._busy = False
        self._bury_at = 0.0  # monotonic: when a fetch next looks for rows to dead-letter

    # -- plumbing -------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise ConfigurationError(f"SQLite broker: directory {str(parent)!r} does not exist")
        create_private(self.path, self.mode)
        # busy_timeout 0: a locked database raises at once and SQLThread waits
        # in finer steps than SQLite's own busy handler.
        conn = sqlite3.connect(
            self.path, timeout=0.0, isolation_level=None, check_same_thread=False
        )
        conn.text_factory = _text
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives a process crash; only power loss
            # can roll back the last transactions, the trade SQLite itself recommends.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in sql.SCHEMA.split(";"):
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
        await self._read(sql.nothing)

    async def close(self) -> None:
        # Its waiters, and the SQLite thread it shares with the broker and the tallies.
        await self._results.close()

    # -- messages --------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._write(sql.enqueue, messages, time.time())

    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout: float, *, quotas: Sequence[int] | None = None
    ) -> list[Delivery]:
        if max_count <= 0:
            return []
        names = tuple(queues)
        # The quotas' lease is one query per queue and turn: the default path keeps its one query.
        lease: Callable[..., tuple[list[Delivery], sql.Buried]] = sql.lease
        if quotas is not None:
            first = each_once(queues, quotas)
            names = tuple(first)
            lease = functools.partial(sql.lease_in_order, quotas=tuple(first.values()))
        deadline = time.monotonic() + timeout
        interval = _POLL_MIN
        while True:
            bury = time.monotonic() >= self._bury_at
            # A read first when idle: polling must not take the write lock every time.
            if self._busy or await self._read(sql.probe, names, time.time(), bury):
                taken, buried = await self._write(lease, names, max_count, self.visibility_timeout, bury)
                for queue, reason in buried:
                    log.error("dead-lettered a message from queue %r: %s", queue, reason)
                if bury:  # a full batch: there may be more to dead-letter at once
                    self._bury_at = 0.0 if len(buried) == sql.BURY_BATCH else time.monotonic() + _BURY_EVERY
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
            await self._write(sql.ack, [d.receipt for d in deliveries])

    async def retry(self, delivery: Delivery, message: Message) -> None:
        await self._write(sql.retry, delivery.receipt, message, time.time())

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self._write(sql.dead_letter, delivery.receipt, reason, time.time())

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            until = time.time() + self.visibility_timeout
            await self._write(sql.extend, [d.receipt for d in deliveries], until)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._write(sql.release, [d.receipt for d in deliveries], time.time())

    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        return await self._read(sql.stats, None if queues is None else tuple(queues), time.time())

    async def added_counts(self, queues: Sequence[str]) -> dict[str, int]:
        """``hurtle_added``: sends, retries and requeued dead letters, counted as each is
        written (a delayed message when it is sent, not when it comes due)."""
        if not queues:
            return {}
        return await self._read(sql.added_counts, tuple(queues))

    async def purge(self, queue: str) -> int:
        return await self._write(sql.purge, queue, time.time())

    async def locate(
        self, task_ids: Sequence[str], queues: Sequence[str] | None = None
    ) -> dict[str, Location]:
        """One read of ``hurtle_messages`` per 500 ids: a scan of the table (only waiting
        and leased rows stay in it). Not an index on ``id``: it slowed every send and ack."""
        # Measured: the scan takes about 30 ms per 100,000 rows. With an index on ``id``,
        # ``hurtle bench noop -n 20000 -p 2`` (async, one run each) went from 139,000 to
        # 109,000 sends/s and from 78,000 to 35,000 tasks processed/s.
        ids = list(dict.fromkeys(task_ids))
        names = None if queues is None else tuple(queues)
        found: dict[str, Location] = {}
        for first in range(0, len(ids), _LOCATE_BATCH):
            chunk = ids[first : first + _LOCATE_BATCH]
            found.update(await self._read(sql.locate, chunk, names, time.time()))
        return found

    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return await self._read(sql.dead_letters, queue, limit)

    async def requeue_dead(
        self, ids: Sequence[str] | None = None, before_move: BeforeMove | None = None
    ) -> int:
        if ids is not None:
            return (await self.requeue_dead_by_id(ids, before_move)).count
        if before_move is None:
            return len(await self._write(sql.requeue_dead, None, time.time()))
        # Up to the newest now: a requeued message dead again meanwhile waits for the next requeue.
        moved, after, last = 0, 0, await self._read(sql.last_dead_seq)
        while named := await self._read(sql.dead_between, after, last, _REQUEUE_BATCH):
            moved += len(await self._requeue_told(named, before_move))
            after = max(named)
        return moved

    async def requeue_dead_by_id(self, ids: Sequence[str], before_move: BeforeMove | None = None) -> Requeued:
        if before_move is None:
            return Requeued.of(ids, await self._write(sql.requeue_dead, list(ids), time.time()))
        named = await self._read(sql.dead_named, list(ids))
        return Requeued.of(ids, await self._requeue_told(named, before_move))

    async def _requeue_told(self, named: dict[int, str], before_move: BeforeMove) -> list[tuple[str, str]]:
        """Tell ``before_move`` the task ids of the ``named`` dead letters, then move
        exactly those (no failure sent since goes back unforgotten)."""
        if not named:
            return []
        await before_move(list(dict.fromkeys(named.values())))
        return await self._write(sql.requeue_dead, [str(seq) for seq in named], time.time())

    async def purge_dead(self, queue: str | None = None) -> int:
        return await self._write(sql.purge_dead, queue)

    # -- results -----------------------------------------------------------

    def result_store(self) -> ResultStore:
        return self._results

    def tally_store(self) -> TallyStore:
        """Tallies in the same database: ``tallies.py``."""
        return self._tallies

    def record_store(self) -> RecordStore:
        """Records in the same database: ``record_store.py``."""
        return self._records

    def limit_store(self) -> LimitStore:
        """Rate and concurrency limits in the same database: ``limits.py``."""
        return self._limits


class SQLiteResults(ResultStore):
    """The result store of a ``SQLiteBroker``, in the same database, on its SQLite thread.

    Closing it closes the thread too, for a store used apart from its broker's other
    work (``results=`` a SQLite URL). The broker's own ``close`` closes its store, so
    whoever holds both closes one of them (``Connection.close``)."""

    def __init__(self, thread: SQLThread) -> None:
        self._sql = thread
        self._next_sweep = 0.0

    async def store(self, results: Sequence[tuple[str, bytes]], ttl: float) -> None:
        if not results:
            return
        now = time.time()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + _SWEEP_EVERY
        await self._sql.call(sql.store_results, results, now + ttl, now if sweep else None, write=True)

    async def get(self, task_id: str) -> bytes | None:
        return await self._sql.call(sql.get_result, task_id, time.time(), write=False)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """One read for every id: the waiters' poller asks for all of them at once."""
        return await self._sql.call(sql.get_results, list(task_ids), time.time(), write=False)

    async def forget(self, task_ids: Sequence[str]) -> None:
        await self._sql.call(sql.forget_results, list(task_ids), write=True)

    async def close(self) -> None:
        await self.close_waiters()
        self._sql.close(asyncio.get_running_loop())
