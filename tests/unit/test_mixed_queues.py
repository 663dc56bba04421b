"""One process consuming a queue of ``def`` tasks and a queue of ``async def`` tasks:
neither kind waits for the other's slots."""

from __future__ import annotations

import asyncio
import threading

from hurtle import App

from .support import RunWorker

WAIT_LIMIT = 20.0


async def test_async_tasks_run_while_every_thread_is_busy(app: App, worker: RunWorker) -> None:
    # Given sync tasks that hold every thread until the async tasks have all run
    all_async_ran = threading.Event()
    async_ran: list[int] = []

    @app.task(queue="blocking")
    def hold_a_thread() -> None:
        all_async_ran.wait(WAIT_LIMIT)

    @app.task(queue="quick")
    async def quick(i: int) -> None:
        async_ran.append(i)
        if len(async_ran) == 50:
            all_async_ran.set()

    await hold_a_thread.send_many_async([()] * 4)
    await quick.send_many_async([(i,) for i in range(50)])

    # When one process with 2 threads consumes both queues
    consumer = await worker(app, queues=["blocking", "quick"], threads=2)

    # Then the async tasks ran while the threads were held, before the sync ones were all done
    assert all_async_ran.is_set()
    assert sorted(async_ran) == list(range(50))
    assert consumer.counters.succeeded == 54


async def test_sync_tasks_run_while_every_async_slot_is_busy(app: App, worker: RunWorker) -> None:
    # Given async tasks that hold every async slot until the sync tasks have all run
    all_sync_ran = asyncio.Event()
    sync_ran: list[int] = []
    loop = asyncio.get_running_loop()

    @app.task(queue="waiting")
    async def hold_a_slot() -> None:
        await asyncio.wait_for(all_sync_ran.wait(), WAIT_LIMIT)

    @app.task(queue="threads")
    def quick(i: int) -> None:
        sync_ran.append(i)
        if len(sync_ran) == 20:
            loop.call_soon_threadsafe(all_sync_ran.set)

    await hold_a_slot.send_many_async([()] * 6)
    await quick.send_many_async([(i,) for i in range(20)])

    # When one process with 3 async slots consumes both queues
    consumer = await worker(app, queues=["waiting", "threads"], concurrency=3)

    # Then the sync tasks ran while the async slots were held
    assert all_sync_ran.is_set()
    assert sorted(sync_ran) == list(range(20))
    assert consumer.counters.succeeded == 26
