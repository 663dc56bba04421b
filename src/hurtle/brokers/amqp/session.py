"""The RabbitMQ broker's state of one connection: what came, what is leased, and by whom.

A ``Session`` lives as long as its connection: RabbitMQ puts a channel's unacked
messages back when it closes, so a new connection starts a new session (``Puller.session_of``)
and a receipt of an old one settles nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from hurtle.brokers.amqp.acks import Unacked
from hurtle.brokers.amqp.link import AMQPConn

Taken = list[tuple[str, DeliveredMessage]]  # (queue, message)
#: Publish a dead letter, confirmed: (conn, queue, body, original properties, reason).
PublishDead = Callable[[AMQPConn, str, bytes, spec.Basic.Properties, str], Awaitable[None]]


@dataclass(slots=True, eq=False)
class AMQPReceipt:
    """Where a delivery came from: its connection's generation, its delivery tag and,
    for a standing consumer's, that consumer's tag."""

    generation: int
    tag: int
    properties: spec.Basic.Properties
    consumer: str | None = None
    settled: bool = False


@dataclass(slots=True)
class Standing:
    """A consumer that outlives the fetch that made it (fetches of one queue)."""

    tag: str
    queue: str
    prefetch: int
    leased: int = 0  # its deliveries fetched and not settled: they use up prefetch

    def bounded_by(self, queue: str, room: int) -> bool:
        """True while all it may still buffer (its free prefetch) fits in ``room`` free slots."""
        return queue == self.queue and self.prefetch - self.leased <= room


@dataclass
class Session:
    """The state of one connection; RabbitMQ puts its unacked messages back when it goes."""

    generation: int
    channel: aiormq.Channel | None
    buffer: dict[str, deque[DeliveredMessage]] = field(default_factory=dict)  # came, not yet fetched
    tags: dict[str, str] = field(default_factory=dict)  # consumer tag -> queue
    active: list[str] = field(default_factory=list)  # per-fetch consumer tags not cancelled yet
    standing: Standing | None = None
    qos: int = 0  # the prefetch the next consumer on ``sub`` gets
    leased: dict[int, str] = field(default_factory=dict)  # delivery tag -> queue, fetched and unsettled
    unacked: Unacked = field(default_factory=Unacked)  # every delivery tag on ``sub`` not settled


def message_tag(message: DeliveredMessage) -> int:
    tag = message.delivery_tag
    assert tag is not None, "a delivery (or get-ok) always has a tag"
    return tag
