"""Where an app's tallies (``hurtle.tallies``) are kept: ``open_tallies``.

In the order asked: a directory given by the user (``--profile-dir``); else the
broker's own store; else that of the app's result store URL, so an app on
RabbitMQ with ``results="redis://..."`` keeps its profiles in that Redis.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from hurtle.brokers import Broker, keeping_broker
from hurtle.errors import ConfigurationError
from hurtle.tallies import TallyStore
from hurtle.tally_dir import DirectoryTallies
from hurtle.urls import SecretURL


def open_tallies(
    broker_url: str | SecretURL,
    results_url: str | SecretURL | None,
    directory: str | os.PathLike[str] | None,
) -> TallyStore:
    """The tally store to use; closing it closes the broker connection it came from.
    Makes no connection (brokers connect on first use). Raises ``ConfigurationError``,
    saying what to pass, when none of them keeps tallies."""
    if directory is not None:
        return DirectoryTallies(directory)
    found = find_tallies(broker_url, results_url)
    if found is not None:
        return found
    urls = [SecretURL(broker_url)] + ([SecretURL(results_url)] if results_url is not None else [])
    names = " nor ".join(dict.fromkeys(url.scheme for url in urls))
    subject = f"neither {names}" if " nor " in names else names
    raise ConfigurationError(
        f"{subject} keeps no profiles: pass --profile-dir DIR,"
        " or give the app a result store that does (App(results='redis://...'))"
    )


def find_tallies(broker_url: str | SecretURL, results_url: str | SecretURL | None) -> BrokerTallies | None:
    """The broker's tally store, else the result store's, else None (RabbitMQ with no
    result store that keeps them); closing it closes the broker it came from."""
    found = keeping_broker(broker_url, results_url, lambda broker: broker.tally_store())
    return None if found is None else BrokerTallies(found[1], found[0])


class BrokerTallies(TallyStore):
    """A broker's tally store, made for the tallies alone: closing it closes the broker."""

    def __init__(self, store: TallyStore, broker: Broker) -> None:
        self.store = store
        self.broker = broker

    async def add(
        self, key: str, counts: Mapping[str, int], ttl: float, *, highest: Mapping[str, int] | None = None
    ) -> None:
        await self.store.add(key, counts, ttl, highest=highest)

    async def read(self, key: str) -> dict[str, int]:
        return await self.store.read(key)

    async def read_many(self, keys: Sequence[str]) -> list[dict[str, int]]:
        return await self.store.read_many(keys)

    async def keys(self, prefix: str) -> list[str]:
        return await self.store.keys(prefix)

    async def delete(self, keys: Sequence[str]) -> None:
        await self.store.delete(keys)

    async def close(self) -> None:
        await self.broker.close()
