"""Pulling from a broker that pushes: the RabbitMQ broker's ``fetch``.

``Broker.fetch`` pulls and must not take more than the worker can start (seed
004: Celery's prefetch let one busy worker hoard the queue). RabbitMQ limits a
consumer to ``basic.qos`` prefetch unacknowledged messages; a qos change only
applies to consumers made after it, and global QoS is rejected by current
RabbitMQ.

One queue: a standing consumer. The first fetch of a queue opens a consumer
whose prefetch is that fetch's ``max_count`` (a worker's first fetch: all its
slots) and leaves it open. What it holds unacknowledged (tasks running,
finished ones whose acks are on the way, messages buffered here) never passes
the prefetch, so what waits in the buffer is never more than the worker's free
slots: nothing is hoarded that an idle worker could run, without a consumer, a qos and a
cancel round trip per fetch. A fetch checks the bound still holds (its
consumer's prefetch minus its leased messages within ``max_count``) and makes
a new consumer when it does not, or when a fetch that finds nothing buffered has
a quarter more free slots than the prefetch (``_GROW_AT``).
A worker that stops fetching (busy below its water mark, draining to stop)
must not sit on buffered messages: ``stand_down`` cancels the consumer and
gives them back; the broker calls it when no fetch came for a while.

Several queues: consumers per fetch. Each fetch opens one consumer per queue
whose prefetch is that queue's share of ``max_count`` (the shares add up to
it), takes what comes and cancels them again, waiting for RabbitMQ's cancel-ok:
messages dispatched before it saw the cancel are then buffered for the next
fetch (never more than the slots that were free; ``link._CatchAll`` keeps
aiormq from dropping them). ``fetch(..., timeout=0)`` takes what is ready with
``basic.get`` instead.

With quotas (queue priorities): the queues are asked in their order, each its
buffer first, then ``basic.get``, so the order holds over all RabbitMQ has
ready, not only over what it already sent. Consumers per fetch serve only as the
wait for a first arrival, and are cancelled before the queues are asked again.

Delivery counts: ``recount.py``.

Nothing taken is stranded. Whatever a fetch takes out of the buffer is leased,
settled here (a count that is not a count: dead-lettered with the reason; a
redelivery: counted), or put back at the front of the buffer before an error
is raised. A message taken and then lost to an exception would stay unacked
on the channel, neither buffered nor leased, holding prefetch that nothing
ever frees.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque

import aiormq
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec

from hurtle.brokers.amqp.headers import deliveries_before, ready_at
from hurtle.brokers.amqp.link import AMQPConn, Names, task_callback
from hurtle.brokers.amqp.recount import Recounting
from hurtle.brokers.amqp.session import AMQPReceipt, PublishDead, Session, Standing, Taken, message_tag
from hurtle.brokers.base import Delivery

log = logging.getLogger("hurtle.amqp")

_GATHER_TURNS = 3  # loop turns a fetch lets pass after the first arrival, for what came with it
_CANCEL_TIMEOUT = 2.0  # seconds to wait for a cancel-ok: a connection closing meanwhile never sends it
_TAGS_KEPT = 4096  # consumer tags remembered (a late delivery names its queue by its tag)
# Seconds a fetch waits for acks to free a standing consumer its leases fill, before it
# replaces the consumer. A worker fetches before it sends the acks of the tasks that made
# room (they follow within a loop turn): in the hot path they free it in milliseconds.
_FULL_WAIT = 0.2
# How much more room than its prefetch a fetch must have before it replaces the standing
# consumer with a bigger one. A replacement is made while tasks run, so its prefetch (the
# free slots then) is below the pool's size, and at once it looks too small again: replaced
# at any shortfall, a busy 64-thread worker replaced its consumer at one fetch in ten (a
# cancel-ok, a qos and a consume-ok each time, nothing delivered meanwhile). Grown by a
# quarter at least, it settles within a few steps at 80% or more of the pool.
_GROW_AT = 1.25
_CANCELLED = (aiormq.exceptions.ChannelInvalidStateError, ConnectionError, asyncio.TimeoutError)

class Puller(Recounting):
    """Consumers and the buffer behind them, for one broker object."""

    def __init__(self, names: Names, publish_dead: PublishDead, *, quorum: bool) -> None:
        self.names = names
        self._publish_dead = publish_dead
        self.quorum = quorum  # only a quorum queue's x-delivery-count is RabbitMQ's own
        self.session = Session(0, None)
        self._arrived = asyncio.Event()
        self._tag_numbers = itertools.count()
        self._turn = 0  # which queue's share is rounded up first, in turn
        self._giving_back: set[asyncio.Future[None]] = set()  # rejects under way: kept from the GC
        self._consumer = task_callback(self.received)  # ``received`` as aiormq calls a consumer

    def session_of(self, conn: AMQPConn) -> Session:
        """The session of ``conn``; a new connection starts a new one."""
        if self.session.generation != conn.generation:
            self.session = Session(conn.generation, conn.sub)
            self.session.unacked.writer = conn.writer
            conn.connection.closing.add_done_callback(lambda _: self._arrived.set())  # wake a fetch
        return self.session

    def reset(self) -> None:
        self.session = Session(0, None)

    async def fetch(
        self, conn: AMQPConn, queues: list[str], room: int, deadline: float, quotas: list[int] | None = None
    ) -> list[Delivery]:
        session = self.session_of(conn)
        if quotas is not None and len(queues) > 1:
            return await self._fetch_in_order(conn, session, queues, quotas, room, deadline)
        standing = session.standing
        if standing is not None and (len(queues) > 1 or not standing.bounded_by(queues[0], room)):
            await self._cancel_standing(conn, session)  # what it buffered stays for the fetches to come
        try:
            while True:
                taken = self._take(session, queues, room)
                if not taken:
                    if time.monotonic() >= deadline:
                        if session.standing is not None:
                            # Ready messages may be on their way to it: its cancel-ok
                            # lands them in the buffer, then a get takes what is left.
                            await self._cancel_standing(conn, session)
                            continue
                        taken = await self._get(conn, session, queues, room)
                    elif await self._wait(conn, session, queues, room, deadline):
                        continue
                    elif _full(session):
                        # Its leases fill its prefetch and no ack freed it: RabbitMQ sends
                        # it nothing, though messages may be ready and slots are free (one
                        # stayed idle as long as a long task ran). Replace it.
                        await self._cancel_standing(conn, session)
                        continue
                taken = await self._sift(conn, session, taken)
                if taken or time.monotonic() >= deadline:
                    break
        finally:
            await self._stop_consuming(conn, session)
        return [self._lease(session, queue, message) for queue, message in taken]

    async def _fetch_in_order(
        self, conn: AMQPConn, session: Session, queues: list[str], quotas: list[int], room: int,
        deadline: float,
    ) -> list[Delivery]:
        """``fetch`` by the quotas rule (``allot``): the queues asked in order, each
        its buffer first, then ``basic.get`` (what RabbitMQ has ready at that moment).
        With nothing ready, consumers on the queues (prefetch shares of ``room``) wait
        for the first arrival; they are cancelled before the queues are asked again,
        so what they brought waits in the buffers, never more than ``room``."""
        await self._cancel_standing(conn, session)  # what it buffered is asked for in its queue's turn
        try:
            while True:
                taken = await self._get_in_order(conn, session, queues, quotas, room)
                waited = not taken and time.monotonic() < deadline
                if waited and await self._wait(conn, session, queues, room, deadline):
                    await self._stop_consuming(conn, session)
                    continue
                taken = await self._sift(conn, session, taken)
                if taken or time.monotonic() >= deadline:
                    break
        finally:
            await self._stop_consuming(conn, session)
        return [self._lease(session, queue, message) for queue, message in taken]

    async def _get_in_order(
        self, conn: AMQPConn, session: Session, queues: list[str], quotas: list[int], room: int
    ) -> Taken:
        """Up to its quota from each queue in turn, then the room left from each in
        turn: a queue's buffer first, then ``basic.get``, one message a round trip."""
        taken: Taken = []
        got = dict.fromkeys(queues, 0)
        drained: set[str] = set()  # RabbitMQ said it has no more ready
        try:
            for limits in (quotas, [room] * len(queues)):
                for queue, limit in zip(queues, limits, strict=True):
                    want = min(limit - got[queue], room - len(taken))
                    buffered = session.buffer.get(queue)
                    while want > 0 and buffered:
                        taken.append((queue, buffered.popleft()))
                        got[queue] += 1
                        want -= 1
                    while want > 0 and queue not in drained:
                        message = await conn.sub.basic_get(self.names.work(queue))
                        if not isinstance(message.delivery, spec.Basic.GetOk):
                            drained.add(queue)
                            break
                        session.unacked.add(message_tag(message))
                        taken.append((queue, message))
                        got[queue] += 1
                        want -= 1
                        if not message.delivery.message_count:
                            drained.add(queue)
        except BaseException:
            self._restore(session, taken)  # unacked and ours: never stranded
            raise
        return taken

    def _take(self, session: Session, queues: list[str], room: int) -> Taken:
        """Up to ``room`` buffered messages, oldest first across queues; the rest stay."""
        if len(queues) == 1:  # one queue's buffer is in queue order already
            queue = queues[0]
            buffered = session.buffer.get(queue)
            if not buffered:
                return []
            return [(queue, buffered.popleft()) for _ in range(min(room, len(buffered)))]
        pool = [(q, m) for q in queues for m in session.buffer.pop(q, ())]
        pool.sort(key=lambda entry: ready_at(entry[1].header.properties))
        for queue, message in reversed(pool[room:]):
            session.buffer.setdefault(queue, deque()).appendleft(message)
        return pool[:room]

    async def _get(self, conn: AMQPConn, session: Session, queues: list[str], room: int) -> Taken:
        """What is ready now, without waiting: ``basic.get``, one message a round trip."""
        taken: Taken = []
        for queue in queues:
            while len(taken) < room:
                message = await conn.sub.basic_get(self.names.work(queue))
                if not isinstance(message.delivery, spec.Basic.GetOk):
                    break
                session.unacked.add(message_tag(message))
                taken.append((queue, message))
                if not message.delivery.message_count:
                    break
        taken.sort(key=lambda entry: ready_at(entry[1].header.properties))
        return taken

    async def _wait(
        self, conn: AMQPConn, session: Session, queues: list[str], room: int, deadline: float
    ) -> bool:
        """Consume (if not yet) and wait for the first arrival; False at the deadline, or
        when a standing consumer stayed full (``_full``) for ``_FULL_WAIT``."""
        if len(queues) > 1:
            if not session.active:
                await self._consume(conn, session, queues, room)
        elif session.standing is None:
            await self._stand(conn, session, queues[0], room)
        elif room >= session.standing.prefetch * _GROW_AT:
            # Far more free slots than it may ever hold: make a bigger one (what the
            # old one sent before its cancel-ok is taken first).
            await self._cancel_standing(conn, session)
            return True
        full_until = time.monotonic() + _FULL_WAIT
        while not any(session.buffer.get(q) for q in queues):
            if not conn.alive():
                raise ConnectionError("the connection to RabbitMQ closed")
            if len(queues) == 1 and session.standing is None:
                return True  # RabbitMQ cancelled it (its queue was deleted): the next turn consumes again
            remaining = (min(deadline, full_until) if _full(session) else deadline) - time.monotonic()
            if remaining <= 0:
                return False
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        for _ in range(_GATHER_TURNS):
            await asyncio.sleep(0)  # deliveries read in the same packet: their callbacks run now
        return True

    async def _qos(self, conn: AMQPConn, session: Session, prefetch: int) -> None:
        if prefetch != session.qos:
            await conn.sub.basic_qos(prefetch_count=prefetch)  # per consumer, for those made after
            session.qos = prefetch

    def _new_tag(self, session: Session, queue: str) -> str:
        tag = f"hurtle.{next(self._tag_numbers)}"
        session.tags[tag] = queue
        if len(session.tags) > _TAGS_KEPT:
            keep = set(session.active) | ({session.standing.tag} if session.standing else set())
            for old in list(session.tags)[: _TAGS_KEPT // 2]:
                if old not in keep:
                    del session.tags[old]
        return tag

    async def _stand(self, conn: AMQPConn, session: Session, queue: str, room: int) -> None:
        """Open the standing consumer of ``queue``, its prefetch ``room``."""
        await self._qos(conn, session, room)
        tag = self._new_tag(session, queue)
        session.standing = Standing(tag, queue, room)
        try:
            await conn.sub.basic_consume(self.names.work(queue), self._consumer, consumer_tag=tag)
        except BaseException:
            session.standing = None
            raise

    async def _consume(self, conn: AMQPConn, session: Session, queues: list[str], room: int) -> None:
        """One consumer per queue, prefetch = its share of ``room`` (together exactly ``room``)."""
        base, extra = divmod(room, len(queues))
        start = self._turn % len(queues)
        self._turn += 1
        for index, queue in enumerate(queues[start:] + queues[:start]):
            share = base + (1 if index < extra else 0)
            if share == 0:
                continue
            await self._qos(conn, session, share)
            tag = self._new_tag(session, queue)
            session.active.append(tag)
            await conn.sub.basic_consume(self.names.work(queue), self._consumer, consumer_tag=tag)

    async def _stop_consuming(self, conn: AMQPConn, session: Session) -> None:
        """Cancel this fetch's consumers and wait for RabbitMQ's CancelOk: every
        delivery sent before it has then been buffered, so the next fetch takes
        those first and never opens a consumer on top of them (which would hold
        more than the free slots asked for)."""
        tags, session.active = session.active, []
        await self._cancel(conn, tags)

    async def _cancel_standing(self, conn: AMQPConn, session: Session) -> None:
        standing, session.standing = session.standing, None
        if standing is not None:
            await self._cancel(conn, [standing.tag])

    async def _cancel(self, conn: AMQPConn, tags: list[str]) -> None:
        if not tags or not conn.alive():
            return
        try:
            for tag in tags:
                await asyncio.wait_for(conn.sub.basic_cancel(tag), _CANCEL_TIMEOUT)
        except _CANCELLED:
            # The connection is going: its unacked deliveries return to the queue
            # and the next call reconnects. Never wait on it (a worker hung here).
            log.debug("cancelling consumers failed: the connection is going", exc_info=True)

    def consumer_forgotten(self, consumer_tag: str) -> None:
        """aiormq forgot a consumer: after our cancel (nothing to do), or after RabbitMQ
        cancelled it (its queue was deleted): then there is no standing consumer now."""
        standing = self.session.standing
        if standing is not None and standing.tag == consumer_tag:
            self.session.standing = None
            self._arrived.set()  # a fetch waiting on it consumes again

    def received(self, message: DeliveredMessage) -> None:
        """Every delivery on ``sub``, on the loop as it is read (``deliveries.py``; through
        aiormq, ``link._CatchAll`` and ``_consumer``, where that is not in place): into the buffer."""
        session = self.session
        delivery = message.delivery
        if message.channel is not session.channel or not isinstance(delivery, spec.Basic.Deliver):
            return  # an old connection's: RabbitMQ has put it back
        tag = message_tag(message)
        session.unacked.add(tag)
        queue = session.tags.get(delivery.consumer_tag or "")
        if queue is None:
            queue = self.names.queue_of(delivery.routing_key or "")
        if queue is None:
            log.error("a delivery for an unknown consumer %r; giving it back", delivery.consumer_tag)
            session.unacked.rejected(tag)
            giving = asyncio.ensure_future(self._give_back_one(message.channel, tag))
            self._giving_back.add(giving)
            giving.add_done_callback(self._giving_back.discard)
            return
        buffered = session.buffer.get(queue)
        if buffered is None:
            buffered = session.buffer[queue] = deque()
        buffered.append(message)
        self._arrived.set()

    async def _give_back_one(self, channel: AbstractChannel, tag: int) -> None:
        try:
            await channel.basic_reject(tag, requeue=True)
        except Exception:  # the channel is going: RabbitMQ puts it back anyway
            log.debug("giving a delivery back failed", exc_info=True)

    async def drop_standing(self, conn: AMQPConn) -> None:
        """Cancel the standing consumer (the next fetch makes a new one); its buffer stays."""
        if self.session.generation == conn.generation:
            await self._cancel_standing(conn, self.session)

    async def stand_down(self, conn: AMQPConn) -> None:
        """Cancel the standing consumer and give back what it buffered: a worker that
        does not fetch holds nothing back."""
        session = self.session
        if session.generation != conn.generation:
            return
        await self._cancel_standing(conn, session)
        await self.give_back(conn)

    async def settle(self, conn: AMQPConn, receipts: list[AMQPReceipt]) -> None:
        """Acknowledge, each once (a second ack of a tag would close the channel)."""
        session = self.session_of(conn)
        standing = session.standing
        for receipt in receipts:
            receipt.settled = True
            if session.generation == receipt.generation:
                session.leased.pop(receipt.tag, None)
                if standing is not None and receipt.consumer == standing.tag:
                    standing.leased -= 1
        await session.unacked.ack(conn.sub, [receipt.tag for receipt in receipts])

    async def ack_buffered(self, conn: AMQPConn, messages: list[DeliveredMessage]) -> None:
        """Acknowledge buffered messages no fetch took (purged)."""
        await self.session_of(conn).unacked.ack(conn.sub, [message_tag(m) for m in messages])

    def _lease(self, session: Session, queue: str, message: DeliveredMessage) -> Delivery:
        properties = message.header.properties
        deliveries = deliveries_before(properties, quorum=self.quorum) + 1
        tag = message_tag(message)
        session.leased[tag] = queue
        consumer: str | None = None
        standing = session.standing
        delivery = message.delivery
        if standing is not None and isinstance(delivery, spec.Basic.Deliver) and (
            delivery.consumer_tag == standing.tag
        ):
            consumer = standing.tag
            standing.leased += 1
        receipt = AMQPReceipt(session.generation, tag, properties, consumer)
        return Delivery(queue, message.body, deliveries, receipt)


def _full(session: Session) -> bool:
    """True when the standing consumer's leases fill its prefetch: RabbitMQ sends it nothing."""
    standing = session.standing
    return standing is not None and standing.leased >= standing.prefetch
