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
from hurtle.profiling.figures import Execution, TaskFigures
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


class Profiler:
    """Each profiled execution costs the worker some hundreds of nanoseconds here:
    a no-op task costs it about 15 us, and profiling every execution of one
    should slow it by 5% at most. So no per-execution dict or set is made, the
    figures are plain counters on an object looked up once per execution, and
    async executions, which all end on the loop's thread, take no lock."""

    def __init__(self, tasks: frozenset[str], config: ProfileConfig, app: App) -> None:
        self.tasks = tasks
        self.config = config
        #: The sync executions running now, by thread.
        self.by_thread: dict[int, Execution] = {}
        self._rss = RSSReader()
        #: The process's RSS as the sampler's latest tick read it, and as the latest
        #: execution to end saw it.
        self.rss = self._rss_last = self._rss.read()
        self._figures = {task: TaskFigures(task) for task in tasks}
        self._sampled = config.sample < 1.0
        # Re-entrant: the sampler's tick runs on the loop's thread, maybe inside
        # ``take`` there; every step under it is one dict operation.
        self._lock = threading.RLock()
        self._sampler: Sampler | None = None
        self._switch_interval = 0.0
        self._memory = HeldMemory(app, tasks) if config.memory else None

    # -- the loop's and the threads' side ---------------------------------------

    def selects(self, task: str) -> bool:
        """Whether to profile this execution of ``task``; ``run_async`` and
        ``sync_function`` ask the same inline, saving a call per execution."""
        return task in self._figures and not (self._sampled and random.random() >= self.config.sample)

    async def run_async(self, job: Job) -> Any:
        """``run_job``, profiled when the job is chosen. The sampler finds the
        ``execution`` among this frame's locals, right under ``run_job``'s."""
        figures = self._figures.get(job.task.name)
        if figures is None or (self._sampled and random.random() >= self.config.sample):
            return await run_job(job)
        execution = Execution(figures, time.perf_counter_ns())
        try:
            return await run_job(job)
        finally:
            # No lock: an async task's figures change only on the loop's thread (here,
            # and in ``take``), and the sampler cannot credit this execution any more,
            # with ``run_job`` off the stack.
            figures.async_executions += 1
            if self.rss != self._rss_last:  # shared with the threads' executions
                with self._lock:
                    self._add(execution, time.perf_counter_ns())
            else:
                self._add(execution, time.perf_counter_ns())

    def sync_function(self, job: Job) -> Callable[..., Any]:
        """What a thread calls for a sync job: the task, wrapped when profiled."""
        task = job.task
        figures = self._figures.get(task.name)
        if figures is None or (self._sampled and random.random() >= self.config.sample):
            return task.fn
        return functools.partial(profiled_call, self, figures, task.fn)

    def end_sync(self, execution: Execution, cpu_ns: int | None) -> None:
        """In the execution's thread, once it is out of ``by_thread``; ``cpu_ns``
        is its CPU time when it was measured (``CPU_EVERY_NS``)."""
        now = time.perf_counter_ns()
        with self._lock:
            figures = execution.figures
            figures.sync_executions += 1
            if cpu_ns is not None:
                figures.cpu_ns += cpu_ns
                figures.cpu_measured += 1
            self._add(execution, now)

    def read_rss(self) -> None:
        """On the sampler's tick, on the loop's thread. Not as executions end: a read
        is a system call that lets go of the GIL, and a task thread that has to win
        it back from busy neighbours made a no-op task cost 40 us more."""
        self.rss = self._rss.read() or self.rss

    def _add(self, execution: Execution, now: int) -> None:
        figures = execution.figures
        figures.wall_ns += now - execution.started
        figures.ended += 1
        warm = figures.ended > WARM_UP
        if warm:
            figures.rss_executions += 1
        rss = self.rss
        if rss != self._rss_last:
            # The growth a tick read goes to the next execution to end: with executions
            # ending thousands of times a second, in proportion to what each task
            # grows (an exact figure needs a read at both ends of each), and a task
            # shorter than a tick is seen to grow.
            if warm:
                figures.rss_growth += rss - self._rss_last
            self._rss_last = rss
        if rss > figures.peak:
            figures.peak = rss
        if execution.frames is not None:
            seen = figures.executions_seen
            for label in execution.frames:
                seen[label] = seen.get(label, 0) + 1

    # -- the sampler's side -----------------------------------------------------

    def credit(self, execution: Execution, labels: tuple[str, ...], line: str, weight: int,
               on_cpu: float | None) -> None:
        """Credit one sample of ``weight`` microseconds to ``execution`` (from the
        sampler's tick, on the loop's thread)."""
        if not self._lock.acquire(timeout=_LOCK_WAIT):
            return
        try:
            figures = execution.figures
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
            if execution.frames is None:
                execution.frames = set(labels)
            else:
                execution.frames.update(labels)
        finally:
            self._lock.release()

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
        now = int(time.time())
        writes = []
        with self._lock:
            for figures in self._figures.values():
                peak = figures.peak
                counts = figures.take()
                if not counts:
                    continue
                highest = {record.LAST: now}
                if peak:
                    highest[record.RSS_PEAK] = peak
                writes.append((record.key(figures.task), counts, highest))
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
