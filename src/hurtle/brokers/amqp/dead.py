"""Dead letters on RabbitMQ: one durable classic queue per hurtle queue, fed by the
dead-letter exchange ``<prefix>.dead``.

Two kinds arrive there. hurtle's own (``dead_letter``): the message published
to the exchange with headers ``hurtle-reason``, ``hurtle-failed-at`` and
``hurtle-dead-id``, then acknowledged. RabbitMQ's own: the work queue's
``x-dead-letter-exchange`` catches what RabbitMQ dead-letters (a quorum queue's
``x-delivery-limit``, a consumer's reject), so nothing is ever dropped; the
reason is then read from ``x-death``.

A queue cannot be read without taking its messages, so listing takes them all
with ``basic.get`` on a channel of its own and closes it, which puts them back
(browsing counts no delivery: the dead queue is classic, whatever the work
queues are, and has no delivery limit). Two listings at the same moment see
each other's share missing. Ids are ``<queue>:<hurtle-dead-id>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from hurtle.brokers.amqp.headers import (
    DELIVERIES,
    HURTLE_AT,
    UNREADABLE,
    copy_properties,
    own_headers,
    writable,
)
from hurtle.brokers.amqp.link import AMQPConn, AMQPLink, Names, publish
from hurtle.brokers.amqp.topology import QUEUE_HEADER, Topology
from hurtle.brokers.base import BeforeMove, DeadLetter, Requeued, unknown_ids

REASON_HEADER = "hurtle-reason"
FAILED_AT_HEADER = "hurtle-failed-at"
DEAD_ID_HEADER = "hurtle-dead-id"
_REASON_LIMIT = 16_000  # characters: headers share one frame (RabbitMQ's frame_max, 128 KiB)
_DEAD_HEADERS = (REASON_HEADER, FAILED_AT_HEADER, DEAD_ID_HEADER, QUEUE_HEADER)
_BIT = re.compile(r"hurtle-d[0-9]+")  # the delay bits (topology.bit_header)

Found = list[tuple[DeadLetter, DeliveredMessage]]


async def publish_dead(
    topology: Topology, conn: AMQPConn, queue: str, body: bytes, original: spec.Basic.Properties, reason: str
) -> None:
    """Publish a dead letter through the dead-letter exchange, confirmed. A header
    pamqp cannot write as it came (a double, say) is kept as text: the reason says which."""
    await topology.ensure_queue(conn, queue)
    kept, changed = writable({k: v for k, v in own_headers(original).items() if k != UNREADABLE})
    if changed:
        reason += f"\n(headers rewritten to be sent again: {'; '.join(changed)})"
    if len(reason) > _REASON_LIMIT:
        reason = reason[:_REASON_LIMIT] + "\n... (cut)"
    headers = kept | {
        REASON_HEADER: reason,
        FAILED_AT_HEADER: repr(time.time()),
        DEAD_ID_HEADER: uuid.uuid4().hex,
        QUEUE_HEADER: queue,
    }
    properties = copy_properties(original, headers)
    await publish(conn.pub, topology.names.dead_exchange, topology.names.dead(queue), body, properties)


class AMQPDeadLetters:
    """The dead letters of an ``AMQPBroker``'s queues, read and moved on the broker's link."""

    def __init__(self, names: Names, link: AMQPLink, topology: Topology) -> None:
        self.names = names
        self._link = link
        self._topology = topology

    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest first (by failed_at); every dead letter is read to find them."""

        async def collect(conn: AMQPConn) -> list[DeadLetter]:
            letters: list[DeadLetter] = []
            for name in await self._queues(conn, queue):
                async with self._browsing(conn, name) as (_, found):
                    letters += [letter for letter, _ in found]
            return letters

        letters = await self._link.call(collect)
        letters.sort(key=lambda letter: letter.failed_at, reverse=True)
        return letters[:limit]

    async def requeue_dead(
        self, ids: Sequence[str] | None = None, before_move: BeforeMove | None = None
    ) -> int:
        """Publish each chosen dead letter to its work queue afresh (no delivery count,
        no ``x-death``), confirmed, then delete it. A crash between the two leaves a copy
        in both places, never in neither."""
        if ids is not None:
            return (await self.requeue_dead_by_id(ids, before_move)).count
        moved: list[tuple[str, str]] = []  # kept across the link's retries, as below

        async def move(conn: AMQPConn) -> None:
            for name in await self._queues(conn, None):
                moved.extend(await self._requeue(conn, name, lambda letter: True, before_move))

        await self._link.call(move)
        return len(moved)

    async def requeue_dead_by_id(self, ids: Sequence[str], before_move: BeforeMove | None = None) -> Requeued:
        """As ``requeue_dead``. A task id can be in any queue's dead letters: while
        one is unknown, every dead-letter queue is browsed for it."""
        # Kept across the link's retries: what moved before a lost connection stays moved.
        moved: list[tuple[str, str]] = []

        async def move(conn: AMQPConn) -> None:
            named = {n.rpartition(":")[0] for n in ids if n.rpartition(":")[0]}
            for name in named:
                moved.extend(await self._requeue(conn, name, lambda letter: letter.id in ids, before_move))
            rest = set(unknown_ids(ids, moved))
            for name in await self._queues(conn, None) if rest else ():
                by_task_id = await self._requeue(conn, name, lambda d: d.message_id in rest, before_move)
                moved.extend(by_task_id)

        await self._link.call(move)
        return Requeued.of(ids, moved)

    async def _requeue(
        self,
        conn: AMQPConn,
        queue: str,
        chosen: Callable[[DeadLetter], bool],
        before_move: BeforeMove | None = None,
    ) -> list[tuple[str, str]]:
        """Move the ``chosen`` dead letters of ``queue``; return each one's (dead letter
        id, message id)."""
        async with self._browsing(conn, queue) as (channel, found):
            picked = [(letter, m) for letter, m in found if chosen(letter)]
            if not picked:
                return []
            task_ids = [letter.message_id for letter, _ in picked if letter.message_id]
            if before_move is not None and task_ids:
                await before_move(list(dict.fromkeys(task_ids)))
            await self._topology.ensure_queue(conn, queue)
            await asyncio.gather(*(
                publish(conn.pub, "", self.names.work(queue), m.body, _fresh(m)) for _, m in picked
            ))
            for _, message in picked:
                assert message.delivery_tag is not None
                await channel.basic_ack(message.delivery_tag)
            return [(letter.id, letter.message_id) for letter, _ in picked]

    async def purge_dead(self, queue: str | None = None) -> int:
        async def purge(conn: AMQPConn) -> int:
            return sum([await conn.purge(self.names.dead(name)) for name in await self._queues(conn, queue)])

        return await self._link.call(purge)

    async def _queues(self, conn: AMQPConn, queue: str | None) -> list[str]:
        return [queue] if queue is not None else await self._topology.known_queues(conn)

    @contextlib.asynccontextmanager
    async def _browsing(self, conn: AMQPConn, queue: str) -> AsyncIterator[tuple[aiormq.Channel, Found]]:
        """Every dead letter of ``queue``, taken on a channel of its own; closing it on
        the way out puts back all that were not acknowledged meanwhile."""
        dead = self.names.dead(queue)
        channel = await conn.channel()
        try:
            found: Found = []
            if await conn.count(dead) is not None:
                while True:
                    message = await channel.basic_get(dead)
                    if not isinstance(message.delivery, spec.Basic.GetOk):
                        break
                    found.append((_letter(queue, message), message))
            yield channel, found
        finally:
            if not channel.is_closed:
                await channel.close()


