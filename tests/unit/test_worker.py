"""In-process worker runs on the memory broker: results, failures and retries."""

from __future__ import annotations

import asyncio
import time

import pytest

import hurtle
from hurtle import App, TaskFailed
from hurtle.worker.consumer import EXIT_OK

from .support import RunWorker, counts, dead_letters


async def test_a_sync_task_sends_its_result_back(app: App, worker: RunWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    handle = add.send(2, 3)
    consumer = await worker(app)

    assert handle.result(timeout=5.0) == 5
    assert consumer.exit_code == EXIT_OK
    assert consumer.counters.succeeded == 1


async def test_an_async_task_sends_its_result_back(app: App, worker: RunWorker) -> None:
    @app.task
    async def shout(word: str) -> str:
        await asyncio.sleep(0)
        return word.upper()

    handle = await shout.send_async("hi")
    await worker(app)

    assert await handle.result_async(timeout=5.0) == "HI"


async def test_every_task_of_a_mixed_batch_runs_once(app: App, worker: RunWorker) -> None:
    @app.task
    def square(x: int) -> int:
        return x * x

    @app.task
    async def negate(x: int) -> int:
        return -x

    squares = square.send_many([(i,) for i in range(40)])
    negations = negate.send_many([{"x": i} for i in range(40)])
    consumer = await worker(app, concurrency=8, threads=3)

    assert [h.result(timeout=5.0) for h in squares] == [i * i for i in range(40)]
    assert [h.result(timeout=5.0) for h in negations] == [-i for i in range(40)]
    assert consumer.counters.succeeded == 80
    assert (await counts(app)).pending == 0


async def test_a_failing_task_is_retried_by_its_policy_then_dead_lettered_with_the_traceback(
    app: App, worker: RunWorker
) -> None:
    runs: list[int] = []

    @app.task(retries=2, backoff=hurtle.Constant(0.01))
    def explode(n: int) -> None:
        runs.append(n)
        raise ValueError(f"boom {n}")

    handle = explode.send(7)
    consumer = await worker(app)

    assert runs == [7, 7, 7]
    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=5.0)
    assert failed.value.task_id == handle.id
    assert failed.value.error == "ValueError: boom 7"
    assert "Traceback (most recent call last)" in failed.value.traceback
    assert 'raise ValueError(f"boom {n}")' in failed.value.traceback
    (letter,) = await dead_letters(app)
    assert letter.reason.startswith("ValueError: boom 7\nTraceback (most recent call last)")
    counters = consumer.counters
    assert (counters.retried, counters.failed, counters.succeeded) == (2, 1, 0)


async def test_a_task_with_no_retries_fails_at_its_first_error(app: App, worker: RunWorker) -> None:
    runs: list[int] = []

    @app.task(retries=0)
    async def explode() -> None:
        runs.append(1)
        raise KeyError("gone")

    handle = await explode.send_async()
    await worker(app)

    assert runs == [1]
    with pytest.raises(TaskFailed, match="KeyError: 'gone'"):
        await handle.result_async(timeout=5.0)


async def test_retry_with_a_delay_runs_the_task_again_after_that_delay(app: App, worker: RunWorker) -> None:
    started: list[float] = []

    # The backoff would wait a minute: Retry(delay=...) must win over it.
    @app.task(retries=1, backoff=hurtle.Constant(60.0))
    def flaky() -> str:
        started.append(time.time())
        if len(started) == 1:
            raise hurtle.Retry(delay=0.2)
        return "second time lucky"

    handle = flaky.send()
    consumer = await worker(app)

    assert handle.result(timeout=5.0) == "second time lucky"
    assert started[1] - started[0] >= 0.2
    assert consumer.counters.retried == 1


async def test_a_task_returning_a_value_that_is_not_json_fails_without_retries(
    app: App, worker: RunWorker
) -> None:
    runs: list[int] = []

    @app.task(retries=3)
    def opaque() -> object:
        runs.append(1)
        return object()

    handle = opaque.send()
    await worker(app)

    assert runs == [1]
    with pytest.raises(TaskFailed, match="not JSON-encodable"):
        handle.result(timeout=5.0)
    assert len(await dead_letters(app)) == 1


async def test_a_task_that_keeps_no_result_still_runs(app: App, worker: RunWorker) -> None:
    runs: list[int] = []

    @app.task(store_result=False)
    def fire_and_forget() -> int:
        runs.append(1)
        return 1

    handle = fire_and_forget.send()
    await worker(app)

    assert runs == [1]
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.05)


async def test_a_forgotten_result_is_gone(app: App, worker: RunWorker) -> None:
    @app.task
    def one() -> int:
        return 1

    handle = one.send()
    await worker(app)
    assert handle.result(timeout=5.0) == 1

    handle.forget()

    with pytest.raises(TimeoutError):
        handle.result(timeout=0.05)


async def test_an_async_task_can_send_a_task_on_the_workers_connection(app: App, worker: RunWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    async def fan_out(n: int) -> list[str]:
        handles = await add.send_many_async([(i, i) for i in range(n)])
        return [h.id for h in handles]

    handle = fan_out.send(3)
    consumer = await worker(app)

    ids = handle.result(timeout=5.0)
    results = [hurtle.Handle[int](app, i, add.name).result(timeout=5.0) for i in ids]
    assert results == [0, 2, 4]
    assert consumer.counters.succeeded == 4
