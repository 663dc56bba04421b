"""Counting what RabbitMQ does not count, for the RabbitMQ broker's fetch.

RabbitMQ puts a consumer's unacked messages back when its
channel closes: a worker that died, a lost connection. A quorum queue counts
those returns (``x-delivery-count``); a classic queue only flags them
``redelivered``, so such a message is published again with the count in the
header ``hurtle-deliveries`` and the flagged copy acknowledged: the copy comes
later, at the back of the queue, counted.

Messages a worker will not start (buffered when it stops fetching) go back the
same way, published again uncounted (``give_back``): closing with them unacked
would flag them redelivered, and so count them.
"""

from __future__ import annotations

import logging
from collections import deque

from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from hurtle.brokers.amqp.headers import (
    DELIVERIES,
    copy_properties,
    deliveries_before,
    own_headers,
    unreadable,
)
from hurtle.brokers.amqp.link import AMQPConn, Names
from hurtle.brokers.amqp.publish import publish_all
from hurtle.brokers.amqp.session import PublishDead, Session, Taken, message_tag

log = logging.getLogger("hurtle.amqp")


class Recounting:
    """The ``Puller``'s side that settles what must not be handed out, and gives back."""

    names: Names
    quorum: bool
    session: Session
    _publish_dead: PublishDead

    async def _sift(self, conn: AMQPConn, session: Session, taken: Taken) -> Taken:
        """Settle what must not be handed out; return the rest. A message whose delivery
        headers cannot be read is dead-lettered with the reason; a classic queue's
        redelivery is published again with its count and the old copy acked. On an
        error, every message not settled yet goes back to the buffer first."""
        quorum = self.quorum
        bad = [(q, m, why) for q, m in taken if (why := unreadable(m.header.properties, quorum=quorum))]
        if bad:
            unfit = {message_tag(m) for _, m, _ in bad}
            taken = [(q, m) for q, m in taken if message_tag(m) not in unfit]
        again = [(q, m) for q, m in taken if self._redelivered_uncounted(m)]
        if not bad and not again:
            return taken
        settled: set[int] = set()
        try:
            for queue, message, why in bad:
                await self._dead_letter(conn, session, queue, message, why)
                settled.add(message_tag(message))
            if again:
                failed, error = await self._publish_again(conn, session, again)
                unconfirmed = {message_tag(m) for _, m in failed}
                settled.update(tag for _, m in again if (tag := message_tag(m)) not in unconfirmed)
                if error is not None:
                    raise error
        except BaseException:
            left = [(q, m) for q, m, _ in bad] + taken
            self._restore(session, [(q, m) for q, m in left if message_tag(m) not in settled])
            raise
        if again:
            log.info("counted %d redelivered message(s) (a worker died or a connection broke)", len(again))
        return [(q, m) for q, m in taken if message_tag(m) not in settled]

    async def _dead_letter(
        self, conn: AMQPConn, session: Session, queue: str, message: DeliveredMessage, why: str
    ) -> None:
        """Dead-letter a message hurtle cannot count (published confirmed, then acked)."""
        reason = f"unreadable message headers: {why}"
        log.error("dead-lettered a message from queue %r: %s", queue, reason)
        await self._publish_dead(conn, queue, message.body, message.header.properties, reason)
        await session.unacked.ack(conn.sub, [message_tag(message)])

    @staticmethod
    def _restore(session: Session, taken: Taken) -> None:
        """Put taken messages back at the front of their buffers, in their order."""
        for queue, message in reversed(taken):
            session.buffer.setdefault(queue, deque()).appendleft(message)

    def _redelivered_uncounted(self, message: DeliveredMessage) -> bool:
        """Flagged redelivered by a classic queue (a quorum queue counts in ``x-delivery-count``)."""
        delivery = message.delivery
        redelivered = isinstance(delivery, (spec.Basic.Deliver, spec.Basic.GetOk)) and delivery.redelivered
        return bool(redelivered) and not self.quorum

    def _counted(self, message: DeliveredMessage) -> spec.Basic.Properties:
        """A message not handed out, published again: the deliveries behind it so far,
        plus the one a classic queue's redelivered flag stands for (one whose count
        cannot be read goes as it came: the fetch that takes it dead-letters it)."""
        properties = message.header.properties
        if unreadable(properties, quorum=self.quorum) is not None:
            return copy_properties(properties, own_headers(properties))
        counted = deliveries_before(properties, quorum=self.quorum)
        return uncounted(properties, counted + (1 if self._redelivered_uncounted(message) else 0))

    async def give_back(self, conn: AMQPConn) -> None:
        """Publish the buffered (never fetched) messages again, uncounted, and ack them:
        closing with them unacked would flag them redelivered, and so count them."""
        session = self.session
        if session.generation != conn.generation:
            return
        buffered = [(q, m) for q, messages in session.buffer.items() for m in messages]
        session.buffer.clear()
        if not buffered:
            return
        try:
            failed, error = await self._publish_again(conn, session, buffered)
        except BaseException:
            self._restore(session, buffered)  # still ours, unacked: never stranded
            raise
        for queue, message in failed:  # still ours, unacked: a later fetch takes them, or a close
            session.buffer.setdefault(queue, deque()).append(message)
        if error is not None:
            raise error

    async def _publish_again(
        self, conn: AMQPConn, session: Session, taken: Taken
    ) -> tuple[Taken, BaseException | None]:
        """Publish each again (counted, see ``_counted``) and ack the copy we hold once
        RabbitMQ confirmed the new one; those not confirmed are returned, unacked."""
        work = self.names.work
        outgoing = [("", work(queue), message.body, self._counted(message)) for queue, message in taken]
        results = await publish_all(conn.pub, outgoing)
        outcomes = list(zip(taken, results, strict=True))
        done = [message_tag(message) for (_, message), error in outcomes if error is None]
        failed = [entry for entry, error in outcomes if error is not None]
        if done:
            await session.unacked.ack(conn.sub, done)
        return failed, next((error for error in results if error is not None), None)


def uncounted(properties: spec.Basic.Properties, counted: int) -> spec.Basic.Properties:
    """Properties to publish a message again with ``counted`` deliveries behind it."""
    return copy_properties(properties, own_headers(properties) | {DELIVERIES: counted})
