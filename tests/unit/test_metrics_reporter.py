"""A worker process's reports: never waiting on the pipe, never losing or doubling a figure."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from hurtle.brokers import QueueStats
from hurtle.observe.metrics.reporter import UNREGISTERED, PipeSink
from hurtle.observe.metrics.totals import Totals
from hurtle.observe.metrics.wire import FrameReader
from hurtle.observe.task_figures import DEAD, SUCCEEDED, UNREADABLE, TaskFigures
from hurtle.worker.slots import Slots

SMALLEST_PIPE = 4096  # bytes: one page, the least Linux lets a pipe hold


class StubBroker:
    def __init__(self) -> None:
        self.fail = False

    async def stats(self, queues: list[str]) -> list[QueueStats]:
        if self.fail:
            raise ConnectionError("broker gone")
        return [QueueStats("default", 5, 1, None, 2, None)]


def consumer(tasks: list[str]) -> Any:
    """What the sink reads of a consumer: its app's tasks, its slots, its broker and queues."""
    return SimpleNamespace(
        app=SimpleNamespace(tasks=dict.fromkeys(tasks)), async_slots=Slots(100), thread_slots=Slots(8),
        broker=StubBroker(), queues=["default"], config=SimpleNamespace(),
    )


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, SMALLEST_PIPE)
    yield read_fd, write_fd
    os.close(read_fd)


def read_all(fd: int, reader: FrameReader, totals: Totals) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            return
        for report in reader.feed(data):
            totals.add(report)


def counted(task: int, runs: int) -> TaskFigures:
    figures = TaskFigures()
    for run in range(runs):
        figures.ran(f"tasks.t{task}", "default", SUCCEEDED, 100.0, 100.0 + run, 100.0 + run + 0.5)
    return figures


async def test_figures_sent_while_the_pipe_is_full_arrive_once_each(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    names = [f"tasks.t{n}" for n in range(200)]  # a report of them all is larger than the pipe
    sink = PipeSink(write_fd, consumer(names), slot=0, sample_queues=False, every=3600)
    reader, totals = FrameReader("test"), Totals()
    for turn in range(3):  # the supervisor reads nothing meanwhile
        for task in range(200):
            await sink.send(counted(task, runs=turn + 1).take())
    assert sink._unsent and sink._waiting, "a frame was cut by the full pipe, and figures wait behind it"
    read_all(read_fd, reader, totals)
    while sink._unsent or sink._waiting:  # each read makes room for the rest
        sink.report()
        read_all(read_fd, reader, totals)

    assert sorted({task for task, _ in totals.tasks}) == sorted(names)
    assert all(figures.outcomes[SUCCEEDED] == 1 + 2 + 3 for figures in totals.tasks.values())
    assert all(figures.ran == 6 for figures in totals.tasks.values())
    assert reader.finish() == 0
    await sink.close()


async def test_a_task_name_the_app_does_not_have_is_counted_under_one_label(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    sink = PipeSink(write_fd, consumer(["tasks.add"]), slot=0, sample_queues=False, every=3600)
    figures = TaskFigures()
    for name in ("made.up.1", "made.up.2", None):
        figures.dead(name, "default", 100.0)
    figures.dead("tasks.add", "default", 100.0)

    await sink.send(figures.take())
    reader, totals = FrameReader("test"), Totals()
    read_all(read_fd, reader, totals)

    assert {task: f.outcomes[DEAD] for (task, _), f in totals.tasks.items()} == {
        UNREGISTERED: 2, UNREADABLE: 1, "tasks.add": 1,
    }
    await sink.close()


async def test_the_sampling_process_reports_the_queues_and_none_when_the_broker_fails(
    pipe: tuple[int, int],
) -> None:
    read_fd, write_fd = pipe
    stub = consumer([])
    sink = PipeSink(write_fd, stub, slot=0, sample_queues=True, every=0.01)
    reader, totals = FrameReader("test"), Totals()

    async def queues_read() -> list[Any]:
        while True:
            read_all(read_fd, reader, totals)
            if totals.queues:
                return totals.queues
            await asyncio.sleep(0.01)

    (queue,) = await asyncio.wait_for(queues_read(), 10)
    assert (queue.queue, queue.ready, queue.in_flight, queue.oldest_age) == ("default", 5, None, None)
    assert totals.slots[0].async_slots == 100 and totals.slots[0].sync_slots == 8

    stub.broker.fail = True

    async def queues_gone() -> None:
        while totals.queues:
            read_all(read_fd, reader, totals)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(queues_gone(), 10)
    await sink.close()


async def test_a_stopping_process_waits_for_room_to_send_its_last_figures(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    names = [f"tasks.t{n}" for n in range(200)]
    sink = PipeSink(write_fd, consumer(names), slot=0, sample_queues=False, every=3600)
    for task in range(200):
        await sink.send(counted(task, runs=1).take())
    assert sink._unsent, "the pipe is full"
    reader, totals = FrameReader("test"), Totals()
    loop = asyncio.get_running_loop()
    loop.add_reader(read_fd, read_all, read_fd, reader, totals)  # the supervisor, reading as it can
    try:
        await sink.close()
        read_all(read_fd, reader, totals)
    finally:
        loop.remove_reader(read_fd)

    assert len(totals.tasks) == 200 and all(f.ran == 1 for f in totals.tasks.values())
    assert os.read(read_fd, 1) == b"", "the sink closed its end"


async def test_a_supervisor_gone_stops_the_reports_without_an_error() -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    os.close(read_fd)
    sink = PipeSink(write_fd, consumer(["tasks.t0"]), slot=0, sample_queues=False, every=3600)

    await sink.send(counted(0, runs=1).take())
    await sink.close()

    assert sink._gone
