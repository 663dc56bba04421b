"""The sampler: every task's stack, read about 100 times a second.

cProfile cannot profile one task among several: it records every thread, and
from Python 3.12 only one such profiler may be active per process. A sampler
can: at each tick it reads the stacks of the loop and of the task threads
(``sys._current_frames()``) and credits each stack to
the execution whose wrapper frame is on it, so two async tasks interleaving on
one loop, or sync tasks in neighbouring threads, each get their own samples.

- An async task is found by the frame of its ``run_job`` coroutine
  (``worker/loop_watch.py``) on the loop thread's stack, and the ``execution``
  of the profiler's wrapper that awaits it.
- A sync task is found by its thread, whose stack holds ``profiled_call``.

Each sample weighs the time since the previous tick. An async task's share on a
CPU is the loop thread's CPU clock over that time (read by this thread: nothing
is added to the task's own path). A sync task's CPU time is measured whole, by
its thread, as it ends; either way a task blocked on a socket counts as waiting.
"""

from __future__ import annotations

import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

from hurtle.profiling.figures import Execution, TaskFigures
from hurtle.profiling.frames import LIBRARY, USER, Labels
from hurtle.worker.loop_watch import run_job

if TYPE_CHECKING:
    from hurtle.profiling.profiler import Profiler

#: The signal of the sampling timer (``ITIMER_REAL``): a profiled process's own.
TICK = signal.SIGALRM
#: Frames kept per stack, from the task's own function up: a deeper recursion
#: loses its innermost frames, not the task's.
MAX_DEPTH = 128


def profiled_call(profiler: Profiler, figures: TaskFigures, fn: Callable[..., Any], *args: Any,
                  **kwargs: Any) -> Any:
    """A sync task's call in its thread; the sampler knows its stack by this frame.

    Its CPU time is the thread's CPU clock read at both ends (of a short task, in
    some of its executions: ``figures.SHORT_NS``): sampled instead, a 2 ms task
    caught by one tick in several compared that tick with one taken in an earlier
    task, the idle time between them included, and read 0.04 ms."""
    started = time.perf_counter_ns()
    execution = Execution(figures, started)
    measured = figures.measures_cpu(started)
    if measured:
        cpu_started = time.thread_time_ns()
    ident = threading.get_ident()
    profiler.by_thread[ident] = execution
    try:
        return fn(*args, **kwargs)
    finally:
        del profiler.by_thread[ident]
        profiler.end_sync(execution, time.thread_time_ns() - cpu_started if measured else None)


_PROFILED_CALL = profiled_call.__code__
_RUN_JOB = run_job.__code__


class _ThreadClock:
    """One thread's CPU clock, and what it read at the previous tick."""

    __slots__ = ("clock", "cpu", "wall")

    def __init__(self, ident: int) -> None:
        self.clock = time.pthread_getcpuclockid(ident)
        self.cpu = -1
        self.wall = 0

    def on_cpu(self, now: int, stale_after: int) -> float | None:
        """The share of the time since the last reading this thread spent on a
        CPU; None without a recent reading to compare with."""
        try:
            cpu = time.clock_gettime_ns(self.clock)
        except OSError:  # the thread is gone
            return None
        previous_cpu, previous_wall = self.cpu, self.wall
        self.cpu, self.wall = cpu, now
        if previous_cpu < 0 or now - previous_wall > stale_after or now <= previous_wall:
            return None
        return min(1.0, max(0.0, (cpu - previous_cpu) / (now - previous_wall)))


