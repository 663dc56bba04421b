"""What a benchmark run reports: rates only when its work was verified.

A run that lost a task, ran one twice, left messages behind or dead-lettered
any carries ``problems`` and no rates: a fast wrong run is not a result.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hurtle.urls import SecretURL, display_url


@dataclass
class Timings:
    """Seconds measured in one run."""

    enqueue_s: float  # send_many calls alone, in the producer
    processing_s: float  # first task start -> last task finish, by the tasks' own clocks
    wall_s: float  # worker subprocess start -> its exit
    startup_s: float  # worker subprocess start -> first task start
    worker_cpu_s: float  # user + system CPU of the worker's processes, start-up included


@dataclass
class RunResult:
    workload: str
    kind: str
    n: int
    processes: int
    broker: str | SecretURL  # printed (as_json) without its password, whichever it is
    ran: int = 0  # task runs counted by the tasks themselves
    pending: int | None = None  # left in the queue after the worker exited (None: not run)
    dead: int | None = None  # dead-lettered during the run
    worker_exit: int | None = None
    timings: Timings | None = None
    problems: list[str] = field(default_factory=list)
    worker_log: str = ""
    extra: dict[str, float] = field(default_factory=dict)  # a workload's own measures
    throughput: bool = True  # False: tasks were sent at a set pace; rates would measure the pace

    @property
    def verified(self) -> bool:
        return not self.problems and self.timings is not None

    def rates(self) -> dict[str, float]:
        """Tasks per second (and start-up seconds); empty for an unverified run."""
        t = self.timings
        if t is None or not self.verified:
            return {}
        if not self.throughput:
            return {"startup_s": t.startup_s, **self.extra}
        rates = {"enqueue_rate": self.n / t.enqueue_s}
        if t.processing_s > 0:  # one task has no window to divide by
            rates["processing_rate"] = self.n / t.processing_s
        rates.update(
            wall_rate=self.n / t.wall_s,
            startup_s=t.startup_s,
            worker_cpu_us_per_task=t.worker_cpu_s / self.n * 1e6,
        )
        rates.update(self.extra)
        return rates

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "run",
            "workload": self.workload,
            "kind": self.kind,
            "n": self.n,
            "processes": self.processes,
            "broker": display_url(self.broker),
            "verified": self.verified,
            "ran": self.ran,
            "lost": None if self.pending is None else max(0, self.n - self.ran),
            "extra_runs": None if self.pending is None else max(0, self.ran - self.n),
            "pending": self.pending,
            "dead": self.dead,
            "worker_exit": self.worker_exit,
        }
        if self.verified and self.timings is not None:
            data.update(
                enqueue_s=self.timings.enqueue_s,
                processing_s=self.timings.processing_s,
                wall_s=self.timings.wall_s,
                worker_cpu_s=self.timings.worker_cpu_s,
            )
            data.update(self.rates())  # a workload's extra may repeat wall_s, processing_s
        else:
            data["problems"] = self.problems
        return data


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float


def summarize(runs: Sequence[RunResult]) -> dict[str, Spread]:
    """Median and range of each rate over verified runs."""
    per_measure: dict[str, list[float]] = {}
    for run in runs:
        for name, value in run.rates().items():
            per_measure.setdefault(name, []).append(value)
    return {
        name: Spread(statistics.median(values), min(values), max(values))
        for name, values in per_measure.items()
    }
