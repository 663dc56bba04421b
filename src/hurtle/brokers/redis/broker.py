"""Redis broker and result store, on Streams and consumer groups: ``redis://``, ``rediss://``, ``unix://``.

URL: ``redis://[[user]:password@]host:6379/DB?prefix=hurtle&reconnect_timeout=30``
(``unix:///path/redis.sock?db=0``); other query options go to redis-py, and one
it does not take (``url.client_options``) is a ``ConfigurationError``.
A Redis Cluster: ``redis+cluster://[[user]:password@]host:6379?prefix=hurtle`` (TLS:
``rediss+cluster://``), naming any one node; the client asks it for the others.
Database 0 only, no ``unix://``; the query options are those of redis-py's
``RedisCluster``. See ``cluster.py``.

Key schema (``P`` is the prefix; ``{q}`` the queue name as a Cluster hash tag, so
every key of a queue, and so every script, lives on one slot)::

    P:queues              SET     every queue ever sent to (stats, dlq over all queues)
    P:{q}:stream          STREAM  waiting and leased messages; fields ``id`` (message id)
                                  and ``body`` (the JSON envelope). Consumer group ``hurtle``;
                                  each worker process is one consumer.
    P:{q}:delayed         ZSET    messages with a future eta: score eta in unix ms, member
                                  ``<message id>\\n<body>``; moved onto the stream when due
                                  (a member without the newline is dead-lettered)
    P:{q}:dead            STREAM  dead letters: fields id, body, reason, failed_at (unix s); dead.py
    P:result:<task id>    LIST    one element, the encoded result, with a TTL
    P:result:<task id>    CHANNEL (pub/sub, named like the key) a message when the result
                                  is stored: the record itself up to 4 KiB, else empty
                                  ("read the key")
    P:tally:<key>         HASH    a tally (``hurtle.tallies``): integer fields, with a TTL;
                                  tallies.py
    P:record:<key>        STRING  a record (``hurtle.records``: a worker's heartbeat), with a
                                  TTL; record_store.py
    P:limit:rate:<task>   STRING  a rate limit's GCRA arrival time (ms); limits.py
    P:limit:permits:<task> ZSET   a concurrency limit's permits: holder, scored by expiry (ms)

A foreign producer publishes with ``XADD P:{q}:stream * id <id> body <json>`` (and
``SADD P:queues q``). hurtle's own scripts give entries ids from the server clock
in microseconds (``<ms>-<us within the ms * 10^6 + n>``, lib.lua ``add``) rather
than ``*``, so entries of different queues sort by age: a fetch over several
queues peeks at each (peek.lua) and reads from each its share of the oldest.
A fetch with quotas (queue priorities) peeks the same way and reads from each
queue what the quotas give it; with nothing ready it waits with ``XREAD BLOCK``
from each group's last-delivered id, which leases nothing.

Leases. ``XREADGROUP`` leases a new entry to this consumer: it sits in the
group's pending list, its idle time counting. The heartbeat (``extend``) claims
the consumer's own entries again with ``XCLAIM ... JUSTID``, which resets the
idle time and keeps the delivery count, so a task running for hours is never
handed to a second worker. An entry whose idle time passes its holder's lease
is reclaimed by any worker's fetch with ``XCLAIM``, which counts the delivery
(``Delivery.deliveries``; past ``max_deliveries`` the worker dead-letters it).

The lease is the holder's own ``visibility_timeout``, written into its consumer
name (``HOST/PID/TOKEN/LEASE_MS``). ``XAUTOCLAIM`` would apply the reclaimer's
timeout to every holder: a reclaimer with a short one would steal the live
leases of a worker with a long one. So reclaiming runs, per consumer, ``XPENDING
... IDLE <its lease>`` then ``XCLAIM``, in one Lua script, without a lock (a
killed worker cannot leave one behind).

Fencing: a worker whose lease was taken over settles nothing of the new
holder's (``settling.py``). An ack is ``XACK`` + ``XDEL`` in one script: the stream
holds only waiting and leased entries. Results: ``store.lua`` writes the list and
publishes on its channel, which the store's waiters share one connection to
(``waiters.py``).

Cluster: every script's keys are one queue's (``{q}``: one slot), or one result
key (``store.lua``), so each runs whole on the node serving that slot. What
spans queues is done per slot instead (``RedisClusterBroker``): reads, sends to
several queues, the result store's batch; ``P:queues`` is a slot of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from redis.exceptions import ResponseError

from hurtle.brokers.base import (
    Broker,
    DeadLettersKept,
    Delivery,
    Location,
    Message,
    QueueStats,
    allot,
    each_once,
)
from hurtle.brokers.redis.dead import RedisDeadLetters, known_queues
from hurtle.brokers.redis.entries import clean_id, delivery_of, pairs, parse_read
from hurtle.brokers.redis.lanes import BLOCK_CAP, RedisConn, script_source
from hurtle.brokers.redis.limits import RedisLimits
from hurtle.brokers.redis.link import RedisLink, is_wrong_type
from hurtle.brokers.redis.locate import RedisLocate
from hurtle.brokers.redis.queue_stats import added_counts, queue_stats
from hurtle.brokers.redis.record_store import RedisRecords
from hurtle.brokers.redis.records import Reports, SkippedQueues
from hurtle.brokers.redis.results import RedisResults
from hurtle.brokers.redis.settling import dead_letter_call, each_queue, retry_call
from hurtle.brokers.redis.tallies import RedisTallies
from hurtle.brokers.redis.url import (
    GROUP,
    OPTIONS,
    RedisURL,
    entry_order,
    oldest_first,
    queue_first,
)
from hurtle.errors import ConfigurationError
from hurtle.limit_store import LimitStore
from hurtle.records import RecordStore
from hurtle.results import ResultStore
from hurtle.tallies import TallyStore
from hurtle.urls import SecretURL

_HOUSEKEEP_EVERY = 1.0  # seconds between promotions of due delayed messages, at most
_RECLAIM_EVERY = 1.0  # seconds between searches for expired leases, at most
_HOUSEKEEP_MIN = 0.05  # seconds: the shortest interval of either
_PROMOTE_BATCH = 1000  # delayed messages moved per script call
_RECLAIM_BATCH = 1000  # expired entries reclaimed per script call
_FORGET_CONSUMERS_MS = 3_600_000  # a consumer idle this long, holding nothing, is deleted

log = logging.getLogger("hurtle.redis")


class RedisBroker(DeadLettersKept, Broker):
    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix")
    locates_messages = True  # by a scan in chunks: locate.py
    counts_added = True  # a stream's entries-added (Redis 7.0 and newer): added.lua
    url_options = OPTIONS

    def __init__(
        self, url: str | SecretURL = "redis://127.0.0.1:6379/0", *, visibility_timeout: float = 30.0
    ) -> None:
        super().__init__(url, visibility_timeout=visibility_timeout)
        if self.url.scheme not in self.schemes:  # a cluster URL needs the cluster class
            served = ", ".join(self.schemes)
            raise ConfigurationError(f"{type(self).__name__} serves {served} URLs, not {str(self.url)!r}")
        parsed = RedisURL.parse(self.url)
        self.keys = parsed.keys
        self.lease_ms = max(1, int(visibility_timeout * 1000))
        self._link = RedisLink(parsed, self.lease_ms)
        # What the broker does beside its queues' traffic, each on the same link.
        self._results = RedisResults(self.keys, self._link)
        self._tallies = RedisTallies(self.keys, self._link)
        self._records = RedisRecords(self.keys, self._link)
        self._limits = RedisLimits(self.keys, self._link)
        self._dead = RedisDeadLetters(self.keys, self._link)
        self._locate = RedisLocate(self.keys, self._link, self.lease_ms)
        # A quarter lease, so an expired lease is found soon after it runs out;
        # never below _HOUSEKEEP_MIN, so a tiny lease does not turn fetch into polling.
        self._housekeep_every = min(_HOUSEKEEP_EVERY, max(_HOUSEKEEP_MIN, visibility_timeout / 4))
        self._reclaim_every = min(_RECLAIM_EVERY, max(_HOUSEKEEP_MIN, visibility_timeout / 4))
        self._housekeep_at = 0.0  # monotonic: when the next fetch promotes due messages
        self._reclaim_at = 0.0  # monotonic: when the next fetch looks for expired leases
        self._skipped = SkippedQueues()  # queues whose stream key another program broke
        self._reports = Reports()

    # -- connection ----------------------------------------------------------

    async def connect(self) -> None:
        """Connect and ping once: an unreachable Redis is a BrokerError now."""
        await self._link.call(lambda conn: conn.client.ping(), patience=0.0)

    async def close(self) -> None:
        await self._results.close()  # its waiters, and the link it shares with the broker and the tallies

    def result_store(self) -> ResultStore:
        return self._results

    def tally_store(self) -> TallyStore:
        return self._tallies

    def record_store(self) -> RecordStore:
        return self._records

    def limit_store(self) -> LimitStore:
        return self._limits

    # -- looking up (dead letters: ``DeadLettersKept``) -----------------------

    async def locate(
        self, task_ids: Sequence[str], queues: Sequence[str] | None = None
    ) -> dict[str, Location]:
        return await self._locate.locate(task_ids, queues)

    # -- sending ---------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message]) -> None:
        """Every message or none, in one round trip per batch."""
        batch = list(messages)
        if not batch:
            return
        queues = list(dict.fromkeys(m.queue for m in batch))
        send = self._enqueue_one_queue if len(queues) == 1 else self._enqueue_many_queues
        await self._link.call(lambda conn: send(conn, queues, batch, time.time()))
        for m in batch:
            self._expect_due(m.eta)

    async def _enqueue_one_queue(
        self, conn: RedisConn, queues: list[str], batch: list[Message], now: float
    ) -> None:
        """The common case (``send_many`` of one task): one script call, atomic, on the
        sender's own connection, after the queue's name is recorded (in the same write)."""
        (queue,) = queues
        keys, args = self._enqueue_call(queue, batch, now)
        await conn.script_on_lane(
            "send", "enqueue", keys, args,
            before=[("SADD", self.keys.queues, queue)], before_failed=self._unrecorded,
        )

    async def _enqueue_many_queues(
        self, conn: RedisConn, queues: list[str], batch: list[Message], now: float
    ) -> None:
        """Several queues: the script once per queue in one MULTI/EXEC, atomic on one
        server. EVAL, not EVALSHA: a NOSCRIPT inside EXEC would not undo the others."""
        pipe = conn.client.pipeline(transaction=True)
        pipe.sadd(self.keys.queues, *queues)
        for queue in queues:
            keys, args = self._enqueue_call(queue, [m for m in batch if m.queue == queue], now)
            pipe.eval(script_source("enqueue"), len(keys), *keys, *args)
        recorded, *sent = await pipe.execute(raise_on_error=False)
        for reply in sent:
            if isinstance(reply, Exception):
                raise reply
        if isinstance(recorded, Exception):
            self._unrecorded(recorded)

    def _unrecorded(self, exc: Exception) -> None:
        """The messages were stored, but not their queue's name: say so, never raise
        (a sender told its send failed would send the messages again)."""
        self._reports.error(
            f"{self.keys.queues} could not record a queue's name ({exc}): hurtle status and"
            " dlq commands over every queue will miss it"
        )

    def _enqueue_call(self, queue: str, batch: list[Message], now: float) -> tuple[list[str], list[Any]]:
        """Keys and arguments of ``enqueue.lua`` for one queue's messages."""
        args: list[Any] = [repr(now * 1000)]
        if all(m.eta is None for m in batch):
            for m in batch:
                args += (clean_id(m.id), m.body)
        else:
            args.append("eta")
            for m in batch:
                args += (clean_id(m.id), m.body, "" if m.eta is None else repr(m.eta * 1000))
        return [self.keys.stream(queue), self.keys.delayed(queue)], args

    def _expect_due(self, eta: float | None) -> None:
        """A delayed message this broker wrote: promote it on time, not at the next
        regular housekeeping (other brokers learn of it within ``_HOUSEKEEP_EVERY``)."""
        if eta is not None:
            due_in = max(0.0, eta - time.time())
            self._housekeep_at = min(self._housekeep_at, time.monotonic() + due_in)

    # -- fetching --------------------------------------------------------------

    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout: float, *, quotas: Sequence[int] | None = None
    ) -> list[Delivery]:
        """Raises ``BrokerError`` at once when Redis is unreachable: the worker backs off."""
        if max_count <= 0 or not queues:
            return []
        deadline = time.monotonic() + timeout
        names = list(dict.fromkeys(queues))
        order = None if quotas is None or len(names) < 2 else each_once(queues, quotas)
        return await self._link.call(lambda conn: self._fetch(conn, names, max_count, deadline, order), 0.0)

    async def _fetch(
        self, conn: RedisConn, queues: list[str], max_count: int, deadline: float,
        order: dict[str, int] | None = None,
    ) -> list[Delivery]:
        """``_fetch_from`` the queues that can be read: a stream key of another type
        failed every read over it, so its queue is skipped, and the others flow."""
        while True:
            usable = self._skipped.usable(queues)
            if not usable:
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                return []
            try:
                return await self._fetch_from(conn, usable, max_count, deadline, order)
            except ResponseError as exc:
                if not is_wrong_type(exc) or not await self._skipped.find(conn, self.keys, usable):
                    raise

    async def _fetch_from(
        self, conn: RedisConn, queues: list[str], max_count: int, deadline: float,
        order: dict[str, int] | None = None,
    ) -> list[Delivery]:
        await self._link.ensure_groups(conn, [self.keys.stream(q) for q in queues])
        while True:
            taken: list[Delivery] = []
            if time.monotonic() >= self._housekeep_at:
                taken = await self._housekeep(conn, queues, max_count)
            room = max_count - len(taken)
            if order is not None:
                quotas = [order[q] for q in queues]
                taken = await self._take_in_order(conn, queues, quotas, taken, max_count, deadline)
            elif room > 0:
                wait = 0.0 if taken else min(deadline, self._housekeep_at) - time.monotonic()
                taken += await self._read(conn, queues, room, wait)
            if taken or time.monotonic() >= deadline:
                if len(queues) > 1:  # one stream: reclaimed entries, then new ones, all in order
                    taken.sort(key=oldest_first(queues) if order is None else queue_first(queues))
                return taken

    async def _housekeep(self, conn: RedisConn, queues: list[str], max_count: int) -> list[Delivery]:
        """Promote due delayed messages; every ``_RECLAIM_EVERY``, take expired leases."""
        now = time.monotonic()
        reclaim = now >= self._reclaim_at
        taken: list[Delivery] = []
        next_due = time.time() + self._housekeep_every
        more = False
        for queue in queues:
            room = min(max_count - len(taken), _RECLAIM_BATCH) if reclaim else 0
            clock = time.time()
            due, claimed, has_more, buried, problems = await conn.script(
                "housekeep",
                [self.keys.stream(queue), self.keys.delayed(queue), self.keys.dead(queue)],
                [GROUP, conn.consumer, repr(clock * 1000), _PROMOTE_BATCH, room,
                 self.lease_ms, max(_FORGET_CONSUMERS_MS, 10 * self.lease_ms), repr(clock)],
            )
            for reason in buried:
                log.error("dead-lettered a message from queue %r: %s", queue, reason.decode())
            for problem in problems:
                self._reports.error(f"queue {queue!r}: a step of housekeeping skipped: {problem.decode()}")
            if due is not None and not problems:  # (a member that could not move stays due)
                next_due = min(next_due, float(due) / 1000)
            more = more or bool(has_more) or (reclaim and room == 0)
            for entry_id, deliveries, fields in claimed:
                taken.append(delivery_of(conn.consumer, queue, entry_id, int(deliveries), pairs(fields)))
        if reclaim:
            self._reclaim_at = now if more else now + self._reclaim_every
        self._housekeep_at = min(now + max(0.0, next_due - time.time()), self._reclaim_at)
        return taken

    async def _read(self, conn: RedisConn, queues: list[str], room: int, wait: float) -> list[Delivery]:
        """Lease up to ``room`` new entries, oldest first; block up to ``wait`` seconds
        for the first (``XREADGROUP ... BLOCK``: no polling)."""
        if len(queues) > 1:
            shares = await self._shares(conn, queues, room)
            if shares:
                return await self._read_shares(conn, queues, shares)
            if wait <= 0:
                return []
        taken = await self._read_new(conn, queues, room, int(min(wait, BLOCK_CAP) * 1000))
        if len(taken) > room:
            # Entries came to several streams at the moment the read woke, COUNT from
            # each: keep the oldest, give the rest back (our next fetch takes them first).
            taken.sort(key=oldest_first(queues))
            await self._release(conn, taken[room:])
            taken = taken[:room]
        return taken

    async def _take_in_order(
        self, conn: RedisConn, queues: list[str], quotas: list[int], reclaimed: list[Delivery],
        max_count: int, deadline: float,
    ) -> list[Delivery]:
        """Up to ``max_count`` entries by the quotas rule (``allot``), counting what
        housekeeping just ``reclaimed`` (expired leases: each the oldest of its queue)
        as ready in its queue: a peek at each queue, then from each what is its to
        take. Reclaimed entries past their queue's turn go back, uncounted. When none
        is ready, wait up to the deadline for an entry in any queue (``XREAD ...
        BLOCK`` from each group's last-delivered id, which leases nothing: what comes
        is taken by the same rule, on the caller's next turn)."""
        calls = [([self.keys.stream(q)], [GROUP, max_count, 1]) for q in queues]
        replies = await conn.scripts_in(conn.client.pipeline(transaction=False), "peek", calls)
        held = [[d for d in reclaimed if d.queue == q] for q in queues]
        ready = [len(held[i]) + max(0, len(ids) - 1) for i, ids in enumerate(replies)]
        takes = allot(ready, quotas, max_count)
        kept = [d for i, mine in enumerate(held) for d in mine[: takes[i]]]
        excess = [d for i, mine in enumerate(held) for d in mine[takes[i] :]]
        if excess:
            # Not reclaimed at once: the next fetch would take them back again.
            await self._release(conn, excess, reclaim_now=False)
        pairs = enumerate(zip(takes, held, strict=True))
        shares = {i: n - len(mine) for i, (n, mine) in pairs if n > len(mine)}
        if shares:
            kept += await self._read_shares(conn, queues, shares)
        wait = min(deadline, self._housekeep_at) - time.monotonic()
        if not kept and wait > 0:
            starts = [ids[0] if ids else b"$" for ids in replies]
            await self._await_new(conn, queues, starts, int(min(wait, BLOCK_CAP) * 1000))
        return kept

    async def _await_new(
        self, conn: RedisConn, queues: list[str], starts: list[bytes], block_ms: int
    ) -> None:
        """Return once an entry past ``starts`` (by queue) is in any stream, or after
        ``block_ms``: one ``XREAD`` over every stream."""
        if block_ms <= 0:
            return
        streams = [self.keys.stream(q) for q in queues]
        await conn.on_lane("read", "XREAD", "COUNT", 1, "BLOCK", block_ms, "STREAMS", *streams, *starts)

    async def _read_new(self, conn: RedisConn, queues: list[str], room: int, block_ms: int) -> list[Delivery]:
        """One ``XREADGROUP`` over every stream, ``COUNT room`` from each."""
        streams = [self.keys.stream(q) for q in queues]
        command: list[Any] = ["XREADGROUP", "GROUP", GROUP, conn.consumer, "COUNT", room]
        if block_ms > 0:  # BLOCK 0 would wait forever; without BLOCK the read returns at once
            command += ["BLOCK", block_ms]
        command += ["STREAMS", *streams, *[">"] * len(streams)]
        sent = time.monotonic()
        reply = await conn.on_lane("read", *command)
        return parse_read(self.keys, conn.consumer, queues, reply, sent)

    async def _shares(self, conn: RedisConn, queues: list[str], room: int) -> dict[int, int]:
        """How many of the ``room`` oldest new entries each queue holds (by queue index)."""
        calls = [([self.keys.stream(q)], [GROUP, room]) for q in queues]
        replies = await conn.scripts_in(conn.client.pipeline(transaction=False), "peek", calls)
        oldest = sorted((entry_order(i), index) for index, ids in enumerate(replies) for i in ids)
        shares: dict[int, int] = {}
        for _, index in oldest[:room]:
            shares[index] = shares.get(index, 0) + 1
        return shares

    async def _read_shares(
        self, conn: RedisConn, queues: list[str], shares: dict[int, int]
    ) -> list[Delivery]:
        """One non-blocking ``XREADGROUP`` per queue, each ``COUNT`` its share, pipelined.
        (Another worker may take some first: then this one gets newer ones, never more.)"""
        pipe = conn.client.pipeline(transaction=False)
        for index, count in shares.items():
            stream = self.keys.stream(queues[index])
            pipe.execute_command(
                "XREADGROUP", "GROUP", GROUP, conn.consumer, "COUNT", count, "STREAMS", stream, ">",
                **self._route(conn, stream),
            )
        taken: list[Delivery] = []
        sent = time.monotonic()
        for reply in await pipe.execute():
            taken += parse_read(self.keys, conn.consumer, queues, reply, sent)
        return taken

    def _route(self, conn: RedisConn, key: str) -> dict[str, Any]:
        """Extra arguments of a pipelined command on ``key``: none on one server."""
        return {}

    # -- settling --------------------------------------------------------------

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._link.call(lambda conn: each_queue(conn, self.keys, "ack", deliveries, self.lease_ms))

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._link.call(lambda conn: each_queue(conn, self.keys, "extend", deliveries))

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._link.call(lambda conn: self._release(conn, deliveries))

    async def _release(
        self, conn: RedisConn, deliveries: Sequence[Delivery], *, reclaim_now: bool = True
    ) -> None:
        """Give ``deliveries`` back; with ``reclaim_now``, our next fetch takes them back first.
        From here on nothing can be sure they are still ours: an ack of one is checked."""
        for delivery in deliveries:
            delivery.receipt.leased_at = 0.0
        await each_queue(conn, self.keys, "release", deliveries)
        if reclaim_now:
            self._housekeep_at = self._reclaim_at = 0.0

    async def retry(self, delivery: Delivery, message: Message) -> None:
        if message.queue != delivery.queue:
            # Two slots in a cluster: add the next attempt first, then let the old go.
            await self.enqueue([message])
            await self.ack([delivery])
            return
        keys, args = retry_call(self.keys, delivery, message)
        await self._link.call(lambda conn: conn.script("retry", keys, args))
        self._expect_due(message.eta)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        keys, args = dead_letter_call(self.keys, delivery, reason)
        await self._link.call(lambda conn: conn.script("dead_letter", keys, args))

    # -- looking and cleaning up -------------------------------------------------

    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        async def collect(conn: RedisConn) -> list[QueueStats]:
            names = list(queues) if queues is not None else await known_queues(conn, self.keys)
            return await queue_stats(conn, self.keys, names, self.lease_ms)

        return await self._link.call(collect)

    async def added_counts(self, queues: Sequence[str]) -> dict[str, int]:
        return await self._link.call(lambda conn: added_counts(conn, self.keys, queues))

    async def purge(self, queue: str) -> int:
        keys = [self.keys.stream(queue), self.keys.delayed(queue)]
        purged = await self._link.call(lambda conn: conn.script("purge", keys, [GROUP, self.lease_ms]))
        return int(purged)
