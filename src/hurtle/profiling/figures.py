"""What a worker process's profiler counts per task, and per profiled execution.

Apart from ``profiler.py`` so that the sampler, which that module starts, can
make and read them too.
"""

from __future__ import annotations

from hurtle.profiling import record

#: A sync execution's CPU time is measured by its thread's clock, read at both
#: ends: a system call that cost a no-op task 2 to 5 us, more than the rest of its
#: profiling. So of a task that spends less than ``SHORT_NS`` on a CPU on average,
#: only the first execution to start every ``CPU_EVERY_NS`` is measured (and the
#: first few after each write), and its others count at their average.
CPU_EVERY_NS = 1_000_000
SHORT_NS = 100_000
_MEASURED_FIRST = 10


class TaskFigures:
    """One task's figures since the last write (``take`` resets them), and how many
    times this process ran it (never reset: its first runs are its warm-up)."""

    __slots__ = ("async_executions", "classified", "counts", "cpu_measured", "cpu_measured_at", "cpu_ns",
                 "ended", "executions_seen", "peak", "rss_executions", "rss_growth", "stacks",
                 "sync_executions", "task", "wall_ns")

    def __init__(self, task: str) -> None:
        self.task = task
        self.ended = 0
        #: When the latest execution whose CPU time is measured started (perf_counter_ns).
        self.cpu_measured_at = 0
        self._reset()

    def _reset(self) -> None:
        self.counts: dict[str, int] = {}  # the sampler's: stacks, lines, time seen and on a CPU
        self.stacks = 0
        self.classified = 0  # sampled time whose share on a CPU is known
        self.cpu_ns = 0  # sync executions' CPU time, measured by their threads
        self.cpu_measured = 0  # the sync executions it was measured in
        self.peak = 0
        self.async_executions = 0
        self.sync_executions = 0
        self.wall_ns = 0
        self.rss_growth = 0
        self.rss_executions = 0
        self.executions_seen: dict[str, int] = {}

    def measures_cpu(self, started: int) -> bool:
        """Whether the sync execution starting now has its CPU time measured."""
        measured = self.cpu_measured
        if (measured < _MEASURED_FIRST or self.cpu_ns >= SHORT_NS * measured
                or started - self.cpu_measured_at >= CPU_EVERY_NS):
            self.cpu_measured_at = started
            return True
        return False

    def take(self) -> dict[str, int]:
        """Every figure as a tally's fields (``record.py``), and start again from zero."""
        counts = self.counts
        classified, wall_ns = self.classified, self.wall_ns
        cpu_ns, cpu_measured = self.cpu_ns, self.cpu_measured
        async_executions, sync_executions = self.async_executions, self.sync_executions
        rss_growth, rss_executions = self.rss_growth, self.rss_executions
        executions_seen = self.executions_seen
        self._reset()
        seen = counts.get(record.SEEN, 0)
        if classified and seen > classified:
            # Samples whose share on a CPU is unknown (a thread's first) share the others' rate.
            counts[record.CPU] = round(counts.get(record.CPU, 0) * seen / classified)
        if cpu_measured:  # the executions not measured count at the measured ones' average
            counts[record.CPU] = counts.get(record.CPU, 0) + cpu_ns * sync_executions // cpu_measured // 1000
        if async_executions or sync_executions:
            counts[record.EXECUTIONS] = async_executions + sync_executions
            counts[record.WALL] = wall_ns // 1000
        for name, value in ((record.ASYNC, async_executions), (record.SYNC, sync_executions)):
            if value:
                counts[name] = value
        if rss_executions:
            counts[record.RSS_GROWTH] = rss_growth
            counts[record.RSS_EXECUTIONS] = rss_executions
        for label, times in executions_seen.items():
            counts[record.EXECUTIONS_SEEN + label] = times
        return counts


class Execution:
    """One profiled run of a task."""

    __slots__ = ("figures", "frames", "started")

    def __init__(self, figures: TaskFigures, started: int) -> None:
        self.figures = figures
        self.started = started
        #: Every frame seen in this run; made by its first sample, as most short runs get none.
        self.frames: set[str] | None = None
