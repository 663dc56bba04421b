"""What a worker process's profiler counts per task, and per profiled execution.

Apart from ``profiler.py`` so that the sampler, which that module starts, can
make and read them too.
"""

from __future__ import annotations

from hurtle.profiling import record


class TaskFigures:
    """One task's figures since the last write (``take`` resets them), and how many
    times this process ran it (never reset: its first runs are its warm-up)."""

    __slots__ = ("async_executions", "classified", "counts", "cpu_ns", "ended", "executions_seen", "peak",
                 "rss_executions", "rss_growth", "stacks", "sync_executions", "task", "wall_ns")

    def __init__(self, task: str) -> None:
        self.task = task
        self.ended = 0
        self._reset()

    def _reset(self) -> None:
        self.counts: dict[str, int] = {}  # the sampler's: stacks, lines, time seen and on a CPU
        self.stacks = 0
        self.classified = 0  # sampled time whose share on a CPU is known
        self.cpu_ns = 0  # sync executions' CPU time, measured by their threads
        self.peak = 0
        self.async_executions = 0
        self.sync_executions = 0
        self.wall_ns = 0
        self.rss_growth = 0
        self.rss_executions = 0
        self.executions_seen: dict[str, int] = {}

    def take(self) -> dict[str, int]:
        """Every figure as a tally's fields (``record.py``), and start again from zero."""
        counts = self.counts
        classified, cpu_ns, wall_ns = self.classified, self.cpu_ns, self.wall_ns
        async_executions, sync_executions = self.async_executions, self.sync_executions
        rss_growth, rss_executions = self.rss_growth, self.rss_executions
        executions_seen = self.executions_seen
        self._reset()
        seen = counts.get(record.SEEN, 0)
        if classified and seen > classified:
            # Samples whose share on a CPU is unknown (a thread's first) share the others' rate.
            counts[record.CPU] = round(counts.get(record.CPU, 0) * seen / classified)
        if cpu_ns:
            counts[record.CPU] = counts.get(record.CPU, 0) + cpu_ns // 1000
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
