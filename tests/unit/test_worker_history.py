"""A worker process's task history, wired as ``hurtle worker`` wires it, on the memory broker."""

from __future__ import annotations

import uuid

import hurtle
from hurtle.observe.history import read_history
from hurtle.worker.consumer import Consumer, WorkerConfig
from hurtle.worker.process import figure_writing, history, worker_connection


def _app(**settings: float) -> hurtle.App:
    app = hurtle.App(f"memory://history-{uuid.uuid4().hex}", **settings)

    @app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


async def _run_burst(app: hurtle.App) -> None:
    config = WorkerConfig(queues=app.queues(), burst=True, fetch_timeout=0.05)
    async with worker_connection(app) as connection:
        consumer = Consumer(app, connection, config)
        async with history(app, consumer) as sinks, figure_writing(consumer, sinks):
            await consumer.run()


async def _store_keys(app: hurtle.App) -> tuple[list[str], int]:
    connection = app.client.new_connection()
    try:
        store = connection.broker.tally_store()
        assert store is not None
        keys = await store.keys("history:")
        settled = (await read_history(store, 5)).tasks.get("tasks.add")
        return keys, 0 if settled is None else settled.succeeded
    finally:
        await connection.close()


async def test_a_burst_run_leaves_every_task_it_ran_in_the_history() -> None:
    app = _app()
    await app.send_task_async("tasks.add", 1, 2)
    await app.send_task_async("tasks.add", 3, 4)

    await _run_burst(app)

    keys, succeeded = await _store_keys(app)
    assert keys and succeeded == 2


async def test_history_ttl_0_writes_no_history() -> None:
    app = _app(history_ttl=0.0)
    await app.send_task_async("tasks.add", 1, 2)

    await _run_burst(app)

    assert await _store_keys(app) == ([], 0)
