"""Unique tasks, cancel and progress with an in-process worker (``hurtle.testing.drain``)
on a SQLite file: what each control promises, one process at a time. Real worker
processes on every store: ``tests/integration/test_controls_*.py``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import hurtle
import hurtle.testing
from hurtle.schedule.cancel import cancel_requested
from hurtle.schedule.unique import record_key
from hurtle.worker.settle import Counters


@pytest.fixture
def app(tmp_path: Path) -> Iterator[hurtle.App]:
    made = hurtle.App(f"sqlite:///{tmp_path}/tasks.db")
    yield made
    made.close()


def test_a_second_send_with_a_held_unique_key_enqueues_nothing_and_returns_the_first_task(
    app: hurtle.App,
) -> None:
    runs: list[int] = []

    @app.task
    def report(user: int) -> int:
        runs.append(user)
        return user

    first = report.options(unique_key="user:42", unique_for=600).send(42)
    second = report.options(unique_key="user:42", unique_for=600).send(43)

    assert second.id == first.id
    counters = hurtle.testing.drain(app)
    assert runs == [42] and counters.succeeded == 1
    assert first.result() == 42


def test_the_key_is_free_again_once_the_task_finished(app: hurtle.App) -> None:
    @app.task
    def report(user: int) -> int:
        return user

    first = report.options(unique_key="user:7").send(1)
    hurtle.testing.drain(app)
    second = report.options(unique_key="user:7").send(2)

    assert second.id != first.id
    hurtle.testing.drain(app)
    assert second.result() == 2


def test_a_task_that_fails_for_good_gives_its_key_back(app: hurtle.App) -> None:
    @app.task(retries=0)
    def broken() -> None:
        raise ValueError("no")

    first = broken.options(unique_key="k").send()
    hurtle.testing.drain(app)
    with pytest.raises(hurtle.TaskFailed):
        first.result()
    assert broken.options(unique_key="k").send().id != first.id


def test_a_caller_chosen_id_is_idempotent_while_the_task_is_queued(app: hurtle.App) -> None:
    @app.task
    def nightly() -> str:
        return "done"

    handles = [nightly.options(id="report-2026-12-06").send() for _ in range(3)]
    assert {h.id for h in handles} == {"report-2026-12-06"}
    counters = hurtle.testing.drain(app)
    assert counters.succeeded == 1
    assert handles[0].result() == "done"


def test_send_many_with_one_key_enqueues_the_first_call_only(app: hurtle.App) -> None:
    runs: list[int] = []

    @app.task
    def job(n: int) -> None:
        runs.append(n)

    handles = job.options(unique_key="batch").send_many([(1,), (2,), (3,)])
    assert len({h.id for h in handles}) == 1
    hurtle.testing.drain(app)
    assert runs == [1]


def test_async_sends_race_for_one_key_and_one_wins(app: hurtle.App) -> None:
    @app.task
    def job(n: int) -> int:
        return n

    async def race() -> set[str]:
        handles = await asyncio.gather(*(job.options(unique_key="race").send_async(n) for n in range(20)))
        return {h.id for h in handles}

    assert len(asyncio.run(race())) == 1
    assert hurtle.testing.drain(app).succeeded == 1


def test_threads_racing_for_one_key_enqueue_exactly_one_task(app: hurtle.App) -> None:
    @app.task
    def job(n: int) -> int:
        return n

    ids: list[str] = []
    start = threading.Barrier(8)

    def send(n: int) -> None:
        start.wait()
        ids.append(job.options(unique_key="threads").send(n).id)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1
    assert hurtle.testing.drain(app).succeeded == 1


def test_bad_unique_options_are_refused_when_given(app: hurtle.App) -> None:
    @app.task
    def job() -> None: ...

    for bad in ({"unique_key": ""}, {"unique_for": 0, "unique_key": "k"}, {"unique_for": 5.0}, {"id": 3}):
        with pytest.raises(hurtle.ConfigurationError):
            job.options(**bad)  # type: ignore[arg-type]


def test_unique_and_cancel_on_rabbitmq_without_a_result_store_are_refused_at_once() -> None:
    pytest.importorskip("aiormq")
    app = hurtle.App("amqp://guest:guest@127.0.0.1:5672/", results=None)

    @app.task
    def job() -> None: ...

    with pytest.raises(hurtle.ConfigurationError, match="keeps records"):
        job.options(unique_key="k")
    with pytest.raises(hurtle.ConfigurationError, match="keeps records"):
        app.handle("abc").cancel()


def test_a_task_cancelled_while_queued_never_runs_and_reads_cancelled(app: hurtle.App) -> None:
    runs: list[int] = []

    @app.task
    def job(n: int) -> int:
        runs.append(n)
        return n

    doomed, kept = job.send(1), job.send(2)
    doomed.cancel()
    counters = hurtle.testing.drain(app)

    assert runs == [2]
    assert counters.cancelled == 1 and counters.retried == 0 and counters.dead_lettered == 0
    assert doomed.status() == "cancelled"
    with pytest.raises(hurtle.TaskCancelled):
        doomed.result()
    assert kept.result() == 2


def test_a_cancelled_queued_task_gives_its_unique_key_back(app: hurtle.App) -> None:
    @app.task
    def job() -> None: ...

    first = job.options(unique_key="k").send()
    first.cancel()
    hurtle.testing.drain(app)
    assert job.options(unique_key="k").send().id != first.id


def test_cancel_marks_are_kept_in_the_record_store(app: hurtle.App) -> None:
    @app.task
    def job() -> None: ...

    handle = job.send()
    handle.cancel()

    async def look() -> bool:
        records = app.client.connection().records
        assert records is not None
        return await cancel_requested(records, handle.id)

    assert app.client.run_sync(look())
    assert record_key("key:x") == "unique:key:x"


async def _until(condition: object, what: str) -> None:
    """Wait for an async ``condition()`` to be truthy, within 20 seconds."""
    async def poll() -> None:
        while not await condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), 20.0)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def test_a_running_async_task_is_cancelled_and_not_retried(app: hurtle.App) -> None:
    started = asyncio.Event()
    cleaned_up: list[bool] = []

    @app.task(retries=3)
    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append(True)

    async def scenario() -> Counters:
        handle = await forever.send_async()
        worker = asyncio.create_task(hurtle.testing.drain_async(app))
        await asyncio.wait_for(started.wait(), 20.0)
        await handle.cancel_async()
        counters = await asyncio.wait_for(worker, 20.0)
        assert await handle.status_async() == "cancelled"
        with pytest.raises(hurtle.TaskCancelled):
            await handle.result_async()
        return counters

    counters = asyncio.run(scenario())
    assert cleaned_up == [True]
    assert counters.cancelled == 1 and counters.retried == 0 and counters.failed == 0


def test_a_running_sync_task_sees_cancelled_and_stops_by_itself(app: hurtle.App) -> None:
    started = threading.Event()

    @app.task
    def careful() -> str:
        started.set()
        while not hurtle.current_task().cancelled:
            threading.Event().wait(0.01)
        return "stopped early"

    async def scenario() -> Counters:
        handle = await careful.send_async()
        worker = asyncio.create_task(hurtle.testing.drain_async(app))
        await _until(lambda: asyncio.sleep(0, started.is_set()), "the task to start")
        await handle.cancel_async()
        counters = await asyncio.wait_for(worker, 20.0)
        assert await handle.status_async() == "cancelled"
        return counters

    assert asyncio.run(scenario()).cancelled == 1


def test_progress_is_readable_while_the_task_runs_and_after(app: hurtle.App) -> None:
    go = threading.Event()

    @app.task
    def crunch(n: int) -> int:
        for i in range(n):
            hurtle.current_task().progress(i + 1, n, note="rows")
        go.wait(20.0)
        return n

    async def scenario() -> None:
        handle = await crunch.send_async(500)
        worker = asyncio.create_task(hurtle.testing.drain_async(app))

        async def reported_all() -> bool:
            progress = await handle.progress_async()
            return progress is not None and progress.done == 500

        await _until(reported_all, "the last progress report")
        progress = await handle.progress_async()
        assert progress is not None
        assert (progress.total, progress.note, progress.fraction) == (500, "rows", 1.0)
        assert await handle.status_async() == "running"
        go.set()
        await asyncio.wait_for(worker, 20.0)
        assert await handle.result_async() == 500
        assert await handle.progress_async() == progress

    asyncio.run(scenario())


def test_progress_outside_a_task_is_an_error_and_bad_numbers_are_refused(app: hurtle.App) -> None:
    with pytest.raises(RuntimeError):
        hurtle.current_task().progress(1, 2)

    @app.task(retries=0)
    async def bad() -> None:
        hurtle.current_task().progress(float("nan"))

    @app.task
    async def no_progress() -> None:
        pass

    bad_handle, quiet = bad.send(), no_progress.send()
    hurtle.testing.drain(app)
    with pytest.raises(hurtle.TaskFailed, match="finite number"):
        bad_handle.result()
    assert quiet.progress() is None


def test_a_cancelled_queued_task_counts_toward_max_tasks_per_child(app: hurtle.App) -> None:
    from hurtle.testing import run_consumer
    from hurtle.worker.consumer import EXIT_RECYCLE, WorkerConfig

    @app.task
    def job() -> None: ...

    async def scenario() -> int:
        handle = await job.send_async()
        await handle.cancel_async()
        config = WorkerConfig(max_tasks_per_child=1, fetch_timeout=0.05)
        consumer = await asyncio.wait_for(run_consumer(app, config), 20.0)
        assert consumer.counters.cancelled == 1
        return consumer.exit_code

    assert asyncio.run(scenario()) == EXIT_RECYCLE