def _letter(queue: str, message: DeliveredMessage) -> DeadLetter:
    headers: dict[str, Any] = message.header.properties.headers or {}
    deaths = headers.get("x-death") or [{}]
    death: dict[str, Any] = deaths[0] if isinstance(deaths[0], dict) else {}
    dead_id = _text(headers.get(DEAD_ID_HEADER))
    if not dead_id:  # dead-lettered by RabbitMQ: an id that stays the same from listing to listing
        seed = message.body + repr((death.get("time"), message.header.properties.message_id)).encode()
        dead_id = hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:20]
    reason = _text(headers.get(REASON_HEADER))
    if not reason:
        reason = (
            f"dead-lettered by RabbitMQ: {_text(death.get('reason')) or 'unknown reason'}"
            f" (from {_text(death.get('queue')) or 'an unknown queue'})"
        )
    failed_at, message_id = _failed_at(headers, death), _text(message.header.properties.message_id)
    return DeadLetter(f"{queue}:{dead_id}", queue, message.body, reason, failed_at, message_id)


def _failed_at(headers: dict[str, Any], death: dict[str, Any]) -> float:
    try:
        return float(_text(headers.get(FAILED_AT_HEADER)))
    except ValueError:
        pass
    when = death.get("time")
    if isinstance(when, datetime.datetime):
        return when.replace(tzinfo=when.tzinfo or datetime.timezone.utc).timestamp()
    return 0.0


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _fresh(message: DeliveredMessage) -> spec.Basic.Properties:
    """A requeued dead letter's properties: as first sent, ready now."""
    properties = message.header.properties
    dropped = {*_DEAD_HEADERS, DELIVERIES, UNREADABLE}
    headers = {k: v for k, v in own_headers(properties).items() if k not in dropped and not _BIT.fullmatch(k)}
    headers[HURTLE_AT] = int(time.time() * 1_000_000)
    return copy_properties(properties, headers)
