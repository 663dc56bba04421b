"""One worker process's profiler: which executions are profiled, and their figures.

Made only when some task is profiled (``--profile``, ``@app.task(profile=True)``):
otherwise a worker has no sampler thread and no wrapper around any call.

Figures gather here per task name, as the fields ``record.py`` describes, and
every few seconds are added to the task's tally in the broker's store, so every
process's and machine's samples merge there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hurtle.profiling import record
from hurtle.profiling.held_memory import HeldMemory
from hurtle.profiling.sampler import Sampler, profiled_call
from hurtle.tallies import TallyStore
from hurtle.worker.loop_watch import run_job

if TYPE_CHECKING:
    from hurtle.app import App
    from hurtle.worker.dispatcher import Job

log = logging.getLogger("hurtle.profile")

FLUSH_EVERY = 5.0  # seconds between writes of a process's figures
#: Distinct stacks kept per task between two writes; beyond, a stack is counted
#: under its task's function alone (a recursion with ever new depths, say).
MAX_STACKS = 5000
#: Each process's first executions of a task fill caches, import modules and grow
#: the allocator's arenas: their RSS growth is warm-up, not what every call costs.
WARM_UP = 10
#: The RSS is read as an execution ends, at most once a millisecond: a read is a
#: system call of several microseconds, as much as a third of a no-op task's cost.
RSS_EVERY_NS = 1_000_000
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_OTHER = "[other stacks]"
SWITCH_INTERVAL = 0.001  # seconds: the GIL's switch interval while profiling
_LOCK_WAIT = 0.1  # seconds a tick waits for a task thread to finish its figures


@dataclass(frozen=True)
class ProfileConfig:
    """What a worker profiles (``hurtle worker --profile ...``)."""

    #: Task names to profile; None: every task.
    tasks: frozenset[str] | None = None
    hz: float = 100.0
    #: The fraction of executions profiled.
    sample: float = 1.0
    #: Trace allocations (``tracemalloc``) to name where memory is held.
    memory: bool = False
    #: Keep profiles in files here instead of the broker's store.
    directory: str | None = None


def profiled_tasks(app: App, config: ProfileConfig | None) -> frozenset[str]:
    """The tasks a worker profiles: those chosen on its command line, and those
    declared with ``@app.task(profile=True)``."""
    chosen = {name for name, task in app.tasks.items() if task.opts.profile}
    if config is not None:
        chosen |= set(app.tasks) if config.tasks is None else set(config.tasks)
    return frozenset(chosen)


class Execution:
    """One profiled run of a task."""

    __slots__ = ("cpu_ns", "frames", "kind", "started", "task")

    def __init__(self, task: str, kind: str) -> None:
        self.task = task
        self.kind = kind
        self.frames: set[str] = set()  # every frame seen in this run
        self.started = time.perf_counter_ns()
        #: A sync execution's thread CPU time, measured by its thread; None: sampled.
        self.cpu_ns: int | None = None


class _Figures:
    """One task's figures since the last write."""

    __slots__ = ("classified", "counts", "peak", "stacks")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.stacks = 0
        self.peak = 0
        self.classified = 0  # seen time whose share on a CPU is known


