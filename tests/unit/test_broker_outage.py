"""A worker whose broker goes away retries with backoff, and gives up past a limit."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

import hurtle
from hurtle.brokers import Delivery
from hurtle.brokers.memory import MemoryBroker
from hurtle.client import Connection
from hurtle.errors import BrokerError
from hurtle.worker.consumer import EXIT_BROKER_LOST, EXIT_OK, Consumer, WorkerConfig


class FlakyBroker(MemoryBroker):
    """A memory broker whose first ``failures`` fetches raise, like a dropped connection."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url, visibility_timeout=30.0)
        self.failures = failures

    async def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        if self.failures != 0:
            self.failures -= 1
            raise BrokerError("connection refused")
        return await super().fetch(queues, max_count, timeout)


def consumer_for(app: hurtle.App, broker: FlakyBroker, max_disconnect: float) -> Consumer:
    config = WorkerConfig(burst=True, fetch_timeout=0.01, max_disconnect=max_disconnect)
    return Consumer(app, Connection(broker, broker), config)


async def test_a_worker_rides_out_a_short_broker_outage_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = hurtle.App("memory://outage-short")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    handle = await add.send_async(1, 2)
    broker = FlakyBroker("memory://outage-short", failures=2)
    with caplog.at_level(logging.WARNING, logger="hurtle.worker"):
        assert await consumer_for(app, broker, max_disconnect=60).run() == EXIT_OK
    assert await handle.result_async(timeout=1) == 3
    assert "broker error (connection refused); retrying" in caplog.text
    assert "broker reachable again" in caplog.text


async def test_a_worker_exits_non_zero_when_the_broker_stays_away() -> None:
    app = hurtle.App("memory://outage-long")
    broker = FlakyBroker("memory://outage-long", failures=-1)  # never comes back
    assert await consumer_for(app, broker, max_disconnect=0.2).run() == EXIT_BROKER_LOST
