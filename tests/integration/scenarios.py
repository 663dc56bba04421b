"""Worker scenarios that every broker must pass.

A broker's test module sets its broker up (the Given) and runs the scenario;
the steps and the checks live here once, so SQLite, Redis and RabbitMQ are held
to the same standard.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hurtle
from tests.integration.conftest import Workers, lines, run_counts, stats, wait_until

#: Runs a SIGKILL may repeat: what the killed processes held in flight plus the acks
#: they had not flushed yet (-t 8 per process, acks coalesced per loop turn).
DUPLICATES_MAX = 200


def send_keyed(workerapp: Any, count: int) -> list[str]:
    """``count`` ``record`` tasks with keys k0, k1, ... (sent 500 a batch); their keys."""
    keys = [f"k{i}" for i in range(count)]
    for start in range(0, count, 500):
        workerapp.record.send_many([(k,) for k in keys[start : start + 500]])
    return keys


def kill_mid_run(marks: Path, *pids: int) -> int:
    """SIGKILL ``pids`` in the given order once 500 tasks have run; how many had run."""
    wait_until(lambda: len(lines(marks / "runs")) >= 500, "some tasks to run")
    killed_at = len(lines(marks / "runs"))
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return killed_at


def every_task_ran(marks: Path, url: str, keys: list[str], killed_at: int) -> int:
    """Wait until each key ran at least once and nothing is pending; report and
    return the duplicates (a kill may repeat what the dead held, never lose it)."""
    wait_until(lambda: set(run_counts(marks)) == set(keys), "every task to run", limit=60)
    wait_until(lambda: stats(url).pending == 0, "nothing left pending")
    assert stats(url).dead == 0
    runs = run_counts(marks)
    duplicates = sum(n - 1 for n in runs.values())
    print(f"\nSIGKILL after {killed_at} runs: {len(keys)} tasks, {sum(runs.values())} runs,"
          f" {duplicates} duplicates")
    return duplicates


def a_killed_process_is_replaced_and_loses_nothing(
    workerapp: Any, workers: Workers, marks: Path, url: str
) -> None:
    """3,000 tasks, two processes; one is SIGKILLed mid-run: the supervisor replaces
    it, every task runs at least once, few twice."""
    keys = send_keyed(workerapp, 3000)
    supervisor = workers.start("-p", "2", "-t", "8")
    victim = wait_until(lambda: workers.children(supervisor), "worker processes")[0]
    killed_at = kill_mid_run(marks, victim)
    assert every_task_ran(marks, url, keys, killed_at) < DUPLICATES_MAX
    assert "was killed by signal 9" in workers.log()
    replaced = wait_until(lambda: len(workers.children(supervisor)) == 2, "a replacement process")
    assert replaced and victim not in workers.children(supervisor)


def a_task_that_kills_its_process_is_dead_lettered(
    load_workerapp: Callable[..., Any], workers: Workers, marks: Path, url: str, **app: Any
) -> None:
    """A task that SIGKILLs its own process, with ``max_deliveries=2``: it runs twice,
    then is dead-lettered with the reason; the task beside it runs once."""
    workerapp = load_workerapp(max_deliveries=2, **app)
    handle = workerapp.kill_my_process.send()
    good = workerapp.add.send(2, 3)
    assert workers.start("-p", "1", "-t", "1", "--burst").wait(60) == 0, workers.log()
    assert len(lines(marks / "runs")) == 2
    with pytest.raises(hurtle.TaskFailed, match="max_deliveries"):
        handle.result(timeout=5)
    assert good.result(timeout=5) == 5
    assert stats(url).dead == 1
