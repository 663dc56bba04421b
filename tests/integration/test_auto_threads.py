"""``-t auto`` on a real broker: the pool grows for tasks that wait, and stays small for tasks that compute.

In-process consumers on the shared Redis (a key prefix of each test's own),
so the test reads the pool's size from the consumer as it changes.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import hurtle
from hurtle.testing import worker_connection
from hurtle.worker.consumer import Consumer, WorkerConfig
from tests.redis_server import unique_redis_url

pytestmark = pytest.mark.slow


async def run_auto(app: hurtle.App, queue: str, stop_when_size_above: int | None = None) -> list[int]:
    """Run a ``-t auto`` consumer over ``queue`` until it is drained (or its pool
    grew past ``stop_when_size_above``); return every size its pool took, in order."""
    config = WorkerConfig(queues=[queue], threads=8, auto_threads=True, max_threads=64, burst=True,
                          fetch_timeout=0.05, registry_interval=0, schedule_lease=0)
    sizes = [config.threads]
    async with worker_connection(app) as connection:
        consumer = Consumer(app, connection, config)
        resize = consumer._resize_threads

        def record(threads: int) -> None:
            sizes.append(threads)
            resize(threads)
            if stop_when_size_above is not None and threads > stop_when_size_above:
                consumer.stop()

        consumer._resize_threads = record  # type: ignore[method-assign]
        try:
            await consumer.run()
        finally:
            await consumer.tick_claims.close()
    return sizes


async def test_the_pool_grows_while_its_tasks_wait_on_blocking_io() -> None:
    # Given sync tasks that each block 20 ms (as a call to a slow service would)
    app = hurtle.App(unique_redis_url())

    @app.task(queue="waits", store_result=False)
    def wait() -> None:
        time.sleep(0.02)

    await asyncio.to_thread(wait.send_many, [()] * 20_000)

    # When a -t auto worker runs them: stopped as soon as its pool passes 8 threads
    sizes = await run_auto(app, "waits", stop_when_size_above=8)

    # Then it grew: 8 threads finished fewer of them per second than more threads would
    assert max(sizes) > 8, sizes
    app.close()


async def test_the_pool_does_not_grow_for_tasks_that_compute() -> None:
    # Given sync tasks that hold the GIL (a busy loop of about 5 ms)
    app = hurtle.App(unique_redis_url())

    @app.task(queue="computes", store_result=False)
    def compute() -> int:
        total, deadline = 0, time.perf_counter() + 0.005
        while time.perf_counter() < deadline:
            total += 1
        return total

    await asyncio.to_thread(compute.send_many, [()] * 800)

    # When a -t auto worker runs them all
    sizes = await run_auto(app, "computes")

    # Then its pool never grew past where it started
    assert max(sizes) == 8, sizes
    app.close()
