"""``/metrics`` as Prometheus reads it: the supervisor's totals, added exactly across processes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hurtle.observe.metrics.collector import EXPORTED, HurtleCollector
from hurtle.observe.metrics.totals import Totals
from hurtle.observe.metrics.wire import QueueCounts, Report, TaskCounts
from hurtle.observe.task_figures import BOUNDS, bucket_of

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(totals: Totals) -> Samples:
    """Every sample ``/metrics`` would show, parsed back as Prometheus parses it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HurtleCollector(totals))
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def at(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def buckets(*runs: float) -> list[int]:
    counts = [0] * (len(BOUNDS) + 1)
    for seconds in runs:
        counts[bucket_of(seconds)] += 1
    return counts


def report(slot: int, outcomes: list[int], runs: list[float], rss: int = 0,
           queues: list[QueueCounts] | None = None) -> Report:
    task = TaskCounts("tasks.add", "default", outcomes, buckets(*runs), buckets(*[0.0] * len(runs)),
                      sum(runs), 0.0)
    return Report(slot, [task], busy_async=slot, async_slots=100, busy_sync=1, sync_slots=8, rss_bytes=rss,
                  queues=queues)


def test_two_processes_figures_add_exactly_into_counters_and_histograms() -> None:
    totals = Totals()
    totals.add(report(0, [2, 0, 1, 0, 0], runs=[0.003, 0.2, 0.2]))
    totals.add(report(1, [1, 1, 0, 1, 1], runs=[0.003, 2000.0]))

    samples = scrape(totals)

    labels = {"task": "tasks.add", "queue": "default"}
    assert [at(samples, "hurtle_tasks_total", **labels, outcome=o)
            for o in ("succeeded", "failed", "retried", "dead_lettered", "cancelled")] == [3, 1, 1, 1, 1]
    assert at(samples, "hurtle_task_run_seconds_count", **labels) == 5
    assert abs(at(samples, "hurtle_task_run_seconds_sum", **labels) - 2000.406) < 1e-9
    assert at(samples, "hurtle_task_run_seconds_bucket", **labels, le="0.005") == 2
    assert at(samples, "hurtle_task_run_seconds_bucket", **labels, le="0.25") == 4
    assert at(samples, "hurtle_task_run_seconds_bucket", **labels, le="1800.0") == 4
    assert at(samples, "hurtle_task_run_seconds_bucket", **labels, le="+Inf") == 5, "past 30 minutes"
    assert at(samples, "hurtle_task_queue_wait_seconds_count", **labels) == 5


def test_the_histograms_have_the_task_figures_buckets_and_no_others() -> None:
    totals = Totals()
    totals.add(report(0, [1, 0, 0, 0, 0], runs=[0.1]))

    les = [dict(labels)["le"] for name, labels in scrape(totals) if name == "hurtle_task_run_seconds_bucket"]

    assert [float(le) for le in les] == [*BOUNDS, float("inf")]


def test_gauges_are_the_last_reported_and_add_up_over_the_processes() -> None:
    totals = Totals()
    totals.add(report(0, [0, 0, 0, 0, 0], runs=[], rss=100))
    totals.add(report(0, [0, 0, 0, 0, 0], runs=[], rss=300))  # replaces slot 0's
    totals.add(report(1, [0, 0, 0, 0, 0], runs=[], rss=50))
    totals.set_processes(2)

    samples = scrape(totals)

    assert at(samples, "hurtle_worker_rss_bytes") == 350
    assert at(samples, "hurtle_worker_process_rss_bytes", slot="0") == 300
    assert at(samples, "hurtle_worker_processes") == 2
    assert at(samples, "hurtle_worker_slots", kind="async", state="busy") == 0 + 1
    assert at(samples, "hurtle_worker_slots", kind="async", state="idle") == 200 - 1
    assert at(samples, "hurtle_worker_slots", kind="sync", state="busy") == 2
    assert at(samples, "hurtle_worker_slots", kind="sync", state="idle") == 14


def test_a_process_that_ended_leaves_no_gauge_and_its_counts_stay() -> None:
    totals = Totals()
    totals.add(report(0, [4, 0, 0, 0, 0], runs=[0.1] * 4, rss=100))
    totals.add(report(1, [1, 0, 0, 0, 0], runs=[0.1], rss=50))

    totals.forget_slot(1)
    samples = scrape(totals)

    assert at(samples, "hurtle_worker_rss_bytes") == 100
    assert ("hurtle_worker_process_rss_bytes", frozenset({("slot", "1")})) not in samples
    assert at(samples, "hurtle_tasks_total", task="tasks.add", queue="default", outcome="succeeded") == 5


def test_a_queue_figure_the_broker_cannot_know_is_absent_never_a_false_zero() -> None:
    totals = Totals()
    known = QueueCounts("default", ready=0, delayed=2, in_flight=3, dead=1, oldest_age=0.0)
    unknown = QueueCounts("amqp", ready=4, delayed=0, in_flight=None, dead=0, oldest_age=None)
    totals.add(report(0, [0, 0, 0, 0, 0], runs=[], queues=[known, unknown]))

    samples = scrape(totals)

    assert at(samples, "hurtle_queue_messages", queue="default", state="in_flight") == 3
    assert at(samples, "hurtle_queue_oldest_age_seconds", queue="default") == 0.0
    assert at(samples, "hurtle_queue_messages", queue="amqp", state="ready") == 4
    assert ("hurtle_queue_messages", frozenset({("queue", "amqp"), ("state", "in_flight")})) not in samples
    assert not any(name == "hurtle_queue_oldest_age_seconds" and ("queue", "amqp") in labels
                   for name, labels in samples)


def test_a_report_without_queues_keeps_the_last_sample() -> None:
    totals = Totals()
    totals.add(report(0, [0, 0, 0, 0, 0], runs=[], queues=[QueueCounts("default", 7, 0, 0, 0, 1.5)]))
    totals.add(report(1, [0, 0, 0, 0, 0], runs=[]))  # another slot: says nothing about queues

    assert at(scrape(totals), "hurtle_queue_messages", queue="default", state="ready") == 7


def test_the_names_shown_are_exactly_the_exported_ones() -> None:
    totals = Totals()
    totals.add(report(0, [1, 0, 0, 0, 0], runs=[0.1], queues=[QueueCounts("default", 1, 0, 0, 0, 0.5)]))

    shown = {name for name, _ in scrape(totals)}

    assert shown == set(EXPORTED)
