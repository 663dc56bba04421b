"""What the dashboard reads from, opened once for the server's life.

The app's broker and result store (``hurtle.client.Connection``), its record
store (the worker registry, schedules) and its tally store (the task history,
deploy markers, profiles): the broker's own where it keeps them, else the result
store's, as ``hurtle status`` finds them. Nothing is copied or cached beyond
a few minutes of queue depths, sampled as pages ask for them: the broker holds
the data, the dashboard only reads it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from hurtle.app import App
from hurtle.brokers import Broker
from hurtle.client import Connection
from hurtle.observe.deploys import DeployMark, read_deploys
from hurtle.observe.registry import WorkerRecord, read_workers
from hurtle.records import RecordStore
from hurtle.tallies import TallyStore
from hurtle.tally_source import find_tallies
from hurtle.urls import SecretURL

DEPLOYS_KEPT = 30.0  # seconds the deploy markers read are reused: a read lists keys (a SCAN on Redis)
DEPTH_EVERY = 5.0  # seconds between two kept samples of the queues' depths
DEPTH_KEPT = 720  # samples kept: an hour at DEPTH_EVERY


@dataclass
class DepthSamples:
    """Queue depths as pages read them, at most one sample per ``DEPTH_EVERY``
    seconds: the depth chart, since the broker keeps no depth over time."""

    samples: deque[tuple[float, dict[str, int]]] = field(default_factory=lambda: deque(maxlen=DEPTH_KEPT))

    def add(self, at: float, depths: dict[str, int]) -> None:
        if not self.samples or at - self.samples[-1][0] >= DEPTH_EVERY:
            self.samples.append((at, depths))


class Source:
    """The app's stores, opened by ``open`` and closed by ``close``."""

    def __init__(
        self, app: App, connection: Connection, records: RecordStore | None, tallies: TallyStore | None,
        owned: list[Broker], broker_url: SecretURL,
    ) -> None:
        self.app = app
        self.connection = connection
        self.records = records
        self.tallies = tallies
        #: The task history is read only where it is written: a store keeps tallies and
        #: the app's ``history_ttl`` is not 0.
        self.history_kept = app.history_ttl > 0 and tallies is not None
        self.broker_url = broker_url
        self.depths = DepthSamples()
        self._owned = owned
        self._deploys: tuple[float, list[DeployMark]] | None = None

    @classmethod
    def open(cls, app: App, connection: Connection, broker_url: SecretURL) -> Source:
        """The stores of ``app`` around ``connection``: the broker's own, else a
        connection of their own to the result store's broker (closed with the source)."""
        owned: list[Broker] = []
        records = connection.records  # the broker's, else the result store's (make_connection)
        tallies = connection.broker.tally_store()
        if tallies is None:
            found_tallies = find_tallies(broker_url, app.results_url)
            if found_tallies is not None:
                owned.append(found_tallies.broker)
                tallies = found_tallies.store
        return cls(app, connection, records, tallies, owned, broker_url)

    @property
    def broker(self) -> Broker:
        return self.connection.broker

    async def workers(self) -> list[WorkerRecord] | None:
        """Every living worker process; None where no store of the app keeps them."""
        return None if self.records is None else await read_workers(self.records)

    async def deploys(self) -> list[DeployMark]:
        """The deploy markers kept, oldest first, read again every ``DEPLOYS_KEPT``
        seconds: listing them lists keys, which costs what the store holds (a SCAN
        of every key on Redis), and a marker is written once a release."""
        if self.tallies is None or not self.history_kept:
            return []
        now = time.monotonic()
        if self._deploys is None or now - self._deploys[0] > DEPLOYS_KEPT:
            self._deploys = (now, await read_deploys(self.tallies))
        return self._deploys[1]

    def now(self) -> float:
        return time.time()

    async def close(self) -> None:
        await self.connection.close()
        for broker in self._owned:
            await broker.close()
