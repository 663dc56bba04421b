"""The supervisor's totals as Prometheus metric families, built at each scrape.

docs/metrics.md describes every name below. The histograms' buckets are the
task figures' own ``BOUNDS``: bucket counts from every process add exactly,
which a quantile summary could not.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hurtle.observe.metrics.totals import Snapshot, Totals
from hurtle.observe.task_figures import BOUNDS, CANCELLED, DEAD, FAILED, RETRIED, SUCCEEDED

#: The ``outcome`` label of ``hurtle_tasks_total``, by the task figures' outcome index.
OUTCOME_LABELS = {
    SUCCEEDED: "succeeded", FAILED: "failed", RETRIED: "retried",
    DEAD: "dead_lettered", CANCELLED: "cancelled",
}
_LE = [repr(float(bound)) for bound in BOUNDS] + ["+Inf"]  # "0.001", "1.0": as prometheus-client writes them

#: Every metric name hurtle exports, as PromQL reads it (a histogram's series included).
EXPORTED: frozenset[str] = frozenset({
    "hurtle_tasks_total",
    *(f"hurtle_task_{name}_seconds{suffix}" for name in ("run", "queue_wait")
      for suffix in ("_bucket", "_count", "_sum")),
    "hurtle_queue_messages",
    "hurtle_queue_oldest_age_seconds",
    "hurtle_worker_slots",
    "hurtle_worker_rss_bytes",
    "hurtle_worker_process_rss_bytes",
    "hurtle_worker_processes",
})


class HurtleCollector(Collector):
    """Reads ``totals`` at each scrape (``CollectorRegistry.register``)."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        snapshot = self.totals.snapshot()
        yield from _tasks(snapshot)
        yield from _queues(snapshot)
        yield from _workers(snapshot)


def _tasks(snapshot: Snapshot) -> Iterator[Metric]:
    outcomes = CounterMetricFamily(
        "hurtle_tasks", "Messages settled, by task, queue and outcome.", labels=["task", "queue", "outcome"]
    )
    run = HistogramMetricFamily(
        "hurtle_task_run_seconds", "How long tasks ran (each run: retried runs too).",
        labels=["task", "queue"],
    )
    wait = HistogramMetricFamily(
        "hurtle_task_queue_wait_seconds", "How long messages waited, from ready to started.",
        labels=["task", "queue"],
    )
    for (task, queue), figures in sorted(snapshot.tasks.items()):
        for index, label in OUTCOME_LABELS.items():
            outcomes.add_metric([task, queue, label], figures.outcomes[index])
        if figures.ran:
            run.add_metric([task, queue], _cumulative(figures.run), figures.run_seconds)
            wait.add_metric([task, queue], _cumulative(figures.wait), figures.wait_seconds)
    yield outcomes
    yield run
    yield wait


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus's cumulative ``le`` buckets, ``+Inf`` last."""
    total = 0
    buckets = []
    for le, count in zip(_LE, counts, strict=True):
        total += count
        buckets.append((le, float(total)))
    return buckets


def _queues(snapshot: Snapshot) -> Iterator[Metric]:
    messages = GaugeMetricFamily(
        "hurtle_queue_messages", "Messages in a queue, by state (in_flight: absent where the broker"
        " cannot count other consumers' leases).", labels=["queue", "state"],
    )
    age = GaugeMetricFamily(
        "hurtle_queue_oldest_age_seconds", "Seconds the oldest ready message has waited (0: none ready;"
        " absent where the broker cannot know).", labels=["queue"],
    )
    for queue in sorted(snapshot.queues, key=lambda q: q.queue):
        for state, value in (("ready", queue.ready), ("delayed", queue.delayed),
                             ("in_flight", queue.in_flight), ("dead", queue.dead)):
            if value is not None:  # a figure the broker cannot know is absent, never a false 0
                messages.add_metric([queue.queue, state], value)
        if queue.oldest_age is not None:
            age.add_metric([queue.queue], queue.oldest_age)
    yield messages
    yield age


def _workers(snapshot: Snapshot) -> Iterator[Metric]:
    gauges = snapshot.slots.values()
    slots = GaugeMetricFamily(
        "hurtle_worker_slots", "Task slots of the worker processes: async (coroutines) and sync"
        " (threads), busy or idle.", labels=["kind", "state"],
    )
    busy_async, busy_sync = sum(g.busy_async for g in gauges), sum(g.busy_sync for g in gauges)
    slots.add_metric(["async", "busy"], busy_async)
    slots.add_metric(["async", "idle"], sum(g.async_slots for g in gauges) - busy_async)
    slots.add_metric(["sync", "busy"], busy_sync)
    slots.add_metric(["sync", "idle"], sum(g.sync_slots for g in gauges) - busy_sync)
    yield slots
    yield GaugeMetricFamily(
        "hurtle_worker_rss_bytes", "Resident memory of the worker processes, added up (pages they"
        " share after fork count once per process).", value=sum(g.rss_bytes for g in gauges),
    )
    per_process = GaugeMetricFamily(
        "hurtle_worker_process_rss_bytes", "Resident memory of each worker process, by its slot"
        " (a replaced process's successor takes its slot).", labels=["slot"],
    )
    for slot, gauge in sorted(snapshot.slots.items()):
        per_process.add_metric([str(slot)], gauge.rss_bytes)
    yield per_process
    yield GaugeMetricFamily(
        "hurtle_worker_processes", "Worker processes the supervisor runs now.", value=snapshot.processes
    )
