"""RabbitMQ broker (AMQP 0-9-1): ``amqp://`` and ``amqps://``.

URL: ``amqp://user:password@host:5672/vhost?prefix=hurtle&queue_type=classic&confirm=true
&reconnect_timeout=30`` (``queue_type=quorum``, optionally ``delivery_limit=N``); the
options aiormq reads (``heartbeat``, ``name``, ``cafile``, ...: ``link.AIORMQ_OPTIONS``)
go to it, and any other is a ``ConfigurationError``. Names of
queues and exchanges: ``link.Names``; delays: ``topology.py``; dead letters:
``dead.py``.

Sending. Messages are persistent, published mandatory to durable queues, with
publisher confirms: ``enqueue`` writes a whole batch at once (``publish.py``)
and returns once RabbitMQ confirmed every message, one round trip of waiting,
not one per message. A foreign producer publishes a JSON envelope to the
default exchange with routing key ``<prefix>.q.<queue>``.

Fetching (``fetch.py``): a standing consumer per fetched queue whose prefetch is
the worker's slots, so what waits in the local buffer never passes the free
slots and a busy worker holds nothing back (no prefetch hoards work an idle
worker could run); it is cancelled and its buffer given back when no fetch came
for ``STAND_DOWN_AFTER`` seconds (a worker busy below its water mark, or
draining to stop). Fetches of several queues use consumers per fetch. Acks go
out as one ``multiple`` ack per run of delivery tags (``acks.py``). Delivery
counts survive a worker's death: a quorum queue's ``x-delivery-count``, a
classic queue's ``redelivered`` flag turned into a count.

Leases. A delivery stays leased while its channel lives, however long the task
runs: ``extend`` has nothing to do, and leases never expire by
``visibility_timeout``. RabbitMQ's ``consumer_timeout`` (30 min by default) does
close a channel whose delivery stays unacked longer: set it above your longest
task. Settling is fenced by the connection's generation: a delivery from a
connection that is gone settles nothing (RabbitMQ put it back already).

Results: none. AMQP is not a result store: pass ``results=`` (Redis, SQLite).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence

import aiormq
from pamqp import commands as spec
from pamqp.common import FieldTable

from hurtle.brokers.amqp.dead import AMQPDeadLetters, publish_dead
from hurtle.brokers.amqp.fetch import Puller
from hurtle.brokers.amqp.headers import HURTLE_AT
from hurtle.brokers.amqp.link import AMQPURL, OPTIONS, AMQPConn, AMQPLink
from hurtle.brokers.amqp.publish import publish_all
from hurtle.brokers.amqp.recount import uncounted
from hurtle.brokers.amqp.session import AMQPReceipt
from hurtle.brokers.amqp.topology import (
    Topology,
    delay_headers,
    delay_units,
    is_unroutable,
    name_problem,
    prefix_problem,
)
from hurtle.brokers.base import (
    Broker,
    DeadLettersKept,
    Delivery,
    Message,
    QueueStats,
    each_once,
)
from hurtle.errors import ConfigurationError
from hurtle.urls import SecretURL

log = logging.getLogger("hurtle.amqp")

#: Seconds without a fetch after which the standing consumer is cancelled and what it
#: buffered is given back. Longer than a busy worker's gap between fetches (milliseconds
#: with short tasks); short enough that a worker busy below its water mark, or draining
#: to stop, keeps messages from idle workers for no longer.
STAND_DOWN_AFTER = 0.5
_SHORT_STRING = 255  # bytes: AMQP's short strings (a message_id)


class AMQPBroker(DeadLettersKept, Broker):
    schemes = ("amqp", "amqps")
    leases_expire = False  # a delivery stays leased while its channel lives
    counts_all_in_flight = False  # a client learns only of its own unacked messages
    knows_queue_age = False  # queue.declare tells a length, no message's time
    # A RabbitMQ queue can be read only from its head, and reading takes the
    # message: there is no look by task id (locate() finds nothing).
    locates_messages = False
    url_options = OPTIONS

    def __init__(
        self, url: str | SecretURL = "amqp://guest:guest@127.0.0.1:5672/", *, visibility_timeout: float = 30.0
    ) -> None:
        super().__init__(url, visibility_timeout=visibility_timeout)
        self.amqp_url = AMQPURL.parse(self.url)
        self.names = self.amqp_url.names
        problem = prefix_problem(self.names)
        if problem is not None:
            raise ConfigurationError(f"bad AMQP URL {self.amqp_url.where}: {problem}")
        self._topology = Topology(self.amqp_url)
        self._puller = Puller(self.names, self._publish_dead, quorum=self.amqp_url.queue_type == "quorum")
        self._link = AMQPLink(
            self.amqp_url, self._puller.received, self._topology.forget, self._puller.consumer_forgotten
        )
        self._dead = AMQPDeadLetters(self.names, self._link, self._topology)
        self._fetching = asyncio.Lock()  # one fetch at a time: consumers and the buffer are shared
        self._idle: asyncio.TimerHandle | None = None  # stands the consumer down when no fetch comes
        self._standing_down: asyncio.Task[None] | None = None
        self._fetches = 0  # fetches begun: a stand-down that a fetch overtook is called off

    @classmethod
    def queue_name_problem(cls, url: str | SecretURL, queue: str) -> str | None:
        """RabbitMQ's and pamqp's rules for every name hurtle makes from ``queue``
        (``topology.name_problem``)."""
        return name_problem(AMQPURL.parse(url).names, queue)

    async def _publish_dead(
        self, conn: AMQPConn, queue: str, body: bytes, original: spec.Basic.Properties, reason: str
    ) -> None:
        await publish_dead(self._topology, conn, queue, body, original, reason)

    async def connect(self) -> None:
        """Connect once: an unreachable RabbitMQ is a BrokerError now."""
        await self._link.call(self._connected, patience=0.0)

    async def _connected(self, conn: AMQPConn) -> None:
        self._puller.session_of(conn)

    async def close(self) -> None:
        """Close the connection: RabbitMQ puts back whatever it held unacked (the standing
        consumer is cancelled and the buffered messages no task saw are given back
        uncounted first). Idempotent."""
        self._stop_idle_timer()
        if self._standing_down is not None:
            await asyncio.gather(self._standing_down, return_exceptions=True)
            self._standing_down = None
        conn = self._link.current()
        if conn is not None:
            try:
                await self._puller.stand_down(conn)
            except Exception:  # closing anyway: RabbitMQ puts them back, flagged redelivered
                log.debug("could not give the buffered messages back", exc_info=True)
        self._puller.reset()
        await self._link.close()

    # -- sending ---------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message]) -> None:
        """Every message, persistent, confirmed by RabbitMQ before this returns.

        One batch is not one transaction: a batch read in full is checked first
        (an unreadable batch or a delay over the limit stores nothing), but if the
        connection breaks halfway, the unconfirmed rest is published again after
        the reconnect, so a message may be stored twice; none is lost.
        """
        batch = list(messages)
        if not batch:
            return
        now = time.time()
        for message in batch:
            if message.eta is not None:
                delay_headers(message.queue, delay_units(message.eta, now))  # raises ValueError
        await self._link.call(lambda conn: self._publish(conn, batch))

    async def _publish(self, conn: AMQPConn, pending: list[Message]) -> None:
        """Publish pipelined and wait for the confirms; on a failure ``pending`` keeps
        only the unconfirmed messages (the retry after a reconnect sends those)."""
        for attempt in (1, 2):
            batch = list(pending)
            now = time.time()
            routes = [(message, self._route(message, now)) for message in batch]
            for queue in dict.fromkeys(m.queue for m in batch):
                await self._topology.ensure_queue(conn, queue)
            for queue, top in {(m.queue, top) for m, (_, _, top, _) in routes}:
                if top >= 0:
                    await self._topology.ensure_delay(conn, queue, top)
            outgoing = [(exchange, key, m.body, props) for m, (exchange, key, _, props) in routes]
            results = await publish_all(conn.pub, outgoing)
            pending[:] = [m for m, r in zip(batch, results, strict=True) if r is not None]
            if not pending:
                return
            error = next(r for r in results if r is not None)
            if attempt == 1 and is_unroutable(error):
                self._topology.forget()  # a queue or binding we made is gone: make it again
                # A consumer may stand on the deleted queue; RabbitMQ may not cancel it (a quorum
                # queue declared again within ms): cancelled before the new queue exists, it
                # cannot catch the new queue's messages and sit on them.
                await self._puller.drop_standing(conn)
                continue
            raise error

    def _route(self, message: Message, now: float) -> tuple[str, str, int, spec.Basic.Properties]:
        """(exchange, routing key, delay level it enters at or -1, properties)."""
        work = self.names.work(message.queue)
        headers: FieldTable = {HURTLE_AT: int((message.eta or now) * 1_000_000)}
        exchange, top = "", -1
        units = delay_units(message.eta, now) if message.eta is not None else 0
        if units > 0:
            top, bits = delay_headers(message.queue, units)
            headers.update(bits)
            exchange = self.names.delay_exchange(top)
        # message_id is a short string (255 bytes at most): a foreign producer's task id
        # may be longer, and pamqp refused to write it (the retry never left the worker).
        message_id = message.id if len(message.id.encode(errors="replace")) <= _SHORT_STRING else None
        properties = spec.Basic.Properties(
            content_type="application/json", delivery_mode=2, message_id=message_id, headers=headers
        )
        return exchange, work, top, properties

    # -- fetching --------------------------------------------------------------

    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout: float, *, quotas: Sequence[int] | None = None
    ) -> list[Delivery]:
        """Raises ``BrokerError`` at once when RabbitMQ is unreachable: the worker backs off."""
        if max_count <= 0 or not queues:
            return []
        names = list(dict.fromkeys(queues))
        order = None if quotas is None else list(each_once(queues, quotas).values())
        deadline = time.monotonic() + timeout
        self._stop_idle_timer()
        self._fetches += 1
        async with self._fetching:
            try:
                return await self._link.call(
                    lambda conn: self._fetch(conn, names, max_count, deadline, order), 0.0
                )
            finally:
                if self._puller.session.standing is not None:
                    self._idle = asyncio.get_running_loop().call_later(STAND_DOWN_AFTER, self._idled)

    async def _fetch(
        self, conn: AMQPConn, queues: list[str], room: int, deadline: float, quotas: list[int] | None
    ) -> list[Delivery]:
        for queue in queues:
            await self._topology.ensure_queue(conn, queue)
        return await self._puller.fetch(conn, queues, room, deadline, quotas)

    def _stop_idle_timer(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idled(self) -> None:
        """No fetch for ``STAND_DOWN_AFTER`` seconds: stand the consumer down."""
        self._idle = None
        if self._standing_down is None or self._standing_down.done():
            self._standing_down = asyncio.create_task(self._stand_down(self._fetches))

    async def _stand_down(self, fetches: int) -> None:
        async with self._fetching:
            conn = self._link.current()
            if conn is None or self._puller.session.standing is None or fetches != self._fetches:
                return
            try:
                await self._puller.stand_down(conn)
            except Exception:  # a lost connection: RabbitMQ puts them back, the next fetch reconnects
                log.debug("could not stand the consumer down", exc_info=True)

    # -- settling --------------------------------------------------------------

    def _owned(self, conn: AMQPConn | None, receipt: AMQPReceipt) -> bool:
        return conn is not None and not receipt.settled and receipt.generation == conn.generation

    async def _settle(self, conn: AMQPConn, receipts: list[AMQPReceipt]) -> None:
        """Acknowledge, each once (a second ack of a tag would close the channel)."""
        await self._puller.settle(conn, receipts)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Idempotent. A delivery whose connection is gone is a no-op: RabbitMQ put it
        back when the connection closed, and it will be delivered again, counted."""
        conn = self._link.current()
        receipts = [d.receipt for d in deliveries if self._owned(conn, d.receipt)]
        if conn is None or not receipts:
            return
        try:
            await self._settle(conn, receipts)
        except (aiormq.exceptions.ChannelInvalidStateError, ConnectionError):
            log.debug("acks lost with the connection; the messages come back", exc_info=True)

    async def retry(self, delivery: Delivery, message: Message) -> None:
        """Publish the next attempt (confirmed), then ack this one. A crash between the
        two runs the task once more; a delivery whose connection is gone does nothing."""
        receipt: AMQPReceipt = delivery.receipt

        async def replace(conn: AMQPConn) -> None:
            if self._owned(conn, receipt):
                await self._publish(conn, [message])  # a fresh list each try: stale ones publish nothing
                await self._settle(conn, [receipt])

        await self._link.call(replace)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Publish to the dead-letter exchange with ``reason`` (confirmed), then ack."""
        receipt: AMQPReceipt = delivery.receipt

        async def move(conn: AMQPConn) -> None:
            if self._owned(conn, receipt):
                await self._publish_dead(conn, delivery.queue, delivery.body, receipt.properties, reason)
                await self._settle(conn, [receipt])

        await self._link.call(move)

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Nothing to do: a delivery stays leased while its channel lives (module docstring)."""

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Publish each again with this delivery uncounted, then ack it: visible at once,
        at the back of its queue (a requeue would flag it redelivered, and count it)."""

        async def give_back(conn: AMQPConn) -> None:
            owned = [d for d in deliveries if self._owned(conn, d.receipt)]
            if not owned:
                return
            results = await publish_all(
                conn.pub, [("", self.names.work(d.queue), d.body, _released(d)) for d in owned]
            )
            failures = [r for r in results if r is not None]
            if failures:
                raise failures[0]  # none acked: RabbitMQ gives them back when the connection goes
            await self._settle(conn, [d.receipt for d in owned])

        await self._link.call(give_back)

    # -- looking and cleaning up -------------------------------------------------

    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        """``in_flight`` is None: AMQP does not tell one client how many messages
        other consumers hold unacked. ``oldest_ready_age`` is None: no message can
        be looked at without consuming it."""

        async def collect(conn: AMQPConn) -> list[QueueStats]:
            names = list(queues) if queues is not None else await self._topology.known_queues(conn)
            # A message on its way to the standing consumer is neither ready on the server nor
            # buffered yet: its cancel-ok lands it in the buffer (a burst worker that missed
            # it would stop early). The next fetch makes a new consumer.
            await self._puller.drop_standing(conn)
            return [await self._stats_of(conn, name) for name in names]

        return await self._link.call(collect)

    async def _stats_of(self, conn: AMQPConn, queue: str) -> QueueStats:
        session = self._puller.session_of(conn)
        dead = await conn.count(self.names.dead(queue)) or 0
        # Top level down, then the work queue: a message moving down while we look
        # is counted once or twice, never missed (a burst worker must not stop early).
        delayed = 0
        for level in reversed(range(await self._topology.delay_levels(conn, queue))):
            delayed += await conn.count(self.names.delay(level, queue)) or 0
        ready = (await conn.count(self.names.work(queue)) or 0) + len(session.buffer.get(queue, ()))
        return QueueStats(queue, ready, delayed, None, dead, None)

    async def purge(self, queue: str) -> int:
        """Ready and delayed messages, and this broker's own buffered ones; leased ones stay."""

        async def purge(conn: AMQPConn) -> int:
            session = self._puller.session_of(conn)
            await self._puller.drop_standing(conn)  # what it was sending lands in the buffer, purged below
            purged = await conn.purge(self.names.work(queue))
            for level in range(await self._topology.delay_levels(conn, queue)):
                purged += await conn.purge(self.names.delay(level, queue))
            buffered = list(session.buffer.pop(queue, deque()))
            await self._puller.ack_buffered(conn, buffered)
            return purged + len(buffered)

        return await self._link.call(purge)


def _released(delivery: Delivery) -> spec.Basic.Properties:
    """A released delivery, published again: its next delivery counts as this one did."""
    receipt: AMQPReceipt = delivery.receipt
    return uncounted(receipt.properties, delivery.deliveries - 1)
