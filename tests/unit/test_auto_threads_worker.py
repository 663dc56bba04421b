"""-t auto inside the consumer: the slots a fetch asks for follow the pool, through every resize."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hurtle import App
from hurtle.testing import worker_connection
from hurtle.worker.consumer import Consumer, WorkerConfig

from .support import RunWorker


async def test_a_pool_shrunk_while_the_fetch_loop_wakes_up_does_not_stall_it(app: App) -> None:
    # Given a -t auto worker whose pool shrinks below what runs in the very turn
    # a finished task frees a slot (the fetch loop is woken, then finds no room)
    @app.task
    def short() -> None:
        time.sleep(0.001)

    await short.send_many_async([()] * 40)
    config = WorkerConfig(queues=["default"], threads=4, auto_threads=True, burst=True, fetch_timeout=0.05,
                          registry_interval=0, schedule_lease=0)
    async with worker_connection(app) as connection:
        consumer = Consumer(app, connection, config)
        loop = asyncio.get_running_loop()
        give = consumer.thread_slots.give
        shrunk: list[bool] = []

        def give_then_shrink(count: int = 1) -> None:
            give(count)
            if not shrunk:
                shrunk.append(True)
                consumer._resize_threads(1)
                loop.call_later(0.05, consumer._resize_threads, 4)

        consumer.thread_slots.give = give_then_shrink  # type: ignore[method-assign]
        try:
            # When it runs the queue
            await asyncio.wait_for(consumer.run(), 30)
        finally:
            await consumer.tick_claims.close()

    # Then every task ran: the fetch loop waited for room again instead of stopping for good
    assert shrunk
    assert consumer.counters.succeeded == 40


async def test_a_fixed_pool_keeps_its_size(app: App, worker: RunWorker) -> None:
    @app.task
    def nothing() -> None: ...

    await nothing.send_many_async([()] * 10)
    consumer: Any = await worker(app, threads=3)

    assert consumer.thread_slots.capacity == 3
    assert consumer.counters.succeeded == 10
