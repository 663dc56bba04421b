"""The loop watcher: the task that blocks the event loop, named and interrupted while it blocks."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hurtle import App, Envelope, TaskFailed
from hurtle.brokers import Delivery
from hurtle.errors import EventLoopBlocked
from hurtle.worker.dispatcher import Job
from hurtle.worker.loop_watch import INTERRUPT, LoopWatcher, run_job
from hurtle.worker.watchdog import Heartbeats

from .support import RunWorker, dead_letters

LIMIT = 1.0  # seconds a task may hold the loop in these tests
BOUND = 30.0  # seconds a blocking call lasts when nothing interrupts it: the test fails then


@pytest.fixture
async def watcher() -> AsyncIterator[LoopWatcher]:
    """A watcher on this test's loop, stamping as a worker process's loop does."""
    heartbeats = Heartbeats(1)
    watching = LoopWatcher(heartbeats, 0, LIMIT)
    watching.start()
    stamping = asyncio.create_task(heartbeats.keep_stamping(0))
    await asyncio.sleep(0)  # the first stamp: the watcher starts watching
    yield watching
    watching.stop()
    stamping.cancel()


def job_of(app: App, fn: Callable[[], Awaitable[None]], task_id: str) -> Job:
    task = app.task(fn)
    return Job(Delivery("default", b"", 1, None), Envelope(id=task_id, task=task.name), task)


async def sleepy() -> None:
    time.sleep(BOUND)


def doze() -> None:
    time.sleep(BOUND)


async def test_a_task_that_blocks_the_loop_is_named_while_it_blocks_then_interrupted(
    app: App, watcher: LoopWatcher, caplog: pytest.LogCaptureFixture
) -> None:
    job = job_of(app, sleepy, "t1")
    started = time.monotonic()
    with pytest.raises(EventLoopBlocked, match=r"blocked the event loop for \d+\.\ds, past the limit of 1s"):
        await run_job(job)
    assert time.monotonic() - started < BOUND / 2
    assert f"{job.task.name}[t1] is blocking the event loop" in caplog.text
    assert "in sleepy" in caplog.text, "the log says where it blocks"


async def test_a_loop_blocked_outside_any_task_is_reported_and_nothing_is_interrupted(
    watcher: LoopWatcher, caplog: pytest.LogCaptureFixture
) -> None:
    time.sleep(LIMIT + 0.6)
    await asyncio.sleep(0)
    assert "the event loop is blocked outside any task" in caplog.text


async def test_an_interrupt_that_comes_after_its_task_moved_on_is_ignored(
    app: App, watcher: LoopWatcher
) -> None:
    # Given an interrupt meant for a task that is no longer on the loop's stack
    watcher._pending = (job_of(app, sleepy, "gone"), "blocked the event loop")
    # When it arrives, Then nothing else is interrupted
    signal.pthread_kill(threading.get_ident(), INTERRUPT)
    await asyncio.sleep(0.05)


@pytest.mark.parametrize("timeout", [None, 60.0], ids=["no time limit", "a time limit"])
async def test_a_worker_dead_letters_the_task_that_blocks_and_finishes_the_ones_beside_it(
    app: App, watcher: LoopWatcher, worker: RunWorker, timeout: float | None
) -> None:
    @app.task(timeout=timeout)
    async def blocker() -> None:
        doze()  # a blocking library call

    @app.task
    async def patient(i: int) -> int:
        await asyncio.sleep(0.1)
        return i

    innocent = patient.send_many([(i,) for i in range(5)])
    culprit = blocker.send()
    consumer = await worker(app)

    assert [handle.result(timeout=5.0) for handle in innocent] == list(range(5))
    with pytest.raises(TaskFailed, match="blocked the event loop for"):
        culprit.result(timeout=5.0)
    assert consumer.counters.dead_lettered == 1 and consumer.counters.succeeded == 5
    (dead,) = await dead_letters(app)
    assert re.match(r"blocked the event loop for \d+\.\ds, past the limit of 1s", dead.reason)
    where = r"at test_loop_watch.py:\d+ in blocker \(now test_loop_watch.py:\d+ in doze\)$"
    assert re.search(where, dead.reason), "the reason names the task's line, and the one it is stuck on"
