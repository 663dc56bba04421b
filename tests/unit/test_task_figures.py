"""Task figures: every settled message is counted once, per task, queue and minute,
with its run time and queue wait in the shared buckets."""

from __future__ import annotations

import time

import hurtle
from hurtle import App
from hurtle.brokers import Message
from hurtle.observe.figure_writer import FigureWriter
from hurtle.observe.task_figures import (
    BOUNDS,
    DEAD,
    FAILED,
    OUTCOMES,
    RETRIED,
    SUCCEEDED,
    UNREADABLE,
    UNREGISTERED,
    FigureKey,
    MinuteFigures,
    TaskFigures,
    bucket_of,
    merge,
)

from .support import RunWorker, broker_of


def totals(figures: dict[FigureKey, MinuteFigures]) -> dict[str, dict[str, int]]:
    """Outcome counts by task, minutes and queues summed."""
    by_task: dict[str, MinuteFigures] = {}
    for (task, _, _), value in figures.items():
        by_task.setdefault(task, MinuteFigures()).add(value)
    return {task: dict(zip(OUTCOMES, value.outcomes, strict=True)) for task, value in by_task.items()}


def test_a_bucket_holds_its_upper_bound_and_the_last_holds_everything_longer() -> None:
    assert bucket_of(0.0) == 0
    assert bucket_of(BOUNDS[0]) == 0
    assert bucket_of(BOUNDS[0] * 1.01) == 1
    assert bucket_of(BOUNDS[-1]) == len(BOUNDS) - 1
    assert bucket_of(BOUNDS[-1] + 1) == len(BOUNDS)


def test_a_run_is_counted_in_its_minute_with_its_run_time_and_wait() -> None:
    figures = TaskFigures()
    figures.ran("report", "default", SUCCEEDED, ready_at=600.0, started=602.0, finished=602.3)

    taken = figures.take()

    assert list(taken) == [("report", "default", 10)]
    minute = taken["report", "default", 10]
    assert minute.outcomes == [1, 0, 0, 0, 0]
    assert minute.run[bucket_of(0.3)] == 1 and minute.ran == 1
    assert minute.wait[bucket_of(2.0)] == 1
    assert abs(minute.run_seconds - 0.3) < 1e-9 and abs(minute.wait_seconds - 2.0) < 1e-9
    assert figures.take() == {}, "taking empties"


def test_a_start_before_its_ready_time_waited_no_time() -> None:
    figures = TaskFigures()
    figures.ran("t", "q", SUCCEEDED, ready_at=100.0, started=99.0, finished=99.5)
    minute = figures.take()["t", "q", 1]
    assert minute.wait[0] == 1 and minute.wait_seconds == 0.0


def test_a_dead_message_naming_a_task_the_app_lacks_counts_as_unregistered() -> None:
    figures = TaskFigures(known={"tasks.add"})
    figures.dead("tasks.add", "q", 0.0)
    figures.dead("anything a sender wrote", "q", 0.0)
    figures.dead(None, "q", 0.0)
    assert {task for task, _, _ in figures.take()} == {"tasks.add", UNREGISTERED, UNREADABLE}


def test_merge_adds_and_leaves_what_it_read_unchanged() -> None:
    figures = TaskFigures()
    figures.ran("t", "q", FAILED, 0.0, 1.0, 2.0)
    first = figures.take()
    figures.ran("t", "q", RETRIED, 0.0, 1.0, 2.0)
    figures.dead(None, "q", 3.0)
    second = figures.take()

    backlog: dict[FigureKey, MinuteFigures] = {}
    merge(backlog, first)
    merge(backlog, second)

    assert backlog["t", "q", 0].outcomes == [0, 1, 1, 0, 0]
    assert backlog["t", "q", 0].ran == 2
    assert backlog[UNREADABLE, "q", 0].outcomes[DEAD] == 1
    assert first["t", "q", 0].outcomes == [0, 1, 0, 0, 0], "merging copies"


async def test_every_outcome_of_a_worker_run_is_counted_once(app: App, worker: RunWorker) -> None:
    attempts = {"flaky": 0}

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(retries=1, backoff=hurtle.retry.Constant(0.01))
    async def flaky() -> None:
        attempts["flaky"] += 1
        raise RuntimeError("down")

    add.send_many([(i, i) for i in range(5)])
    flaky.send()
    await (await add.send_async(9, 9)).cancel_async()
    await broker_of(app).enqueue([Message("bad", "default", b"not json")])

    consumer = await worker(app)

    counted = totals(consumer.figures.take())
    assert counted[add.name] == {"succeeded": 5, "failed": 0, "retried": 0, "dead": 0, "cancelled": 1}
    assert counted[flaky.name] == {"succeeded": 0, "failed": 1, "retried": 1, "dead": 0, "cancelled": 0}
    assert counted[UNREADABLE] == {"succeeded": 0, "failed": 0, "retried": 0, "dead": 1, "cancelled": 0}


class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[FigureKey, MinuteFigures]] = []
        self.fail = fail
        self.closed = False

    async def send(self, figures: dict[FigureKey, MinuteFigures]) -> None:
        if self.fail:
            raise RuntimeError("sink defect")
        self.sent.append(figures)

    async def close(self) -> None:
        self.closed = True


async def test_the_writer_gives_every_sink_the_same_figures_even_when_one_fails() -> None:
    figures = TaskFigures()
    broken, working = RecordingSink(fail=True), RecordingSink()
    writer = FigureWriter(figures, [broken, working], every=3600)

    figures.ran("t", "q", SUCCEEDED, 0.0, time.time(), time.time())
    await writer.write()
    await writer.write()  # nothing new: nothing sent
    figures.ran("t", "q", SUCCEEDED, 0.0, time.time(), time.time())
    await writer.close()

    assert len(working.sent) == 2
    assert sum(v.outcomes[SUCCEEDED] for sent in working.sent for v in sent.values()) == 2
    assert working.closed and broken.closed
