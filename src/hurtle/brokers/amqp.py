"""RabbitMQ broker (AMQP 0-9-1): ``amqp://`` and ``amqps://``.

URL: ``amqp://user:password@host:5672/vhost?prefix=hurtle&queue_type=classic&confirm=true
&reconnect_timeout=30`` (``queue_type=quorum``, optionally ``delivery_limit=N``); other
query parameters (``heartbeat``, ``name``, ``cafile``, ...) go to aiormq. Names of
queues and exchanges: ``amqp_link.Names``; delays: ``amqp_topology``; dead letters:
``amqp_dead``.

Sending. Messages are persistent, published mandatory to durable queues, with
publisher confirms: ``enqueue`` pipelines a whole batch and returns once RabbitMQ
confirmed every message, one round trip of waiting, not one per message. A
foreign producer publishes a JSON envelope to the default exchange with routing
key ``<prefix>.q.<queue>``.

Fetching (``amqp_fetch``): one consumer per queue per fetch, its prefetch the
queue's share of the worker's free slots, so a busy worker holds nothing back
(seed 004). Delivery counts survive a worker's death: a quorum queue's
``x-delivery-count``, a classic queue's ``redelivered`` flag turned into a count.

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

from hurtle.brokers.amqp_dead import AMQPDeadLetters
from hurtle.brokers.amqp_fetch import Puller, Receipt, message_tag, uncounted
from hurtle.brokers.amqp_link import AMQPURL, HURTLE_AT, Conn, Link, publish
from hurtle.brokers.amqp_topology import Topology, delay_headers, delay_units, is_unroutable
from hurtle.brokers.base import Broker, Delivery, Message, QueueStats

log = logging.getLogger("hurtle.amqp")


class AMQPBroker(AMQPDeadLetters, Broker):
    schemes = ("amqp", "amqps")
    blocking_fetch = True

    def __init__(
        self, url: str = "amqp://guest:guest@127.0.0.1:5672/", *, visibility_timeout: float = 30.0
    ) -> None:
        super().__init__(url, visibility_timeout=visibility_timeout)
        self.amqp_url = AMQPURL.parse(url)
        self.names = self.amqp_url.names
        self._topology = Topology(self.amqp_url)
        self._puller = Puller(self.names)
        self._link = Link(self.amqp_url, self._puller.received, self._topology.forget)
        self._fetching = asyncio.Lock()  # one fetch at a time: consumers and shares are per fetch

    async def connect(self) -> None:
        """Connect once: an unreachable RabbitMQ is a BrokerError now."""
        await self._link.call(self._connected, patience=0.0)

    async def _connected(self, conn: Conn) -> None:
        self._puller.session_of(conn)

    async def close(self) -> None:
        """Close the connection: RabbitMQ puts back whatever it held unacked (the
        buffered messages no task saw are given back uncounted first). Idempotent."""
        conn = self._link.current()
        if conn is not None:
            try:
                await self._puller.give_back(conn)
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

    async def _publish(self, conn: Conn, pending: list[Message]) -> None:
        """Publish pipelined and wait for the confirms; on a failure ``pending`` keeps
        only the unconfirmed messages (the retry after a reconnect sends those)."""
        for attempt in (1, 2):
            batch = list(pending)
            now = time.time()
            routes = [self._route(message, now) for message in batch]
            for queue in dict.fromkeys(m.queue for m in batch):
                await self._topology.ensure_queue(conn, queue)
            for queue, top in {(m.queue, top) for m, (_, _, top, _) in zip(batch, routes, strict=True)}:
                if top >= 0:
                    await self._topology.ensure_delay(conn, queue, top)
            results = await asyncio.gather(
                *(publish(conn.pub, exchange, key, m.body, props)
                  for m, (exchange, key, _, props) in zip(batch, routes, strict=True)),
                return_exceptions=True,
            )
            pending[:] = [m for m, r in zip(batch, results, strict=True) if isinstance(r, BaseException)]
            if not pending:
                return
            error = next(r for r in results if isinstance(r, BaseException))
            if attempt == 1 and is_unroutable(error):
                self._topology.forget()  # a queue or binding we made is gone: make it again
                continue
            if isinstance(error, asyncio.CancelledError):  # the channel closed under the publish
                raise ConnectionError(f"the connection closed while publishing: {error!r}")
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
        properties = spec.Basic.Properties(
            content_type="application/json", delivery_mode=2, message_id=message.id, headers=headers
        )
        return exchange, work, top, properties

    # -- fetching --------------------------------------------------------------

    async def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        """Raises ``BrokerError`` at once when RabbitMQ is unreachable: the worker backs off."""
        if max_count <= 0 or not queues:
            return []
        names = list(dict.fromkeys(queues))
        deadline = time.monotonic() + timeout
        async with self._fetching:
            return await self._link.call(lambda conn: self._fetch(conn, names, max_count, deadline), 0.0)

    async def _fetch(self, conn: Conn, queues: list[str], room: int, deadline: float) -> list[Delivery]:
        for queue in queues:
            await self._topology.ensure_queue(conn, queue)
        return await self._puller.fetch(conn, queues, room, deadline)

    # -- settling --------------------------------------------------------------

    def _owned(self, conn: Conn | None, receipt: Receipt) -> bool:
        return conn is not None and not receipt.settled and receipt.generation == conn.generation

    async def _settle(self, conn: Conn, receipts: list[Receipt]) -> None:
        """Acknowledge, each once (a second ack of a tag would close the channel)."""
        session = self._puller.session
        for receipt in receipts:
            receipt.settled = True
            if session.generation == receipt.generation:
                session.leased.pop(receipt.tag, None)
        for index, receipt in enumerate(receipts):
            await conn.sub.basic_ack(receipt.tag, wait=index == len(receipts) - 1)

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
        receipt: Receipt = delivery.receipt

        async def replace(conn: Conn) -> None:
            if self._owned(conn, receipt):
                await self._publish(conn, [message])  # a fresh list each try: stale ones publish nothing
                await self._settle(conn, [receipt])

        await self._link.call(replace)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Publish to the dead-letter exchange with ``reason`` (confirmed), then ack."""
        receipt: Receipt = delivery.receipt

        async def move(conn: Conn) -> None:
            if self._owned(conn, receipt):
                await self.publish_dead(conn, delivery.queue, delivery.body, receipt.properties, reason)
                await self._settle(conn, [receipt])

        await self._link.call(move)

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Nothing to do: a delivery stays leased while its channel lives (module docstring)."""

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Publish each again with this delivery uncounted, then ack it: visible at once,
        at the back of its queue (a requeue would flag it redelivered, and count it)."""

        async def give_back(conn: Conn) -> None:
            owned = [d for d in deliveries if self._owned(conn, d.receipt)]
            if not owned:
                return
            await asyncio.gather(*(
                publish(conn.pub, "", self.names.work(d.queue), d.body, _released(d)) for d in owned
            ))
            await self._settle(conn, [d.receipt for d in owned])

        await self._link.call(give_back)

    # -- looking and cleaning up -------------------------------------------------

    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        """``in_flight`` counts this broker object's own leases: AMQP does not tell
        one client how many messages other consumers hold unacked."""

        async def collect(conn: Conn) -> list[QueueStats]:
            names = list(queues) if queues is not None else await self._topology.known_queues(conn)
            return [await self._stats_of(conn, name) for name in names]

        return await self._link.call(collect)

    async def _stats_of(self, conn: Conn, queue: str) -> QueueStats:
        session = self._puller.session_of(conn)
        dead = await conn.count(self.names.dead(queue)) or 0
        # Top level down, then the work queue: a message moving down while we look
        # is counted once or twice, never missed (a burst worker must not stop early).
        delayed = 0
        for level in reversed(range(await self._topology.delay_levels(conn, queue))):
            delayed += await conn.count(self.names.delay(level, queue)) or 0
        ready = (await conn.count(self.names.work(queue)) or 0) + len(session.buffer.get(queue, ()))
        in_flight = sum(1 for q in session.leased.values() if q == queue)
        return QueueStats(queue, ready, delayed, in_flight, dead)

    async def purge(self, queue: str) -> int:
        """Ready and delayed messages, and this broker's own buffered ones; leased ones stay."""

        async def purge(conn: Conn) -> int:
            session = self._puller.session_of(conn)
            purged = await conn.purge(self.names.work(queue))
            for level in range(await self._topology.delay_levels(conn, queue)):
                purged += await conn.purge(self.names.delay(level, queue))
            buffered = session.buffer.pop(queue, deque())
            for message in buffered:
                await conn.sub.basic_ack(message_tag(message))
            return purged + len(buffered)

        return await self._link.call(purge)


def _released(delivery: Delivery) -> spec.Basic.Properties:
    """A released delivery, published again: its next delivery counts as this one did."""
    receipt: Receipt = delivery.receipt
    return uncounted(receipt.properties, delivery.deliveries - 1)