class Profiler:
    def __init__(self, tasks: frozenset[str], config: ProfileConfig, app: App) -> None:
        self.tasks = tasks
        self.config = config
        #: The async executions running now, by ``id(job)``.
        self.by_job: dict[int, Execution] = {}
        #: The sync executions running now, by thread.
        self.by_thread: dict[int, Execution] = {}
        self._rss = RSSReader()
        self._rss_at = 0  # perf_counter_ns of the last read
        self._rss_last = self._rss.read()
        self._figures: dict[str, _Figures] = {}
        self._ended: dict[str, int] = {}  # executions ended, per task
        # Re-entrant: the sampler's tick runs on the loop's thread, maybe inside
        # ``end`` or ``take`` there; every step under it is one dict operation.
        self._lock = threading.RLock()
        self._sampler: Sampler | None = None
        self._switch_interval = 0.0
        self._memory = HeldMemory(app, tasks) if config.memory else None

    # -- the loop's and the threads' side ---------------------------------------

    def selects(self, task: str) -> bool:
        return task in self.tasks and (self.config.sample >= 1.0 or random.random() < self.config.sample)

    async def run_async(self, job: Job) -> Any:
        """``run_job``, profiled when the job is chosen."""
        name = job.task.name
        if not self.selects(name):
            return await run_job(job)
        execution = Execution(name, record.ASYNC)
        key = id(job)
        self.by_job[key] = execution
        try:
            return await run_job(job)
        finally:
            del self.by_job[key]
            self.end(execution)

    def sync_function(self, job: Job) -> Callable[..., Any]:
        """What a thread calls for a sync job: the task, wrapped when profiled."""
        task = job.task
        if not self.selects(task.name):
            return task.fn
        execution = Execution(task.name, record.SYNC)
        return functools.partial(profiled_call, self, execution, task.fn)

    def end(self, execution: Execution) -> None:
        now = time.perf_counter_ns()
        wall = (now - execution.started) // 1000
        rss = 0
        if now - self._rss_at >= RSS_EVERY_NS:
            self._rss_at = now
            rss = self._rss.read()
        with self._lock:
            figures = self._of(execution.task)
            counts = figures.counts
            for name, value in ((record.EXECUTIONS, 1), (execution.kind, 1), (record.WALL, wall)):
                counts[name] = counts.get(name, 0) + value
            if execution.cpu_ns is not None:
                counts[record.CPU] = counts.get(record.CPU, 0) + execution.cpu_ns // 1000
            ended = self._ended[execution.task] = self._ended.get(execution.task, 0) + 1
            if ended > WARM_UP:
                # The growth since the last read goes to the execution that reads: with
                # executions ending thousands of times a second, in proportion to what
                # each task grows (an exact figure needs a read at both ends of each).
                counts[record.RSS_EXECUTIONS] = counts.get(record.RSS_EXECUTIONS, 0) + 1
                if rss:
                    counts[record.RSS_GROWTH] = counts.get(record.RSS_GROWTH, 0) + rss - self._rss_last
            if rss:
                self._rss_last = rss
                figures.peak = max(figures.peak, rss)
            for label in execution.frames:
                name = record.EXECUTIONS_SEEN + label
                counts[name] = counts.get(name, 0) + 1

    # -- the sampler's side -----------------------------------------------------

    def credit(self, execution: Execution, labels: tuple[str, ...], line: str, weight: int,
               on_cpu: float | None) -> None:
        """Credit one sample of ``weight`` microseconds to ``execution`` (from the
        sampler's tick, on the loop's thread)."""
        if not self._lock.acquire(timeout=_LOCK_WAIT):
            return
        try:
            figures = self._of(execution.task)
            counts = figures.counts
            stack = record.STACK + record.SEPARATOR.join(labels)
            if stack not in counts:
                if figures.stacks >= MAX_STACKS:
                    stack = record.STACK + record.SEPARATOR.join((*labels[:1], _OTHER))
                figures.stacks += 1
            counts[stack] = counts.get(stack, 0) + weight
            counts[record.SEEN] = counts.get(record.SEEN, 0) + weight
            if line:
                name = record.LINE + line
                counts[name] = counts.get(name, 0) + weight
            if on_cpu is not None:
                figures.classified += weight
                counts[record.CPU] = counts.get(record.CPU, 0) + round(weight * on_cpu)
            execution.frames.update(labels)
        finally:
            self._lock.release()

    def _of(self, task: str) -> _Figures:
        figures = self._figures.get(task)
        if figures is None:
            figures = self._figures[task] = _Figures()
        return figures

    # -- lifetime and writing ---------------------------------------------------

    def start(self) -> None:
        """In the worker process, on its loop's thread."""
        if self._memory is not None:
            self._memory.start()
        self._sampler = Sampler(self, self.config.hz)
        self._sampler.start()
        # A tick runs once the loop's thread holds the GIL, which a CPU-bound task
        # thread keeps for the whole switch interval (5 ms): a 2 ms task was caught
        # in 11 of 300 executions. At 1 ms, in 96 of 300, its time seen matching its
        # wall time; the price is more GIL hand-offs between busy threads.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
            sys.setswitchinterval(self._switch_interval)
        self._rss.close()

    def take(self) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        """Every task's figures since the last call, as (tally key, counts, highest)."""
        with self._lock:
            taken, self._figures = self._figures, {}
        now = int(time.time())
        writes = []
        for task, figures in taken.items():
            counts = figures.counts
            seen = counts.get(record.SEEN, 0)
            if figures.classified and seen > figures.classified:
                # Samples whose share on a CPU is unknown (a thread's first) share the others' rate.
                counts[record.CPU] = round(counts.get(record.CPU, 0) * seen / figures.classified)
            highest = {record.LAST: now}
            if figures.peak:
                highest[record.RSS_PEAK] = figures.peak
            writes.append((record.key(task), counts, highest))
        if self._memory is not None:
            for task, held in self._memory.changes().items():
                writes.append((record.key(task), {record.MEMORY + site: size for site, size in held.items()},
                               {record.LAST: now}))
        return writes

    async def write(self, store: TallyStore) -> None:
        for key, counts, highest in self.take():
            await store.add(key, counts, record.TTL, highest=highest)

    async def keep_writing(self, store: TallyStore) -> None:
        """Write every ``FLUSH_EVERY`` seconds until cancelled; a store that fails
        loses those figures, never a task."""
        warned = 0.0
        told_stolen = False
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            sampler = self._sampler
            if sampler is not None and not sampler.ticking and not told_stolen:
                told_stolen = True
                log.warning("profiling stopped in this process: other code took SIGALRM"
                            " (signal.alarm or setitimer in a task?), which the sampler ticks on")
            try:
                await self.write(store)
            except Exception as exc:
                if time.monotonic() - warned > 60:
                    warned = time.monotonic()
                    log.warning("could not write profiles (%s: %s); their samples are dropped",
                                type(exc).__name__, exc)


class RSSReader:
    """The process's resident set size, read from ``/proc`` (0 where there is none)."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> int:
        if self._fd is None:
            return 0
        try:
            return int(os.pread(self._fd, 64, 0).split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None



def describe(tasks: Iterable[str], config: ProfileConfig) -> str:
    """The profiling line of a worker's start block."""
    names = sorted(tasks)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    sample = "" if config.sample >= 1.0 else f", {config.sample:.0%} of executions"
    memory = ", with allocations traced" if config.memory else ""
    where = f" to {config.directory}" if config.directory else ""
    return f"{shown} at {config.hz:g} Hz{sample}{memory}{where}"
