"""The task history, read: what each task and queue came to over the last minutes.

Worker processes add their figures to one key per minute (``history_layout``,
``history_sink``); ``read_history`` reads a window of those minutes in one call
and merges them over minutes and queues into a ``TaskSummary`` per task, and
per queue into a ``QueueFlow`` (settled per minute, and taken in per minute
where the broker counts it). ``hurtle status`` shows it, and a dashboard can
read it the same way.

Percentiles are estimates from the fixed buckets (``task_figures.BOUNDS``):
linear within the bucket the rank falls in, as Prometheus' ``histogram_quantile``
does, so a p95 of "0.37 s" means "in the 0.25-0.5 s bucket, about there"; a rank
in the last, unbounded bucket reads as the last bound (30 minutes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from hurtle.observe.history_layout import decode, minute_key
from hurtle.observe.task_figures import BOUNDS, CANCELLED, DEAD, FAILED, RETRIED, SUCCEEDED, MinuteFigures
from hurtle.tallies import TallyStore


def quantile(q: float, buckets: Sequence[int]) -> float | None:
    """The ``q`` quantile (0..1) of what ``buckets`` count (one per ``BOUNDS`` entry, and
    the last for what is longer), in seconds, interpolated linearly within its bucket;
    None when they count nothing."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(buckets):
        if count and below + count >= rank:
            if index >= len(BOUNDS):
                return BOUNDS[-1]  # unbounded: the best that can be said
            lower = 0.0 if index == 0 else BOUNDS[index - 1]
            return lower + (BOUNDS[index] - lower) * max(rank - below, 0.0) / count
        below += count
    return BOUNDS[-1]


@dataclass
class TaskSummary:
    """One task's figures over a window, every queue and worker together."""

    task: str
    span: float  # minutes the window covers: whole ones, and the current one so far
    figures: MinuteFigures = field(default_factory=MinuteFigures)

    @property
    def succeeded(self) -> int:
        return self.figures.outcomes[SUCCEEDED]

    @property
    def failed(self) -> int:
        """Failed for good, after its retries."""
        return self.figures.outcomes[FAILED]

    @property
    def retried(self) -> int:
        return self.figures.outcomes[RETRIED]

    @property
    def dead(self) -> int:
        """Dead-lettered without running (bad input, too many deliveries)."""
        return self.figures.outcomes[DEAD]

    @property
    def cancelled(self) -> int:
        """Cancelled (``Handle.cancel``), before or while running."""
        return self.figures.outcomes[CANCELLED]

    @property
    def settled(self) -> int:
        """Every message of the task settled in the window, whatever came of it."""
        return sum(self.figures.outcomes)

    @property
    def rate(self) -> float:
        """Settled messages per minute."""
        return self.settled / self.span

    @property
    def failure_rate(self) -> float:
        """The share (0..1) of settled messages that failed, were retried or dead-lettered
        (a cancelled task did what it was asked: stop)."""
        return 0.0 if self.settled == 0 else (self.failed + self.retried + self.dead) / self.settled

    @property
    def run_seconds(self) -> float:
        """Total run time: where the workers' time went."""
        return self.figures.run_seconds

    def run_quantile(self, q: float) -> float | None:
        """Run time's ``q`` quantile, a bucket estimate (module docstring); None: nothing ran."""
        return quantile(q, self.figures.run)

    def wait_quantile(self, q: float) -> float | None:
        """Queue wait's ``q`` quantile (from ready, its send or eta, to start), a bucket estimate."""
        return quantile(q, self.figures.wait)


@dataclass
class QueueFlow:
    """What went through one queue over a window, per minute."""

    queue: str
    span: float  # minutes the window covers
    settled: int = 0
    #: (minute, count) samples of the messages it ever took in, oldest first.
    samples: list[tuple[int, int]] = field(default_factory=list)

    @property
    def rate_out(self) -> float:
        """Messages settled per minute (succeeded, failed, retried, dead)."""
        return self.settled / self.span

    @property
    def rate_in(self) -> float | None:
        """Messages taken in per minute, from the counts sampled in the window's first
        and last minutes that have one; None when the broker does not count them, fewer
        than two minutes were sampled, or the count went back (the queue was deleted)."""
        if len(self.samples) < 2:
            return None
        (first_minute, first), (last_minute, last) = self.samples[0], self.samples[-1]
        if last < first:
            return None
        return (last - first) / (last_minute - first_minute)


@dataclass
class History:
    """The task history over the last ``minutes`` minutes, ending with ``last_minute``
    (the current one, partial: rates are per minute of ``span``, the time covered)."""

    minutes: int
    last_minute: int
    span: float
    tasks: dict[str, TaskSummary]
    queues: dict[str, QueueFlow]

    def by_run_time(self) -> list[TaskSummary]:
        """Tasks, the one that took the most run time first."""
        return sorted(self.tasks.values(), key=lambda t: (-t.run_seconds, -t.settled, t.task))


def minutes_of(minutes: int, now: float | None = None) -> list[int]:
    """The last ``minutes`` minutes (Unix seconds // 60), oldest first, the current one last."""
    last = int((time.time() if now is None else now) // 60)
    return list(range(last - minutes + 1, last + 1))


async def read_history(store: TallyStore, minutes: int, now: float | None = None) -> History:
    """The last ``minutes`` minutes of the history (the current, partial one included), in
    one read of the store."""
    (history,) = await read_windows(store, [minutes], now)
    return history


async def read_windows(store: TallyStore, windows: Sequence[int], now: float | None = None) -> list[History]:
    """The history over each of ``windows`` (minutes, each ending now), from one read of
    the longest: ``hurtle status`` shows the last 5 minutes and the last hour."""
    if not windows or min(windows) < 1:
        raise ValueError(f"a history window is 1 minute or more, not {windows!r}")
    now = time.time() if now is None else now
    window = minutes_of(max(windows), now)
    read = list(zip(window, await store.read_many([minute_key(minute) for minute in window]), strict=True))
    return [
        summarize(minutes, max(1.0, minutes - 1 + (now % 60.0) / 60.0), window[-1], read[-minutes:])
        for minutes in windows
    ]


def summarize(
    minutes: int, span: float, last_minute: int, read: Sequence[tuple[int, dict[str, int]]]
) -> History:
    """Merge what was read, minute by minute, into a ``History`` covering ``span`` minutes."""
    tasks: dict[str, TaskSummary] = {}
    queues: dict[str, QueueFlow] = {}

    def flow(queue: str) -> QueueFlow:
        found = queues.get(queue)
        if found is None:
            found = queues[queue] = QueueFlow(queue, span)
        return found

    for minute, fields in read:
        figures, added = decode(fields)
        for (task, queue), figure in figures.items():
            summary = tasks.get(task)
            if summary is None:
                summary = tasks[task] = TaskSummary(task, span)
            summary.figures.add(figure)
            flow(queue).settled += sum(figure.outcomes)
        for queue, count in added.items():
            flow(queue).samples.append((minute, count))
    return History(minutes, last_minute, span, tasks, queues)
