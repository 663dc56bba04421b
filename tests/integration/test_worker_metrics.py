"""``hurtle worker --metrics-port``: what /metrics counts is the work done, exactly,
across processes and across the processes that replaced them, on every broker."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from hurtle.brokers import from_url
from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import Samples, Workers, hurtle_cli, lines, scrape, wait_until
from tests.redis_server import free_port, unique_redis_url

pytestmark = pytest.mark.slow

SUCCESSES = 40
FAILURES = 3  # always_fails: retries=2, so each is retried twice, then fails for good
RUNS_PER_FAILURE = 3
PER_CHILD = 10  # --max-tasks-per-child: 50 messages through 2 slots recycle several processes


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def broker_url(
    request: pytest.FixtureRequest, worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> str:
    """The broker under test, for this process (the producer) and the workers; no
    result store on RabbitMQ: metrics need none."""
    url = {
        "sqlite": f"sqlite:///{tmp_path}/broker.db",
        "redis": unique_redis_url(),
        "amqp": unique_amqp_url(),
    }[request.param]
    monkeypatch.setenv("HURTLE_BROKER", url)
    worker_env["HURTLE_BROKER"] = url
    return url


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str) -> float:
    return sum(v for (sample, _), v in samples.items() if sample == name)


def test_metrics_count_every_outcome_exactly_across_recycled_processes(
    broker_url: str, load_workerapp: Any, workers: Workers
) -> None:
    # Given successes, failures that are retried, and a message naming no task
    workerapp = load_workerapp()
    workerapp.add.send_many([(i, i) for i in range(SUCCESSES)])
    workerapp.always_fails.send_many([(f"no {i}",) for i in range(FAILURES)])
    workerapp.app.send_task("workerapp.no_such_task")
    settled = SUCCESSES + FAILURES * RUNS_PER_FAILURE + 1

    # When two processes that are replaced every few tasks run them, with /metrics on
    port = free_port()
    workers.start("-p", "2", "--max-tasks-per-child", str(PER_CHILD), "--metrics-port", str(port))

    def counted_and_drained() -> Samples | None:
        _, samples = scrape(port)
        queue = {state: value(samples, "hurtle_queue_messages", queue="default", state=state)
                 for state in ("ready", "delayed", "dead")}
        done = total(samples, "hurtle_tasks_total") >= settled and queue["dead"] == FAILURES + 1
        return samples if done and queue["ready"] == 0 and queue["delayed"] == 0 else None

    samples = wait_until(counted_and_drained, f"{settled} settled messages at /metrics", limit=120)

    # Then the counters are the work done, no more, no less
    add, fails = "workerapp.add", "workerapp.always_fails"
    outcomes = {
        (task, outcome): value(samples, "hurtle_tasks_total", task=task, queue="default", outcome=outcome)
        for task in (add, fails, "(unregistered)")
        for outcome in ("succeeded", "failed", "retried", "dead_lettered")
    }
    assert outcomes == {
        (add, "succeeded"): SUCCESSES, (add, "failed"): 0, (add, "retried"): 0, (add, "dead_lettered"): 0,
        (fails, "succeeded"): 0, (fails, "failed"): FAILURES, (fails, "retried"): FAILURES * 2,
        (fails, "dead_lettered"): 0,
        ("(unregistered)", "succeeded"): 0, ("(unregistered)", "failed"): 0,
        ("(unregistered)", "retried"): 0, ("(unregistered)", "dead_lettered"): 1,
    }
    assert total(samples, "hurtle_tasks_total") == settled
    # And each run is in the run-time and queue-wait histograms once
    for task, runs in ((add, SUCCESSES), (fails, FAILURES * RUNS_PER_FAILURE)):
        for histogram in ("hurtle_task_run_seconds", "hurtle_task_queue_wait_seconds"):
            assert value(samples, f"{histogram}_count", task=task, queue="default") == runs
            assert value(samples, f"{histogram}_bucket", task=task, queue="default", le="+Inf") == runs
    # And processes were replaced on the way (their counts reached the supervisor as they stopped)
    assert "recycled" in workers.log()
    # And the queue figures are the broker's own, a figure it cannot know absent, never a false 0
    broker = from_url(broker_url)
    try:
        in_flight = value(samples, "hurtle_queue_messages", queue="default", state="in_flight")
        age = value(samples, "hurtle_queue_oldest_age_seconds", queue="default")
        assert in_flight == (0 if broker.counts_all_in_flight else None)
        assert age == (0.0 if broker.knows_queue_age else None)
    finally:
        asyncio.run(broker.close())


def test_metrics_show_the_processes_their_slots_and_memory(
    broker_url: str, load_workerapp: Any, workers: Workers
) -> None:
    load_workerapp()
    port = free_port()
    workers.start("-p", "2", "-c", "10", "-t", "3", "--metrics-port", str(port))

    def both_reported() -> Samples | None:
        _, samples = scrape(port)
        slots = {(kind, state): value(samples, "hurtle_worker_slots", kind=kind, state=state)
                 for kind in ("async", "sync") for state in ("busy", "idle")}
        ready = value(samples, "hurtle_worker_processes") == 2 and slots[("sync", "idle")] == 2 * 3
        return samples if ready and slots[("async", "idle")] == 2 * 10 else None

    samples = wait_until(both_reported, "both processes' slots at /metrics")

    per_process = [value(samples, "hurtle_worker_process_rss_bytes", slot=slot) for slot in ("0", "1")]
    assert all(rss and rss > 1_000_000 for rss in per_process), per_process
    assert value(samples, "hurtle_worker_rss_bytes") == sum(per_process)  # type: ignore[arg-type]


def test_a_metrics_port_in_use_is_one_line_before_any_process_starts(
    broker_url: str, load_workerapp: Any, tmp_path: Path, workers: Workers
) -> None:
    load_workerapp()
    port = free_port()
    workers.start("-p", "1", "--metrics-port", str(port))
    wait_until(lambda: scrape(port)[1], "the first worker's /metrics")

    done = hurtle_cli("worker", "workerapp", "-p", "1", "--metrics-port", str(port), cwd=tmp_path,
                      env=dict(workers.env))

    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert f"--metrics-port: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert len(lines(workers.marks / "preload")) == 1, "the second one neither preloaded nor forked"


def test_metrics_without_prometheus_client_say_what_to_install(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    # Given an environment where prometheus-client cannot be imported
    hidden = tmp_path / "hidden"
    (hidden / "prometheus_client").mkdir(parents=True)
    (hidden / "prometheus_client" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(hidden), worker_env["PYTHONPATH"]])}

    done = hurtle_cli("worker", "workerapp", "--metrics-port", str(free_port()), cwd=tmp_path, env=env)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "--metrics-port needs prometheus-client: pip install 'hurtle[metrics]'" in done.stderr
