"""Small helpers the contract tests share: build messages, wait with a deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from hurtle.brokers import Broker, Delivery, Message, QueueStats, from_url

T = TypeVar("T")

WAIT_LIMIT = 10.0  # seconds: a bound on every wait, never reached when the broker is right
SHORT_LEASE = 0.5  # seconds: for the tests that need a lease to expire
LONG_LEASE = 30.0  # seconds: a lease that never expires during a test
# Brokers that keep time in whole milliseconds (Redis: idle times, BLOCK) may act up to
# a millisecond before the client's clock says the time has come.
CLOCK_SLACK = 0.005  # seconds


@dataclass(frozen=True)
class Backend:
    """Which broker this run of a test is for, and the URL of its store."""

    name: str
    url: str


class Brokers:
    """Opens broker objects on one store, as separate workers would, and closes them.

    Two objects with different visibility timeouts on one store let a test
    lease a message briefly with one and watch it with the other.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._opened: list[Broker] = []

    async def open(self, visibility_timeout: float = LONG_LEASE) -> Broker:
        broker = from_url(self.url, visibility_timeout=visibility_timeout)
        self._opened.append(broker)
        await broker.connect()
        return broker

    async def close_all(self) -> None:
        for broker in reversed(self._opened):
            await broker.close()


def messages(queue: str, *bodies: bytes, eta: float | None = None) -> list[Message]:
    return [Message(uuid.uuid4().hex, queue, body, eta) for body in bodies]


def bodies(deliveries: Sequence[Delivery]) -> list[bytes]:
    return [d.body for d in deliveries]


async def fetch_one(broker: Broker, queue: str) -> Delivery:
    """Wait (at most ``WAIT_LIMIT``) for the next message of ``queue`` and lease it."""
    got = await broker.fetch([queue], 1, WAIT_LIMIT)
    assert len(got) == 1, f"no message came on {queue!r} within {WAIT_LIMIT}s"
    return got[0]


async def take_bodies(broker: Broker, queue: str, count: int) -> list[bytes]:
    """Take ``count`` messages of ``queue`` as a worker does, fetching and acknowledging
    until they came (a fetch may bring fewer than are ready: on RabbitMQ, what its
    consumer's prefetch allows), at most ``WAIT_LIMIT``; return their bodies, sorted."""
    got: list[bytes] = []
    deadline = time.monotonic() + WAIT_LIMIT
    while len(got) < count and time.monotonic() < deadline:
        deliveries = await broker.fetch([queue], count - len(got), 0.1)
        await broker.ack(deliveries)
        got += bodies(deliveries)
    assert len(got) == count, f"{len(got)} of {count} messages came on {queue!r} within {WAIT_LIMIT}s"
    return sorted(got)


async def counts(broker: Broker, queue: str) -> QueueStats:
    (stats,) = await broker.stats([queue])
    return stats


def in_flight(broker: Broker, count: int) -> int | None:
    """The ``in_flight`` that ``stats`` reports while ``count`` messages are leased:
    None from a broker that cannot count every consumer's leases."""
    return count if broker.counts_all_in_flight else None


def queue_age(broker: Broker, seconds: float) -> float | None:
    """The ``oldest_ready_age`` that ``stats`` reports when it is ``seconds``: None
    from a broker that cannot know it."""
    return seconds if broker.knows_queue_age else None


async def eventually(check: Callable[[], Awaitable[T]], what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``WAIT_LIMIT``."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {WAIT_LIMIT}s waiting for {what}"
        await asyncio.sleep(0.01)  # the polling interval, not a wait for the condition


async def dead_letter_each(broker: Broker, queue: str, *bodies: bytes, reason: str = "bad") -> list[str]:
    """Enqueue each body and dead-letter it, one after the other (so in this order);
    return the ids the messages were sent with."""
    sent = []
    for body in bodies:
        (message,) = messages(queue, body)
        await broker.enqueue([message])
        await broker.dead_letter(await fetch_one(broker, queue), f"{reason} {body.decode()}")
        sent.append(message.id)
    return sent
