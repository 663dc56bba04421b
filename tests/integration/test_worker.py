"""`hurtle worker` as a user runs it: real processes on the SQLite broker."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import hurtle
from tests.integration.conftest import Workers, lines, run_counts, wait_until
from tests.integration.scenarios import a_task_that_kills_its_process_is_dead_lettered

pytestmark = pytest.mark.slow


def broker_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        ready, leased = conn.execute(
            "SELECT COUNT(*) FILTER (WHERE visible_at <= ?1),"
            " COUNT(*) FILTER (WHERE leased = 1 AND visible_at > ?1) FROM hurtle_messages",
            (time.time(),),
        ).fetchone()
        (dead,) = conn.execute("SELECT COUNT(*) FROM hurtle_dead").fetchone()
    return {"ready": ready, "in_flight": leased, "dead": dead}


def test_a_burst_worker_runs_every_task_stores_results_and_exits_zero(
    workerapp: Any, workers: Workers
) -> None:
    handles = workerapp.add.send_many([(i, i) for i in range(300)])
    worker = workers.start("-p", "2", "--burst")
    assert worker.wait(60) == 0, workers.log()
    assert [h.result(timeout=5) for h in handles] == [2 * i for i in range(300)]


def test_a_failing_task_is_retried_then_dead_lettered_with_its_traceback(
    workerapp: Any, workers: Workers, tmp_path: Path
) -> None:
    handle = workerapp.always_fails.send("disk on fire")
    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()
    with pytest.raises(hurtle.TaskFailed) as failed:
        handle.result(timeout=5)
    assert "ValueError: disk on fire" in failed.value.traceback
    assert "retry 2/2" in workers.log()
    assert broker_counts(tmp_path / "broker.db")["dead"] == 1


def test_a_delayed_task_does_not_start_before_its_delay(workerapp: Any, workers: Workers) -> None:
    # The delay counts from the call to send (the broker's own enqueue time is
    # a few ms later: the first send opens the connection).
    called_at = time.time()
    handle = workerapp.pid.options(delay=1.0).send()
    workers.start("-p", "1", "--burst")
    handle.result(timeout=30)
    assert _started_at(handle) >= called_at + 1.0


def test_sigterm_lets_tasks_in_flight_finish_and_leaves_the_rest_queued(
    workerapp: Any, workers: Workers, marks: Path, tmp_path: Path
) -> None:
    # Given a worker with 2 threads, busy with 2 tasks, and 3 more waiting
    handles = workerapp.wait_for_go.send_many([(f"t{i}",) for i in range(5)])
    worker = workers.start("-p", "1", "-t", "2", "-q", "default")
    wait_until(lambda: len(lines(marks / "started")) == 2, "two tasks to start")
    # When it is asked to stop, and the tasks in flight can then finish
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: "waiting up to" in workers.log(), "the worker to begin draining")
    (marks / "go").touch()
    # Then it finishes them, exits 0, and never started the others
    assert worker.wait(30) == 0, workers.log()
    started = lines(marks / "started")
    assert len(started) == 2
    for handle, key in zip(handles, [f"t{i}" for i in range(5)], strict=True):
        if key in started:
            assert handle.result(timeout=5) == key
    assert broker_counts(tmp_path / "broker.db") == {"ready": 3, "in_flight": 0, "dead": 0}


def test_tasks_still_running_after_the_grace_period_go_back_to_the_queue(
    workerapp: Any, workers: Workers, marks: Path, tmp_path: Path
) -> None:
    workerapp.wait_for_go_async.send_many([("a",), ("b",)])
    worker = workers.start("-p", "1", "--grace", "0.2")
    wait_until(lambda: len(lines(marks / "started")) == 2, "both tasks to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, workers.log()
    assert broker_counts(tmp_path / "broker.db") == {"ready": 2, "in_flight": 0, "dead": 0}


def test_a_second_signal_stops_at_once(workerapp: Any, workers: Workers, marks: Path) -> None:
    workerapp.wait_for_go.send("never finishes")
    worker = workers.start("-p", "1", "--grace", "600")
    wait_until(lambda: lines(marks / "started"), "the task to start")
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: "waiting up to" in workers.log(), "the worker to begin draining")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, workers.log()


def test_sighup_finishes_tasks_in_flight_then_restarts_the_worker_with_fresh_code(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    first = workerapp.wait_for_go.send("before the reload")
    supervisor = workers.start("-p", "1")
    wait_until(lambda: lines(marks / "started"), "the task to start")
    supervisor.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloading: finishing tasks in flight" in workers.log(), "the reload to begin")
    (marks / "go").touch()
    assert first.result(timeout=30) == "before the reload"
    # The same process, re-executed: it imports the app and runs on_preload again.
    wait_until(lambda: len(lines(marks / "preload")) == 2, "the re-executed worker's preload")
    assert lines(marks / "preload") == [str(supervisor.pid)] * 2
    assert workerapp.add.send(20, 22).result(timeout=30) == 42
    assert supervisor.poll() is None


def test_a_killed_worker_process_is_replaced_and_its_tasks_run_again_nothing_lost(
    load_workerapp: Any, workers: Workers, marks: Path
) -> None:
    workerapp = load_workerapp(visibility=2)
    keys = [f"k{i}" for i in range(400)]
    handles = workerapp.record.send_many([(k,) for k in keys])
    supervisor = workers.start("-p", "2", "-t", "4", "--burst")
    wait_until(lambda: len(lines(marks / "runs")) >= 50, "some tasks to run")
    victim = wait_until(lambda: workers.children(supervisor), "worker processes")[0]
    _kill(victim)
    assert supervisor.wait(120) == 0, workers.log()
    runs = Counter(line.split()[0] for line in lines(marks / "runs"))
    assert set(runs) == set(keys), "every task ran at least once"
    assert all(h.result(timeout=5) > 0 for h in handles)
    assert "was killed by signal 9" in workers.log()
    duplicates = sum(n - 1 for n in runs.values())
    print(f"duplicates after SIGKILL: {duplicates}")


@pytest.mark.parametrize(
    ("task", "room"),
    [("record_async", ["-c", "100"]), ("record", ["-t", "8"])],
    ids=["async", "sync"],
)
def test_max_tasks_per_child_is_exact_and_every_task_still_runs(
    workerapp: Any, workers: Workers, marks: Path, task: str, room: list[str]
) -> None:
    # Given 50 tasks, and processes with room for many at once but a budget of 10
    keys = [f"k{i}" for i in range(50)]
    handles = getattr(workerapp, task).send_many([(key,) for key in keys])
    worker = workers.start("-p", "1", *room, "--max-tasks-per-child", "10", "--burst")
    assert worker.wait(60) == 0, workers.log()
    # Then every task ran once, and each process ran exactly 10
    assert run_counts(marks) == dict.fromkeys(keys, 1)
    per_process = Counter(handle.result(timeout=5) for handle in handles)
    assert sorted(per_process.values()) == [10] * 5, per_process


def test_a_stuck_sync_task_is_failed_at_its_time_limit_and_its_process_replaced(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    stuck = workerapp.stuck.send(3600)
    after = workerapp.pid.send()
    assert workers.start("-p", "1", "-t", "1", "--burst").wait(60) == 0, workers.log()
    with pytest.raises(hurtle.TaskFailed, match="time limit"):
        stuck.result(timeout=5)
    stuck_pid = int(lines(marks / "started")[0])
    assert after.result(timeout=5) != stuck_pid
    assert "recycled" in workers.log()


def test_a_task_that_kills_its_process_is_dead_lettered_after_max_deliveries(
    load_workerapp: Any, workers: Workers, marks: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/broker.db"
    a_task_that_kills_its_process_is_dead_lettered(load_workerapp, workers, marks, url, visibility=0.5)


def test_preload_runs_once_before_fork_and_worker_start_once_per_process(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    workerapp.add.send(1, 1)
    supervisor = workers.start("-p", "2", "--burst")
    assert supervisor.wait(60) == 0
    assert lines(marks / "preload") == [str(supervisor.pid)]
    started = lines(marks / "worker_start")
    assert len(started) == 2 and str(supervisor.pid) not in started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_module"], "cannot import 'no_such_module'"),
        (["workerapp", "--broker", "nosuch://x"], "unknown broker URL"),
        (["workerapp", "--broker", "sqlite:////no/such/dir/x.db"], "does not exist"),
        (["workerapp:nothing"], "not a hurtle.App"),
        (["workerapp", "-p", "0"], "--processes"),
    ],
)
def test_a_user_error_is_one_line_and_exit_code_2(
    workers: Workers, args: list[str], message: str
) -> None:
    proc = workers.start(*args, app=None)
    assert proc.wait(30) == 2
    output = workers.log()
    assert message in output
    assert len(output.strip().splitlines()) == 1, output


def _kill(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGKILL)


def _result_record(handle: Any) -> Any:
    from hurtle.envelope import decode_result

    async def get() -> bytes | None:
        return await handle.app.client.connection().results.get(handle.id)

    record = handle.app.client.run_sync(get())
    assert record is not None
    return decode_result(record)


def _started_at(handle: Any) -> float:
    return float(_result_record(handle).started_at)
