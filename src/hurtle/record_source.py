"""Where an app's records (``hurtle.records``) are kept: ``open_records``.

The broker's own store, else that of the app's result store URL, so an app on
RabbitMQ with ``results="redis://..."`` keeps its worker registry in that Redis.
None when neither keeps records: the registry is then off, and ``hurtle status``
says how to turn it on.
"""

from __future__ import annotations

from collections.abc import Sequence

from hurtle.brokers import Broker, broker_class, keeping_broker
from hurtle.errors import ConfigurationError
from hurtle.records import RecordStore
from hurtle.urls import SecretURL


def open_records(broker_url: str | SecretURL, results_url: str | SecretURL | None) -> BrokerRecords | None:
    """The record store to use, or None when neither URL's broker keeps records;
    closing it closes the broker connection it came from. Makes no connection
    (brokers connect on first use)."""
    found = keeping_broker(broker_url, results_url, lambda broker: broker.record_store())
    return None if found is None else BrokerRecords(found[1], found[0])


def keeps_records(broker_url: str | SecretURL, results_url: str | SecretURL | None) -> bool:
    """Whether the broker or the result store's broker keeps records, read off their
    classes (nothing is made or connected): cheap enough to ask at each send."""
    urls = [broker_url] + ([results_url] if results_url is not None else [])
    return any(broker_class(url).record_store is not Broker.record_store for url in urls)


def require_records(broker_url: str | SecretURL, results_url: str | SecretURL | None, feature: str) -> None:
    """Raise ``ConfigurationError`` naming ``feature`` when no store of the app keeps
    records: said where the feature is asked for, not found missing later."""
    if not keeps_records(broker_url, results_url):
        scheme = SecretURL(broker_url).scheme
        raise ConfigurationError(
            f"{feature} needs a store that keeps records, and {scheme} keeps none: give the app"
            " a result store that does, e.g. App(..., results='redis://...') or HURTLE_RESULTS"
        )


class BrokerRecords(RecordStore):
    """A broker's record store, made for the records alone: closing it closes the broker."""

    def __init__(self, store: RecordStore, broker: Broker) -> None:
        self.store = store
        self.broker = broker

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        await self.store.put(key, value, ttl)

    async def get_all(self, prefix: str) -> dict[str, bytes]:
        return await self.store.get_all(prefix)

    async def get(self, key: str) -> bytes | None:
        return await self.store.get(key)

    async def put_if(self, key: str, value: bytes, ttl: float, *, current: bytes | None) -> bool:
        return await self.store.put_if(key, value, ttl, current=current)

    async def gather(self, key: str, index: int, value: bytes, ttl: float) -> tuple[bool, int]:
        return await self.store.gather(key, index, value, ttl)

    async def gather_many(self, items: Sequence[tuple[str, int, bytes, float]]) -> list[tuple[bool, int]]:
        return await self.store.gather_many(items)

    async def gathered(self, key: str) -> dict[int, bytes]:
        return await self.store.gathered(key)

    async def delete(self, keys: Sequence[str]) -> None:
        await self.store.delete(keys)

    async def close(self) -> None:
        await self.broker.close()
