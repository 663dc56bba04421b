"""`hurtle profile dump` and `hurtle profile worker` on a real, busy `hurtle worker`.

py-spy reads the worker's processes from outside, so these need ptrace rights
over the test's own children (root, or the same user where Yama allows it).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from hurtle.profiling import pyspy
from tests.integration.conftest import Workers, hurtle_cli, lines, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def py_spy_installed() -> None:
    try:
        pyspy.executable()
    except pyspy.PySpyError as exc:
        pytest.skip(str(exc))


def spinning(workers: Workers, marks: Path, task: Any) -> tuple[int, Any]:
    """A worker of one process whose task spins in ``busy_loop_until_go``: the
    supervisor's pid and the task's handle."""
    supervisor = workers.start("-p", "1")
    handle = task.send("spin")
    wait_until(lambda: "spin" in lines(marks / "started"), "the task to start spinning")
    return supervisor.pid, handle


def finish(marks: Path, handle: Any) -> None:
    (marks / "go").touch()
    assert handle.result(timeout=30) > 0


def test_a_dump_names_the_sync_task_a_thread_runs_and_its_stack(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    pid, handle = spinning(workers, marks, workerapp.spin_until_go)
    dump = hurtle_cli("profile", "dump", "--pid", str(pid))
    assert dump.returncode == 0, dump.stderr
    assert f"process {pid} (supervisor)" in dump.stdout
    assert "(worker)" in dump.stdout
    assert f"running {handle.task_name}[{handle.id}]" in dump.stdout
    task_thread = dump.stdout.split(f"running {handle.task_name}")[1].split("  thread ")[0]
    assert "busy_loop_until_go (workerapp.py:" in task_thread
    finish(marks, handle)


def test_a_dump_names_the_async_task_that_holds_the_loop(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    pid, handle = spinning(workers, marks, workerapp.spin_until_go_async)
    dump = hurtle_cli("profile", "dump", "--pid", str(pid))
    assert dump.returncode == 0, dump.stderr
    running = f"running {handle.task_name}[{handle.id}]"
    (thread,) = [line for line in dump.stdout.splitlines() if running in line]
    assert "'MainThread'" in thread  # the event loop's thread
    finish(marks, handle)


def test_sampling_a_worker_writes_a_speedscope_file_with_the_tasks_frames(
    workerapp: Any, workers: Workers, marks: Path, tmp_path: Path
) -> None:
    pid, handle = spinning(workers, marks, workerapp.spin_until_go)
    out = tmp_path / "worker.speedscope.json"
    sampled = hurtle_cli("profile", "worker", "--pid", str(pid), "--duration", "1", "-o", str(out))
    assert sampled.returncode == 0, sampled.stderr
    frames = json.loads(out.read_text())["shared"]["frames"]
    assert "busy_loop_until_go" in {frame["name"] for frame in frames}
    finish(marks, handle)


def test_the_app_finds_its_workers_supervisor(
    workerapp: Any, workers: Workers, marks: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    # An app spec of its own: other runs on this machine may run workerapp too.
    alias = f"profiled_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{alias}.py").write_text("from workerapp import app as app\n")
    worker_env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), worker_env["PYTHONPATH"]])
    supervisor = workers.start("-p", "2", app=alias)
    wait_until(lambda: len(workers.children(supervisor)) == 2, "the worker's processes")

    dump = hurtle_cli("profile", "dump", "-A", alias, env={"PYTHONPATH": worker_env["PYTHONPATH"]})
    assert dump.returncode == 0, dump.stderr
    assert f"process {supervisor.pid} (supervisor)" in dump.stdout
    for child in workers.children(supervisor):
        assert f"process {child} (worker)" in dump.stdout

    # A --pid of one of its processes dumps that process alone
    child = workers.children(supervisor)[0]
    one = hurtle_cli("profile", "dump", "--pid", str(child))
    assert one.returncode == 0, one.stderr
    assert f"process {child} (worker)" in one.stdout and "(supervisor)" not in one.stdout

    # Given a second worker of the same app, the app alone no longer says which
    second = workers.start("-p", "1", app=alias)
    wait_until(lambda: workers.children(second), "the second worker's process")
    several = hurtle_cli("profile", "dump", "-A", alias)
    assert several.returncode == 2
    assert f"{supervisor.pid}  " in several.stderr and f"{second.pid}  " in several.stderr
    assert "choose one with --pid" in several.stderr


def test_an_app_no_worker_runs_is_one_line_and_exit_2(workers: Workers) -> None:
    found = hurtle_cli("profile", "dump", "-A", f"nowhere_{uuid.uuid4().hex[:8]}")
    assert found.returncode == 2
    assert "no `hurtle worker` running nowhere_" in found.stderr
    assert found.stderr.strip().count("\n") == 0
