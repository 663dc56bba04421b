"""Look at what an app sent, straight from its memory broker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hurtle import App
from hurtle.brokers import DeadLetter, QueueStats
from hurtle.brokers.memory import MemoryBroker
from hurtle.envelope import Envelope, decode
from hurtle.worker.consumer import Consumer

MakeApp = Callable[..., App]  # the make_app fixture: make_app(**settings) -> App
RunWorker = Callable[..., Awaitable[Consumer]]  # the worker fixture (tests/conftest.py)


def broker_of(app: App) -> MemoryBroker:
    """Another broker object on the app's store (memory brokers of one URL share it)."""
    return MemoryBroker(app.broker_url)


async def sent(app: App, queue: str = "default") -> list[Envelope]:
    """The ready messages of ``queue``, decoded, oldest first; left in the queue."""
    broker = broker_of(app)
    deliveries = await broker.fetch([queue], 1000, 0)
    await broker.release(deliveries)
    return [decode(d.body) for d in deliveries]


async def counts(app: App, queue: str = "default") -> QueueStats:
    (stats,) = await broker_of(app).stats([queue])
    return stats


async def dead_letters(app: App) -> list[DeadLetter]:
    """Every dead letter, oldest first."""
    return list(reversed(await broker_of(app).dead_letters()))
