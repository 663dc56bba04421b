"""What each task came to, per task, queue and minute, gathered in one worker process.

Every settled message adds to a ``MinuteFigures``: its outcome's count, and for a
task that ran, its run time and queue wait in fixed buckets. Fixed buckets
(``BOUNDS``) are what lets figures from many processes, machines and minutes be
merged by adding, and percentiles be read from the sums: the task history
(``hurtle.observe.history``) and the Prometheus histograms use the same ones.

Nothing is written per task: ``TaskFigures.take`` hands over what gathered since
its last call, and a writer running every few seconds sends it on.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection
from dataclasses import dataclass, field

#: Upper bounds, in seconds, of the run time and queue wait buckets; one bucket more
#: holds what is longer than the last. Queue wait reaches 30 minutes: a backed-up
#: queue must show as one, not as a full last bucket.
BOUNDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
)

#: The outcomes counted. ``failed``: failed for good, after its retries (its message
#: is dead-lettered too); ``retried``: failed, and sent to run again; ``dead``:
#: dead-lettered without an answer from the task (bad input, too many deliveries,
#: blocked the event loop); ``cancelled``: cancelled (``Handle.cancel``), queued or running.
OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "retried", "dead", "cancelled")
SUCCEEDED, FAILED, RETRIED, DEAD, CANCELLED = range(len(OUTCOMES))

#: The task name counted for a message whose task could not be read.
UNREADABLE = "(unreadable)"
#: The task name counted for a message naming a task this app does not have: what
#: any sender can write must not make a history field or a metric series of its own.
UNREGISTERED = "(unregistered)"


def bucket_of(seconds: float) -> int:
    """The index of the bucket ``seconds`` falls in (a bucket holds its upper bound)."""
    return bisect_left(BOUNDS, seconds)


@dataclass(slots=True)
class MinuteFigures:
    """One task's figures, from one queue, in one minute."""

    outcomes: list[int] = field(default_factory=lambda: [0] * len(OUTCOMES))
    run: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS) + 1))
    wait: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS) + 1))
    run_seconds: float = 0.0  # the sum of the run times counted in ``run``
    wait_seconds: float = 0.0  # the sum of the queue waits counted in ``wait``

    def add(self, other: MinuteFigures) -> None:
        """Add ``other``'s figures to these."""
        for mine, theirs in ((self.outcomes, other.outcomes), (self.run, other.run), (self.wait, other.wait)):
            for index, count in enumerate(theirs):
                mine[index] += count
        self.run_seconds += other.run_seconds
        self.wait_seconds += other.wait_seconds

    @property
    def ran(self) -> int:
        """How many runs the run-time buckets count."""
        return sum(self.run)


#: (task name, queue, minute: unix seconds // 60)
FigureKey = tuple[str, str, int]


class TaskFigures:
    """One worker process's figures since they were last taken.

    Called from the event loop's thread only (settling runs there), so it takes no lock.
    """

    __slots__ = ("_figures", "_known")

    def __init__(self, known: Collection[str] | None = None) -> None:
        self._figures: dict[FigureKey, MinuteFigures] = {}
        #: The app's task names (None: any name is counted as it is).
        self._known = known

    def ran(
        self, task: str, queue: str, outcome: int, ready_at: float, started: float, finished: float
    ) -> None:
        """Count a task that ran and came to ``outcome`` (SUCCEEDED, FAILED or RETRIED)."""
        key = (task, queue, int(finished // 60))
        figures = self._figures.get(key)
        if figures is None:
            figures = self._figures[key] = MinuteFigures()
        figures.outcomes[outcome] += 1
        run = finished - started
        wait = started - ready_at
        if wait < 0.0:  # clocks of sender and worker disagree: it waited no time we can know
            wait = 0.0
        figures.run[bisect_left(BOUNDS, run)] += 1
        figures.wait[bisect_left(BOUNDS, wait)] += 1
        figures.run_seconds += run
        figures.wait_seconds += wait

    def dead(self, task: str | None, queue: str, when: float) -> None:
        """Count a message dead-lettered without running (``task`` None: unreadable;
        a name the app does not know counts as ``UNREGISTERED``)."""
        if task is None:
            task = UNREADABLE
        elif self._known is not None and task not in self._known:
            task = UNREGISTERED
        self.ended(task, queue, DEAD, when)

    def ended(self, task: str, queue: str, outcome: int, when: float) -> None:
        """Count ``outcome`` (DEAD or CANCELLED) alone: no run time or wait to add."""
        key = (task, queue, int(when // 60))
        figures = self._figures.get(key)
        if figures is None:
            figures = self._figures[key] = MinuteFigures()
        figures.outcomes[outcome] += 1

    def take(self) -> dict[FigureKey, MinuteFigures]:
        """Everything gathered since the last call; this object starts empty again."""
        figures, self._figures = self._figures, {}
        return figures


def merge(into: dict[FigureKey, MinuteFigures], figures: dict[FigureKey, MinuteFigures]) -> None:
    """Add ``figures`` to ``into`` (a writer's backlog of figures it could not send yet),
    copying: ``figures`` may be shared with other writers."""
    for key, value in figures.items():
        mine = into.get(key)
        if mine is None:
            mine = into[key] = MinuteFigures()
        mine.add(value)
