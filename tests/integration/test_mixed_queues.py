"""A queue of ``def`` tasks and a queue of ``async def`` tasks in one process, on every
broker: the async tasks run while every thread is held by a slow sync task."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import hurtle
from tests.conftest import run_worker
from tests.integration.conftest import STORES

pytestmark = pytest.mark.slow

WAIT_LIMIT = 20.0


@pytest.mark.parametrize("store", sorted(STORES))
async def test_async_tasks_run_while_every_thread_is_busy(store: str, tmp_path: Path) -> None:
    broker, results = STORES[store](tmp_path)
    app = hurtle.App(broker, results=results)
    all_async_ran = threading.Event()
    async_ran: list[int] = []

    @app.task(queue="blocking", store_result=False)
    def hold_a_thread() -> None:
        all_async_ran.wait(WAIT_LIMIT)

    @app.task(queue="quick", store_result=False)
    async def quick(i: int) -> None:
        async_ran.append(i)
        if len(async_ran) == 30:
            all_async_ran.set()

    await asyncio.to_thread(hold_a_thread.send_many, [()] * 4)
    await asyncio.to_thread(quick.send_many, [(i,) for i in range(30)])

    consumer = await run_worker(app, queues=["blocking", "quick"], threads=2, registry_interval=0,
                                schedule_lease=0)

    assert all_async_ran.is_set()
    assert sorted(async_ran) == list(range(30))
    assert consumer.counters.succeeded == 34
    app.close()
