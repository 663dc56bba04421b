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
from hurtle.envelope import decode
from tests.integration.conftest import Workers, dead_letters, lines, run_counts, stats, wait_until

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
    # The victim is chosen once tasks run: a supervisor's first child can be a passing
    # process (a library's import once ran ``file`` on the Python binary), not a worker.
    wait_until(lambda: len(lines(marks / "runs")) >= 500, "some tasks to run")
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


INNOCENT = [f"innocent{i}" for i in range(5)]


def a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone(
    load_workerapp: Callable[..., Any], workers: Workers, marks: Path, url: str
) -> None:
    """Five well-behaved async tasks and one that calls ``time.sleep(15)``, fetched
    together by one process whose leases last 6 s: the blocker is named with its
    id while it blocks and dead-lettered; the five finish, each run once."""
    workerapp = load_workerapp(visibility=6)
    innocent = workerapp.patient.send_many([(key,) for key in INNOCENT])
    blocker = workerapp.block_the_loop_for.send(15)
    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()
    # The five were in flight during the block, and finished after it, each once
    assert len(lines(marks / "started")) == 5
    assert lines(marks / "runs")[0].startswith("blocker "), "the block came before they finished"
    assert all(handle.result(timeout=5) > 0 for handle in innocent)
    assert run_counts(marks) == {**dict.fromkeys(INNOCENT, 1), "blocker": 1}
    # Only the blocker is dead-lettered, with a reason that names the blocked loop
    with pytest.raises(hurtle.TaskFailed, match="blocked the event loop for"):
        blocker.result(timeout=5)
    (dead,) = dead_letters(url)
    assert decode(dead.body).id == blocker.id and "blocked the event loop" in dead.reason
    # The log named it, with its id, while it blocked
    named = f"{workerapp.block_the_loop_for.name}[{blocker.id}] is blocking the event loop"
    log = workers.log()
    assert named in log, log
    assert log.index(named) < log.index("dead-lettered"), log
