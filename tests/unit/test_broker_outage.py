"""A worker whose broker goes away retries with backoff, and gives up past a limit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import pytest

import hurtle
from hurtle.brokers import Delivery
from hurtle.brokers.memory import MemoryBroker
from hurtle.client import Connection
from hurtle.errors import BrokerDataError, BrokerError
from hurtle.worker.consumer import EXIT_BROKER_LOST, EXIT_OK, Consumer, WorkerConfig


class FlakyBroker(MemoryBroker):
    """A memory broker whose first ``failures`` fetches raise ``error``, by default
    as a dropped connection would."""

    def __init__(self, url: str, failures: int, error: Exception | None = None) -> None:
        super().__init__(url, visibility_timeout=30.0)
        self.failures = failures
        self.error = error or BrokerError("connection refused")

    async def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        if self.failures != 0:
            self.failures -= 1
            raise self.error
        return await super().fetch(queues, max_count, timeout)


class SlowlyMendedBroker(FlakyBroker):
    """Fetches raise ``error`` until ``mended`` is set (a test sets it, after waiting)."""

    def __init__(self, url: str, error: Exception) -> None:
        super().__init__(url, failures=0, error=error)
        self.mended = asyncio.Event()
        self.attempts = 0

    async def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        if not self.mended.is_set():
            self.attempts += 1
            raise self.error
        return await super().fetch(queues, max_count, timeout)


def consumer_for(app: hurtle.App, broker: FlakyBroker, max_disconnect: float) -> Consumer:
    config = WorkerConfig(burst=True, fetch_timeout=0.01, max_disconnect=max_disconnect)
    return Consumer(app, Connection(broker, broker.result_store()), config)


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


@pytest.mark.parametrize(
    "error",
    [BrokerDataError("WRONGTYPE Operation against a key holding the wrong kind of value"),
     ValueError("a record the broker code could not parse")],
    ids=["data", "code"],
)
async def test_an_error_that_is_no_outage_never_makes_the_worker_exit_as_if_the_broker_were_gone(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    app = hurtle.App(f"memory://outage-data-{type(error).__name__}")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    handle = await add.send_async(1, 2)
    broker = SlowlyMendedBroker(app.broker_url, error)
    max_disconnect = 0.2
    consumer = consumer_for(app, broker, max_disconnect=max_disconnect)
    with caplog.at_level(logging.WARNING, logger="hurtle.worker"):
        run = asyncio.create_task(consumer.run())
        started = time.monotonic()
        # The errors last longer than max_disconnect, over several attempts.
        while broker.attempts < 3 or time.monotonic() - started <= 2 * max_disconnect:
            assert not run.done(), f"the worker stopped: exit code {run.result()}"
            await asyncio.sleep(0.01)
        broker.mended.set()
        assert await asyncio.wait_for(run, 10) == EXIT_OK
    assert await handle.result_async(timeout=1) == 3
    assert "not an outage" in caplog.text
    assert "unreachable" not in caplog.text
