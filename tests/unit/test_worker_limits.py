"""In-process worker runs: time limits, recycling and the delivery limit."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hurtle import App, TaskFailed
from hurtle.brokers.memory import MemoryBroker
from hurtle.worker.consumer import EXIT_OK, EXIT_RECYCLE

from .support import MakeApp, RunWorker, counts, dead_letters


async def test_an_async_task_past_its_timeout_is_cancelled_and_reported_as_a_time_limit_failure(
    app: App, worker: RunWorker
) -> None:
    cancelled: list[bool] = []

    @app.task(timeout=0.1, retries=0)
    async def hang() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    handle = hang.send()
    consumer = await worker(app)

    assert cancelled == [True]
    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=5.0)
    assert failed.value.error == f"TimeLimitExceeded: task {hang.name} ran past its 0.1s time limit"
    assert consumer.exit_code == EXIT_OK, "a cancelled coroutine needs no new process"


async def test_a_time_limit_from_options_applies_to_that_call(app: App, worker: RunWorker) -> None:
    @app.task(retries=0)
    async def nap(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "rested"

    patient = nap.send(0.01)
    hurried = nap.options(timeout=0.05).send(60.0)
    await worker(app)

    assert patient.result(timeout=5.0) == "rested"
    with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
        hurried.result(timeout=5.0)


async def test_a_sync_task_past_its_timeout_is_reported_failed_and_the_worker_recycles(
    app: App, worker: RunWorker
) -> None:
    unblock = threading.Event()

    @app.task(timeout=0.1, retries=0)
    def stuck() -> None:
        unblock.wait(30.0)  # a thread cannot be interrupted

    @app.task
    def sibling() -> str:
        return "finished"

    stuck_handle = stuck.send()
    sibling_handle = sibling.send()
    try:
        consumer = await worker(app, threads=2)
    finally:
        unblock.set()

    with pytest.raises(TaskFailed) as failed:
        stuck_handle.result(timeout=5.0)
    assert failed.value.error.startswith("TimeLimitExceeded")
    assert sibling_handle.result(timeout=5.0) == "finished"
    assert consumer.exit_code == EXIT_RECYCLE


async def test_max_tasks_per_child_makes_the_consumer_stop_with_exit_recycle(
    app: App, worker: RunWorker
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    handles = add.send_many([(i, i) for i in range(5)])
    consumer = await worker(app, threads=1, max_tasks_per_child=2)

    assert consumer.exit_code == EXIT_RECYCLE
    assert consumer.counters.finished == 2
    assert [h.result(timeout=5.0) for h in handles[:2]] == [0, 2]
    assert (await counts(app)).ready == 3, "the rest waits for the next process"


async def test_max_tasks_per_child_caps_each_fetch_at_the_budget_left(
    app: App, worker: RunWorker
) -> None:
    # Given 50 async tasks, and a consumer with room for 100 but a budget of 10
    started: list[int] = []

    @app.task
    async def note(i: int) -> None:
        started.append(i)

    note.send_many([(i,) for i in range(50)])
    consumer = await worker(app, concurrency=100, max_tasks_per_child=10)

    # Then it runs exactly 10, and leaves the rest for the next process
    assert consumer.exit_code == EXIT_RECYCLE
    assert sorted(started) == list(range(10))
    assert (await counts(app)).ready == 40


async def test_a_message_delivered_more_than_max_deliveries_is_dead_lettered_unrun(
    make_app: MakeApp, worker: RunWorker
) -> None:
    app = make_app(max_deliveries=1)
    runs: list[int] = []

    @app.task
    def poison() -> None:
        runs.append(1)

    handle = poison.send()
    # A worker that leased it and died: its lease expires, the count stays.
    dying_worker = MemoryBroker(app.broker_url, visibility_timeout=0.05)
    assert len(await dying_worker.fetch(["default"], 1, 5.0)) == 1

    consumer = await worker(app)

    assert runs == []
    with pytest.raises(TaskFailed, match="delivered 2 times, over max_deliveries=1"):
        handle.result(timeout=5.0)
    assert consumer.counters.dead_lettered == 1
    assert len(await dead_letters(app)) == 1


async def test_an_async_task_raising_timeout_error_fails_with_that_error(
    make_app: MakeApp, worker: RunWorker
) -> None:
    # A short lease and one delivery: the bug ends in a quick "over max_deliveries", not a hang.
    app = make_app(visibility_timeout=0.5, max_deliveries=1)
    runs: list[int] = []

    @app.task(retries=0)
    async def call_upstream() -> None:
        runs.append(1)
        raise TimeoutError("upstream slow")  # e.g. an HTTP client's own timeout

    handle = call_upstream.send()
    await worker(app)

    assert runs == [1]
    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=5.0)
    assert failed.value.error == "TimeoutError: upstream slow"


async def test_a_timeout_error_raised_well_within_the_time_limit_is_the_tasks_own_error(
    app: App, worker: RunWorker
) -> None:
    @app.task(retries=0, timeout=30.0)
    async def call_upstream() -> None:
        raise TimeoutError("upstream slow")

    handle = call_upstream.send()
    await worker(app)

    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=5.0)
    assert failed.value.error == "TimeoutError: upstream slow"
