"""``hurtle worker --cpu-pin``: each process, and every thread it starts, on a CPU of its own."""

from __future__ import annotations

import os
from typing import Any

import pytest

from hurtle.worker.cpu_pin import can_pin
from tests.integration.conftest import Workers

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not can_pin(), reason="pinning needs Linux")]


def test_pinned_processes_each_run_on_one_cpu_in_turn_and_so_do_their_tasks_threads(
    workerapp: Any, workers: Workers
) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    handles = [workerapp.cpus_here.send() for _ in range(4)]

    proc = workers.start("-p", "2", "--cpu-pin", "on")

    ran = [handle.result(timeout=30) for handle in handles]
    children = workers.children(proc)
    assert len(children) == 2, workers.log()
    by_child = sorted(os.sched_getaffinity(pid) for pid in children)
    assert by_child == sorted([{allowed[0]}, {allowed[1 % len(allowed)]}])
    for pid, *cpus in ran:  # a pool thread, started after the pin, inherited it
        assert pid in children
        assert {*cpus} == os.sched_getaffinity(pid)
    assert "  cpus:    each process pinned to one CPU, in turn over CPUs" in workers.log()


def test_unpinned_processes_run_on_every_cpu_the_worker_may_use(workerapp: Any, workers: Workers) -> None:
    handle = workerapp.cpus_here.send()

    assert workers.start("-p", "1", "--cpu-pin", "off", "--burst").wait(60) == 0, workers.log()

    _, *cpus = handle.result(timeout=5)
    assert cpus == sorted(os.sched_getaffinity(0))
    assert "  cpus:    not pinned" in workers.log()


def test_a_replaced_process_is_pinned_to_its_slot_s_cpu_again(workerapp: Any, workers: Workers) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    handles = [workerapp.cpus_here.send() for _ in range(3)]

    # Each process is replaced after every task: the third task runs in a new one.
    workers.start("-p", "1", "--cpu-pin", "on", "--max-tasks-per-child", "1")

    ran = [handle.result(timeout=30) for handle in handles]
    assert len({pid for pid, *_ in ran}) == 3, workers.log()
    assert all(cpus == [allowed[0]] for _, *cpus in ran)
