"""Rate and concurrency limits under real ``hurtle worker`` processes, across processes.

Two worker processes, each with many free slots, share one limit kept in the
broker's store (SQLite, Redis, or the Redis ``results=`` store of a RabbitMQ
app). Each run notes when it started and ended; the tests read the notes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Workers, lines, wait_until

RUNS = 30



@pytest.fixture(autouse=True)
def limited_tasks(worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The test app declares its limited tasks, here and in the workers."""
    monkeypatch.setenv("WORKERAPP_LIMITS", "1")
    worker_env["WORKERAPP_LIMITS"] = "1"

def _runs(marks: Path, name: str) -> list[tuple[str, float, float]]:
    """(key, started, ended) of each run noted in ``name``."""
    rows = [line.split() for line in lines(marks / name)]
    return [(key, float(started), float(ended)) for key, started, ended, _ in rows]


def most_at_once(runs: list[tuple[str, float, float]]) -> int:
    """The most runs that overlapped at any moment (a start at the very moment of an
    end does not overlap it)."""
    events = sorted([(ended, -1) for _, _, ended in runs] + [(started, 1) for _, started, _ in runs])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def most_in_a_second(starts: list[float]) -> int:
    """The most starts in any window of one second [t, t + 1)."""
    starts = sorted(starts)
    most = low = 0
    for high, start in enumerate(starts):
        while starts[low] <= start - 1.0:
            low += 1
        most = max(most, high - low + 1)
    return most


def _all_ran_once(marks: Path, name: str, keys: list[str]) -> list[tuple[str, float, float]]:
    wait_until(lambda: len(lines(marks / name)) >= len(keys), f"every {name} task to run")
    runs = _runs(marks, name)
    assert sorted(key for key, _, _ in runs) == sorted(keys)
    return runs


def test_a_concurrency_limit_holds_across_two_worker_processes(
    app_on_each_store: Any, workers: Workers, marks: Path
) -> None:
    # Given 30 runs of a task allowed 3 at once, and two processes with 16 threads each
    keys = [f"p{i}" for i in range(RUNS)]
    app_on_each_store.partner.send_many([(k,) for k in keys])

    # When they run
    workers.start("-p", "2", "-t", "16")

    # Then each ran once, and never more than 3 at a time
    runs = _all_ran_once(marks, "partner", keys)
    print(f"\n30 runs of 0.05s, 3 at once, over two processes: at most {most_at_once(runs)} at once,"
          f" {max(e for _, _, e in runs) - min(s for _, s, _ in runs):.2f}s from first start to last end")
    assert most_at_once(runs) <= 3, runs


def test_a_concurrency_limit_holds_for_async_tasks(workerapp: Any, workers: Workers, marks: Path) -> None:
    keys = [f"a{i}" for i in range(RUNS)]
    workerapp.partner_async.send_many([(k,) for k in keys])

    workers.start("-p", "2", "-c", "50")

    runs = _all_ran_once(marks, "partner", keys)
    assert most_at_once(runs) <= 3, runs


def test_a_rate_limit_holds_across_two_worker_processes(
    app_on_each_store: Any, workers: Workers, marks: Path
) -> None:
    # Given 40 runs of a task limited to 10 a second, and two processes with 16 threads each
    keys = [f"r{i}" for i in range(40)]
    app_on_each_store.paced.send_many([(k,) for k in keys])

    # When they run
    workers.start("-p", "2", "-t", "16")

    # Then each ran once, and no second held more than 10 starts. Permits are 0.1 s
    # apart on the store's clock; a run starts a moment after its permit, and that
    # moment varies, so one window of a second may catch an eleventh start (two
    # processes each keeping 10 a second of their own would show about 20).
    runs = _all_ran_once(marks, "paced", keys)
    starts = sorted(started for _, started, _ in runs)
    print(f"\n40 runs at 10/s over two processes: {len(starts) - 1} gaps in {starts[-1] - starts[0]:.2f}s,"
          f" at most {most_in_a_second(starts)} starts in a second")
    assert most_in_a_second([started for _, started, _ in runs]) <= 11, sorted(s for _, s, _ in runs)


def test_a_task_waiting_for_its_limit_holds_no_slot(
    app_on_each_store: Any, workers: Workers, marks: Path
) -> None:
    # Given a worker with two threads, one of them running the only permitted run
    # of a task that allows one at a time, and nine more of that task queued
    gated = app_on_each_store.one_at_a_time_until_go.send_many([(f"g{i}",) for i in range(10)])
    workers.start("-p", "1", "-t", "2")
    wait_until(lambda: lines(marks / "started"), "the first limited run to start")

    # When other tasks are sent
    others = app_on_each_store.add.send_many([(i, i) for i in range(20)])

    # Then they all run on the other thread while the limited task waits in the broker
    assert [h.result(timeout=60) for h in others] == [2 * i for i in range(20)]
    assert len(lines(marks / "started")) == 1

    # And once the permit is free, every waiting run gets its turn
    (marks / "go").touch()
    assert sorted(h.result(timeout=60) for h in gated) == sorted(f"g{i}" for i in range(10))
    assert len(lines(marks / "started")) == 10


def test_the_permit_of_a_killed_worker_expires_and_every_run_completes(
    app_on_each_store: Any, load_workerapp: Callable[..., Any], workers: Workers, marks: Path
) -> None:
    # Given a task allowed one run at a time, whose first run holds the permit
    # in a worker process that leases for 2 seconds
    workerapp = load_workerapp(visibility=2)
    gated = workerapp.one_at_a_time_until_go.send_many([(f"k{i}",) for i in range(3)])
    supervisor = workers.start("-p", "1", "-t", "4")
    wait_until(lambda: lines(marks / "started"), "the first run to start")

    # When that process is killed holding the permit (the supervisor replaces it)
    (victim,) = wait_until(lambda: workers.children(supervisor), "the worker process")
    os.kill(victim, signal.SIGKILL)

    # Then the permit expires with its lease, and a run starts again
    wait_until(lambda: len(lines(marks / "started")) >= 2, "a run after the killed one's permit expired")
    (marks / "go").touch()
    assert sorted(h.result(timeout=60) for h in gated) == ["k0", "k1", "k2"]
