"""Pulling from a broker that pushes: the RabbitMQ broker's ``fetch``.

``Broker.fetch`` pulls and must not take more than the worker can start (seed
004: Celery's prefetch let one busy worker hoard the queue). Each fetch opens
one consumer per queue whose per-consumer ``basic.qos`` prefetch is that
queue's share of ``max_count`` (the worker's free slots; the shares add up to
it), takes what comes, and cancels them again. So a worker never holds more
unstarted messages than it has free slots, and none while it is busy: the next
message waits on the server for whichever worker is free. Global QoS is
rejected by current RabbitMQ, and a qos change only applies to consumers made
after it: hence consumers per fetch, not one long-lived consumer.

Cancelling does not wait: messages RabbitMQ dispatched before it saw the cancel
arrive later and wait in a local buffer for the next fetch (never more than the
slots that were free; ``amqp_link._CatchAll`` keeps aiormq from dropping them).
``fetch(..., timeout=0)`` takes what is ready with ``basic.get`` instead.

Delivery counts. RabbitMQ puts a consumer's unacked messages back when its
channel closes: a worker that died, a lost connection. A quorum queue counts
those returns (``x-delivery-count``); a classic queue only flags them
``redelivered``, so such a message is published again with the count in the
header ``hurtle-deliveries`` and the flagged copy acknowledged: the copy comes
later, at the back of the queue, counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from hurtle.brokers.amqp_link import (
    DELIVERIES,
    HURTLE_AT,
    Conn,
    Names,
    copy_properties,
    header_int,
    own_headers,
    publish,
)
from hurtle.brokers.base import Delivery

log = logging.getLogger("hurtle.amqp")

_GATHER_TURNS = 3  # loop turns a fetch lets pass after the first arrival, for what came with it
_CANCEL_TIMEOUT = 2.0  # seconds to wait for a cancel-ok: a connection closing meanwhile never sends it
_TAGS_KEPT = 4096  # consumer tags remembered (a late delivery names its queue by its tag)
_RETURNED = "x-delivery-count"  # a quorum queue's count of returned deliveries

Taken = list[tuple[str, DeliveredMessage]]  # (queue, message)


@dataclass(slots=True, eq=False)
class Receipt:
    """Where a delivery came from: its connection's generation and its delivery tag."""

    generation: int
    tag: int
    properties: spec.Basic.Properties
    settled: bool = False


@dataclass
class Session:
    """The state of one connection; RabbitMQ puts its unacked messages back when it goes."""

    generation: int
    channel: aiormq.Channel | None
    buffer: dict[str, deque[DeliveredMessage]] = field(default_factory=dict)  # came, not yet fetched
    tags: dict[str, str] = field(default_factory=dict)  # consumer tag -> queue
    active: list[str] = field(default_factory=list)  # consumer tags not cancelled yet
    qos: int = 0  # the prefetch the next consumer on ``sub`` gets
    leased: dict[int, str] = field(default_factory=dict)  # delivery tag -> queue, fetched and unsettled


