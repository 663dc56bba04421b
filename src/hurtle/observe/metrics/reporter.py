"""A worker process's side of the metrics: its reports to the supervisor, over its pipe.

``PipeSink`` is a ``FigureSink``: the figure writer hands it the task figures
every few seconds, and a loop of its own reports the gauges every
``REPORT_EVERY`` seconds with whatever figures wait. The pipe never makes the
process wait: a write that does not fit is kept and finished first at the next
turn, and figures that came meanwhile are added to what waits (one entry per
task and queue, however long the supervisor is slow), so nothing is lost and
nothing is counted twice. The process in slot 0 also samples the queues with
its own broker (``Broker.stats``): once a turn where that is cheap, less often
where it is not (``SAMPLE_SHARE``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from hurtle.loops import cancel_all
from hurtle.observe.figure_writer import FigureSink
from hurtle.observe.heartbeat import rss_bytes
from hurtle.observe.metrics.wire import QueueCounts, Report, TaskCounts, encode_frame
from hurtle.observe.task_figures import UNREADABLE, UNREGISTERED, FigureKey, MinuteFigures
from hurtle.observe.trouble import Trouble

if TYPE_CHECKING:
    from hurtle.worker.consumer import Consumer

log = logging.getLogger("hurtle.metrics")

#: Seconds between a process's reports: the gauges' freshness. A report is a few
#: hundred bytes and a ``stats`` call in slot 0; scrapes come every 15 s or so.
REPORT_EVERY = 1.0
CLOSE_LIMIT = 5.0  # seconds a stopping process waits, at most, for the supervisor to take its last report
SAMPLING_SLOT = 0  # the process slot that samples the queues: one is enough for a whole worker
#: The share of its time the sampling process spends reading the queues, at most:
#: a ``stats`` call waits 1/SAMPLE_SHARE times its own length before the next.
#: SQLite counts a queue row by row: 100 ms for 200,000 messages, which sampled
#: each second cost a no-op async task 9% more CPU; Redis answers in a millisecond.
SAMPLE_SHARE = 0.01


def metric_sinks(consumer: Consumer, slot: int) -> list[FigureSink]:
    """The sink reporting to the supervisor's ``/metrics``; none without ``--metrics-port``."""
    fd = consumer.config.metrics_fd
    if fd is None:
        return []
    return [PipeSink(fd, consumer, slot, sample_queues=slot == SAMPLING_SLOT)]


class PipeSink:
    """Reports to the supervisor over ``fd`` (non-blocking): figures, slots, memory, queues."""

    def __init__(
        self, fd: int, consumer: Consumer, slot: int, *, sample_queues: bool, every: float = REPORT_EVERY
    ) -> None:
        self.fd = fd
        self.consumer = consumer
        self.slot = slot
        self.every = every
        self._tasks = frozenset(consumer.app.tasks)
        #: Figures not yet in a frame, by (task, queue): minutes are the supervisor's no concern.
        self._waiting: dict[tuple[str, str], MinuteFigures] = {}
        self._queues: list[QueueCounts] | None = None  # a sample not yet sent
        self._unsent = memoryview(b"")  # the rest of a frame the pipe had no room for
        self._gone = False  # the supervisor closed its end: nothing more is sent
        self._trouble = Trouble(log)
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._keep_reporting(), name="hurtle-metrics")]
        if sample_queues:
            self._loops.append(loop.create_task(self._keep_sampling(), name="hurtle-metrics-queues"))

    async def send(self, figures: dict[FigureKey, MinuteFigures]) -> None:
        """Add ``figures`` to what waits, and report now: counters are fresh at the next scrape."""
        waiting = self._waiting
        for (task, queue, _minute), value in figures.items():
            if task not in self._tasks and task not in (UNREADABLE, UNREGISTERED):
                task = UNREGISTERED  # counted elsewhere than the consumer (figures made without ``known``)
            mine = waiting.get((task, queue))
            if mine is None:
                mine = waiting[(task, queue)] = MinuteFigures()
            mine.add(value)  # a copy: ``figures`` is shared with the other sinks
        self.report()

    def report(self) -> None:
        """Finish the frame the pipe had no room for; if it fits, write a new one of all that waits."""
        if self._gone or not self._write_unsent():
            return
        frame = encode_frame(self._build())
        self._waiting = {}
        self._queues = None
        self._unsent = memoryview(frame)
        self._write_unsent()

    def _build(self) -> Report:
        consumer = self.consumer
        tasks = [TaskCounts(task, queue, f.outcomes, f.run, f.wait, f.run_seconds, f.wait_seconds)
                 for (task, queue), f in self._waiting.items()]
        return Report(
            self.slot, tasks, consumer.async_slots.busy, consumer.async_slots.capacity,
            consumer.thread_slots.busy, consumer.thread_slots.capacity, rss_bytes(), self._queues,
        )

    def _write_unsent(self) -> bool:
        """Write what is left of the last frame; True once all of it is written."""
        while self._unsent:
            try:
                written = os.write(self.fd, self._unsent)
            except BlockingIOError:
                return False
            except OSError as exc:  # the supervisor is gone (EPIPE): there is no one to report to
                log.debug("metrics: the supervisor's pipe is closed (%s)", exc)
                self._gone = True
                self._unsent = memoryview(b"")
                return False
            self._unsent = self._unsent[written:]
        return True

    async def _keep_reporting(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self.report()

    async def _keep_sampling(self) -> None:
        """The queues' counts, once a turn, from this process's own broker. A sample
        that fails reports no queues (an empty list): stale counts would pass for current."""
        broker, queues = self.consumer.broker, self.consumer.queues
        while True:
            started = time.monotonic()
            try:
                stats = await broker.stats(queues)
            except Exception as exc:
                self._trouble.failed("read the queues' counts for the metrics", exc)
                self._queues = []
            else:
                self._trouble.ok("metrics: the queues' counts are read again")
                self._queues = [
                    QueueCounts(s.name, s.ready, s.delayed, s.in_flight, s.dead, s.oldest_ready_age)
                    for s in stats
                ]
            await asyncio.sleep(max(self.every, (time.monotonic() - started) / SAMPLE_SHARE))

    async def close(self) -> None:
        """Send what waits (the figure writer has just handed over the last figures),
        waiting up to ``CLOSE_LIMIT`` for room in the pipe; then close it."""
        await cancel_all(self._loops)
        deadline = time.monotonic() + CLOSE_LIMIT
        try:
            self.report()
            while not self._gone and (self._unsent or self._waiting):
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("metrics: the supervisor did not take this process's last report in %gs",
                                CLOSE_LIMIT)
                    break
                await _writable(self.fd, left)
                self.report()
        finally:
            os.close(self.fd)


async def _writable(fd: int, limit: float) -> None:
    """Wait until ``fd`` has room, ``limit`` seconds at most."""
    loop = asyncio.get_running_loop()
    room: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not room.done():
            room.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await asyncio.wait_for(room, limit)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_writer(fd)