class Sampler:
    """The ticking of one worker process's profiler.

    The ticks are signals from an interval timer (``ITIMER_REAL``: wall time, so
    a thread blocked on I/O is sampled too), handled on the loop's thread. A
    sampling *thread* would starve: a busy event loop drops the GIL for every
    ``select`` and takes it straight back, so a thread waiting for it rarely
    wins, and was seen to go a second without a sample while tasks ran.
    """

    def __init__(self, profiler: Profiler, hz: float) -> None:
        self._profiler = profiler
        self._interval = 1.0 / hz
        # A tick waits for the loop's thread to hold the GIL, which busy task threads
        # can delay by tens of milliseconds: a late tick weighs all the time since
        # the one before, as its stacks stand for it; one after a stop of the
        # process (a debugger, SIGSTOP) weighs no more than a second.
        self._cap = max(int(4e9 / hz), 1_000_000_000)
        self._loop_thread = threading.get_ident()
        self._async_wrapper = type(profiler).run_async.__code__
        self._labels = Labels()
        self._clocks: dict[int, _ThreadClock] = {}
        self._last = 0
        self._stopped = False
        self._previous: Any = None

    def start(self) -> None:
        """On the process's main thread, which runs the loop: signals are handled there."""
        self._last = time.perf_counter_ns()
        self._previous = signal.signal(TICK, self._on_tick)
        # Other threads' system calls resume after a tick instead of failing with EINTR.
        signal.siginterrupt(TICK, False)
        self._arm()

    def stop(self) -> None:
        self._stopped = True
        signal.setitimer(signal.ITIMER_REAL, 0)
        if signal.getsignal(TICK) == self._on_tick:
            signal.signal(TICK, self._previous if self._previous is not None else signal.SIG_DFL)

    @property
    def ticking(self) -> bool:
        """False once something else took the signal (a task that set an alarm of its own)."""
        return not self._stopped and signal.getsignal(TICK) == self._on_tick

    def _arm(self) -> None:
        # One shot at a time, each a little early or late: no lockstep with periodic work.
        signal.setitimer(signal.ITIMER_REAL, self._interval * random.uniform(0.75, 1.25))

    def _on_tick(self, signum: int, frame: FrameType | None) -> None:
        if self._stopped:
            return
        try:
            now = time.perf_counter_ns()
            weight, self._last = min(now - self._last, self._cap), now
            self._profiler.read_rss()
            self._sample(frame, now, weight // 1000)
        except Exception:  # a sampler must never take the worker down
            pass
        finally:
            self._arm()

    def _sample(self, loop_frame: FrameType | None, now: int, weight_us: int) -> None:
        profiler = self._profiler
        found: list[tuple[Execution, list[FrameType], int]] = []
        stack = _walk_to_code(loop_frame, _RUN_JOB)
        if stack:
            # Under the stack's root is ``run_job``'s frame, and under it the profiler's
            # wrapper, whose ``execution`` says whose stack it is (none: not profiled).
            wrapper = stack[0].f_back
            caller = wrapper.f_back if wrapper is not None else None
            if caller is not None and caller.f_code is self._async_wrapper:
                execution = caller.f_locals.get("execution")
                if execution is not None:
                    found.append((execution, stack, self._loop_thread))
        if profiler.by_thread:
            frames = sys._current_frames()
            for ident, execution in list(profiler.by_thread.items()):
                stack = _walk_to_code(frames.get(ident), _PROFILED_CALL)
                if stack:
                    found.append((execution, stack, ident))
            del frames
        for execution, stack, ident in found:
            # A sync execution's CPU time is measured whole as it ends (``profiled_call``).
            share = self._on_cpu(ident, now) if ident == self._loop_thread else None
            labels, line = self._describe(stack)
            del stack
            profiler.credit(execution, labels, line, weight_us, share)
        if len(self._clocks) > 4 * (len(profiler.by_thread) + 64):  # threads come and go
            self._clocks.clear()

    def _on_cpu(self, ident: int, now: int) -> float | None:
        """The share of the time since the previous tick thread ``ident`` was on a CPU."""
        clock = self._clocks.get(ident)
        if clock is None:
            try:
                clock = self._clocks[ident] = _ThreadClock(ident)
            except OSError:  # the thread ended meanwhile
                return None
        return clock.on_cpu(now, self._cap)

    def _describe(self, stack: list[FrameType]) -> tuple[tuple[str, ...], str]:
        """The stack's labels, root first, and the task's own innermost line."""
        labels: list[str] = []
        line = ""
        best = -1  # the origin of ``line``: a user frame beats a library one
        for frame in stack[:MAX_DEPTH]:  # root first
            label, origin, path = self._labels.of(frame.f_code)
            labels.append(label)
            rank = 2 if origin == USER else 1 if origin == LIBRARY else 0
            if rank >= best and rank > 0:
                best, line = rank, f"{path}:{frame.f_lineno}"
        return tuple(labels), line


def _walk_to_code(top: FrameType | None, wrapper: CodeType) -> list[FrameType]:
    """The frames above the frame running ``wrapper`` (excluded), root first:
    the task's function first."""
    above: list[FrameType] = []
    frame = top
    while frame is not None:
        if frame.f_code is wrapper:
            above.reverse()
            return above
        above.append(frame)
        frame = frame.f_back
    return []