class Puller:
    """Consumers per fetch and the buffer behind them, for one broker object."""

    def __init__(self, names: Names) -> None:
        self.names = names
        self.session = Session(0, None)
        self._arrived = asyncio.Event()
        self._tag_numbers = itertools.count()
        self._turn = 0  # which queue's share is rounded up first, in turn

    def session_of(self, conn: Conn) -> Session:
        """The session of ``conn``; a new connection starts a new one."""
        if self.session.generation != conn.generation:
            self.session = Session(conn.generation, conn.sub)
            conn.connection.closing.add_done_callback(lambda _: self._arrived.set())  # wake a fetch
        return self.session

    def reset(self) -> None:
        self.session = Session(0, None)

    async def fetch(self, conn: Conn, queues: list[str], room: int, deadline: float) -> list[Delivery]:
        session = self.session_of(conn)
        try:
            while True:
                taken = self._take(session, queues, room)
                if not taken:
                    if time.monotonic() >= deadline:
                        taken = await self._get(conn, queues, room)
                    elif await self._wait(conn, session, queues, room, deadline):
                        continue
                taken = await self._recount(conn, taken)
                if taken or time.monotonic() >= deadline:
                    break
        finally:
            await self._stop_consuming(conn, session)
        return [self._lease(session, queue, message) for queue, message in taken]

    def _take(self, session: Session, queues: list[str], room: int) -> Taken:
        """Up to ``room`` buffered messages, oldest first across queues; the rest stay."""
        pool = [(q, m) for q in queues for m in session.buffer.pop(q, ())]
        pool.sort(key=lambda entry: header_int(entry[1].header.properties, HURTLE_AT))
        for queue, message in reversed(pool[room:]):
            session.buffer.setdefault(queue, deque()).appendleft(message)
        return pool[:room]

    async def _get(self, conn: Conn, queues: list[str], room: int) -> Taken:
        """What is ready now, without waiting: ``basic.get``, one message a round trip."""
        taken: Taken = []
        for queue in queues:
            while len(taken) < room:
                message = await conn.sub.basic_get(self.names.work(queue))
                if not isinstance(message.delivery, spec.Basic.GetOk):
                    break
                taken.append((queue, message))
                if not message.delivery.message_count:
                    break
        taken.sort(key=lambda entry: header_int(entry[1].header.properties, HURTLE_AT))
        return taken

    async def _wait(
        self, conn: Conn, session: Session, queues: list[str], room: int, deadline: float
    ) -> bool:
        """Consume (if not yet) and wait for the first arrival; False at the deadline."""
        if not session.active:
            await self._consume(conn, session, queues, room)
        while not any(session.buffer.get(q) for q in queues):
            if not conn.alive():
                raise ConnectionError("the connection to RabbitMQ closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        for _ in range(_GATHER_TURNS):
            await asyncio.sleep(0)  # deliveries read in the same packet: their callbacks run now
        return True

    async def _consume(self, conn: Conn, session: Session, queues: list[str], room: int) -> None:
        """One consumer per queue, prefetch = its share of ``room`` (together exactly ``room``)."""
        base, extra = divmod(room, len(queues))
        start = self._turn % len(queues)
        self._turn += 1
        for index, queue in enumerate(queues[start:] + queues[:start]):
            share = base + (1 if index < extra else 0)
            if share == 0:
                continue
            if share != session.qos:
                await conn.sub.basic_qos(prefetch_count=share)  # per consumer, for those made after
                session.qos = share
            tag = f"hurtle.{next(self._tag_numbers)}"
            session.tags[tag] = queue
            session.active.append(tag)
            await conn.sub.basic_consume(self.names.work(queue), self.received, consumer_tag=tag)
        if len(session.tags) > _TAGS_KEPT:
            for tag in list(session.tags)[: _TAGS_KEPT // 2]:
                if tag not in session.active:
                    del session.tags[tag]

    async def _stop_consuming(self, conn: Conn, session: Session) -> None:
        """Cancel this fetch's consumers and wait for RabbitMQ's CancelOk: every
        delivery sent before it has then been buffered, so the next fetch takes
        those first and never opens a consumer on top of them (which would hold
        more than the free slots asked for)."""
        tags, session.active = session.active, []
        if not tags or not conn.alive():
            return
        try:
            for tag in tags:
                await asyncio.wait_for(conn.sub.basic_cancel(tag), _CANCEL_TIMEOUT)
        except (aiormq.exceptions.ChannelInvalidStateError, ConnectionError, asyncio.TimeoutError):
            # The connection is going: its unacked deliveries return to the queue
            # and the next call reconnects. Never wait on it (a worker hung here).
            log.debug("cancelling consumers failed: the connection is going", exc_info=True)

    async def received(self, message: DeliveredMessage) -> None:
        """Every delivery on ``sub`` (see ``amqp_link._CatchAll``): into the buffer."""
        session = self.session
        delivery = message.delivery
        if message.channel is not session.channel or not isinstance(delivery, spec.Basic.Deliver):
            return  # an old connection's: RabbitMQ has put it back
        tag, key = delivery.consumer_tag or "", delivery.routing_key or ""
        queue = session.tags.get(tag) or self.names.queue_of(key)
        if queue is None:
            log.error("a delivery for an unknown consumer %r; giving it back", delivery.consumer_tag)
            await message.channel.basic_reject(message_tag(message), requeue=True)
            return
        session.buffer.setdefault(queue, deque()).append(message)
        self._arrived.set()

    async def _recount(self, conn: Conn, taken: Taken) -> Taken:
        """Count a classic queue's redelivery: publish it again with its count, ack the old copy."""
        again = [(q, m) for q, m in taken if _redelivered_uncounted(m)]
        if not again:
            return taken
        await self._publish_again(conn, again)
        log.info("counted %d redelivered message(s) (a worker died or a connection broke)", len(again))
        return [(q, m) for q, m in taken if not _redelivered_uncounted(m)]

    async def give_back(self, conn: Conn) -> None:
        """Publish the buffered (never fetched) messages again, uncounted, and ack them:
        closing with them unacked would flag them redelivered, and so count them."""
        session = self.session
        if session.generation != conn.generation:
            return
        buffered = [(q, m) for q, messages in session.buffer.items() for m in messages]
        session.buffer.clear()
        if buffered:
            await self._publish_again(conn, buffered)

    async def _publish_again(self, conn: Conn, taken: Taken) -> None:
        await asyncio.gather(*(
            publish(conn.pub, "", self.names.work(queue), message.body, _counted(message))
            for queue, message in taken
        ))
        for _, message in taken:
            await conn.sub.basic_ack(message_tag(message))

    def _lease(self, session: Session, queue: str, message: DeliveredMessage) -> Delivery:
        properties = message.header.properties
        deliveries = header_int(properties, DELIVERIES) + header_int(properties, _RETURNED) + 1
        tag = message_tag(message)
        session.leased[tag] = queue
        return Delivery(queue, message.body, deliveries, Receipt(session.generation, tag, properties))


def message_tag(message: DeliveredMessage) -> int:
    tag = message.delivery_tag
    assert tag is not None, "a delivery (or get-ok) always has a tag"
    return tag


def uncounted(properties: spec.Basic.Properties, counted: int) -> spec.Basic.Properties:
    """Properties to publish a message again with ``counted`` deliveries behind it."""
    return copy_properties(properties, own_headers(properties) | {DELIVERIES: counted})


def _redelivered_uncounted(message: DeliveredMessage) -> bool:
    """Flagged redelivered by a classic queue (a quorum queue counts in ``x-delivery-count``)."""
    delivery = message.delivery
    redelivered = isinstance(delivery, (spec.Basic.Deliver, spec.Basic.GetOk)) and delivery.redelivered
    return bool(redelivered) and _RETURNED not in (message.header.properties.headers or {})


def _counted(message: DeliveredMessage) -> spec.Basic.Properties:
    """A message not handed out, published again: the deliveries behind it so far,
    plus the one a classic queue's redelivered flag stands for."""
    properties = message.header.properties
    counted = header_int(properties, DELIVERIES) + header_int(properties, _RETURNED)
    return uncounted(properties, counted + (1 if _redelivered_uncounted(message) else 0))
