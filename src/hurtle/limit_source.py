"""Where an app's limits (``hurtle.limit_store``) are kept: ``find_limits``.

The broker's own store, else that of the app's result store URL, so an app on
RabbitMQ with ``results="redis://..."`` keeps its limits in that Redis. None
when neither keeps them: a worker then refuses to run limited tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hurtle.brokers import Broker, keeping_broker
from hurtle.limit_store import LimitStore, RateTake
from hurtle.urls import SecretURL


def find_limits(broker_url: str | SecretURL, results_url: str | SecretURL | None) -> BrokerLimits | None:
    """The broker's limit store, else the result store's, else None (RabbitMQ with no
    result store that keeps them); closing it closes the broker it came from. Makes
    no connection."""
    found = keeping_broker(broker_url, results_url, lambda broker: broker.limit_store())
    return None if found is None else BrokerLimits(found[1], found[0])


class BrokerLimits(LimitStore):
    """A broker's limit store, made for the limits alone: closing it closes the broker."""

    def __init__(self, store: LimitStore, broker: Broker) -> None:
        self.store = store
        self.broker = broker

    async def take_rate(self, key: str, interval: float, burst: int, count: int) -> RateTake:
        return await self.store.take_rate(key, interval, burst, count)

    async def acquire(self, key: str, holders: Sequence[str], limit: int, ttl: float) -> int:
        return await self.store.acquire(key, holders, limit, ttl)

    async def renew(self, permits: Mapping[str, Sequence[str]], ttl: float) -> None:
        await self.store.renew(permits, ttl)

    async def release(self, permits: Mapping[str, Sequence[str]]) -> None:
        await self.store.release(permits)

    async def held(self, key: str) -> int:
        return await self.store.held(key)

    async def close(self) -> None:
        await self.broker.close()
