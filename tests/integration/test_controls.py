"""Unique tasks, cancel and progress under real ``hurtle worker`` processes, on
SQLite, on Redis, and on RabbitMQ keeping its results and records in Redis.

Every wait is for an event (a marker file a task writes, a status a worker
records), bounded by ``WAIT_LIMIT``; none is a sleep that must be long enough.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import hurtle
from tests.integration.conftest import APPS, Workers, hurtle_cli, lines, stats, wait_until

pytestmark = pytest.mark.slow

SENDERS = 4  # processes sending with one unique key at once
SENDS_PER_PROCESS = 5  # threads in each, started together

_SENDER = """
import sys, threading
import workerapp
barrier = threading.Barrier({threads})
ids = []
def send(n):
    barrier.wait()
    ids.append(workerapp.wait_for_go.options(unique_key="user:42", unique_for=600).send(str(n)).id)
threads = [threading.Thread(target=send, args=(n,)) for n in range({threads})]
for t in threads: t.start()
for t in threads: t.join()
print("\\n".join(ids))
"""


def test_senders_racing_with_one_unique_key_enqueue_exactly_one_task(
    app_on_each_store: Any, workers: Workers, marks: Path, worker_env: dict[str, str]
) -> None:
    # Given several processes, each with several threads, sending with the same key at once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SENDER.format(threads=SENDS_PER_PROCESS)],
            cwd=APPS, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(SENDERS)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ids += out.split()

    # Then every send returned the same task, and the queue holds that one message
    assert len(ids) == SENDERS * SENDS_PER_PROCESS
    assert len(set(ids)) == 1
    assert stats(os.environ["HURTLE_BROKER"]).ready == 1

    # And a worker runs it once; once it finished, the key is free again
    workers.start("-p", "1")
    wait_until(lambda: lines(marks / "started"), "the unique task to start")
    (marks / "go").touch()
    handle = app_on_each_store.app.handle(ids[0])
    assert handle.result(timeout=60) in {str(n) for n in range(SENDS_PER_PROCESS)}
    assert len(lines(marks / "started")) == 1
    again = wait_until(
        lambda: (h := app_on_each_store.wait_for_go.options(unique_key="user:42").send("later")).id != ids[0]
        and h,
        "the key to be given back",
    )
    assert again.result(timeout=60) == "later"


def test_a_task_cancelled_while_queued_never_runs(
    app_on_each_store: Any, workers: Workers, marks: Path
) -> None:
    app = app_on_each_store
    doomed = app.record.send("doomed")
    doomed.cancel()
    after = app.record.send("after")

    workers.start("-p", "1")
    after.result(timeout=60)
    wait_until(lambda: doomed.status() == "cancelled", "the worker to record the cancel")

    assert [line.split()[0] for line in lines(marks / "runs")] == ["after"]
    with pytest.raises(hurtle.TaskCancelled):
        doomed.result(timeout=10)
    assert stats(os.environ["HURTLE_BROKER"]).dead == 0


def test_a_running_async_task_is_cancelled_its_cleanup_runs_and_it_is_not_retried(
    app_on_each_store: Any, workers: Workers, marks: Path
) -> None:
    app = app_on_each_store
    workers.start("-p", "1")
    handle = app.wait_for_cancel_async.send("a")
    wait_until(lambda: lines(marks / "started"), "the task to start")

    handle.cancel()

    wait_until(lambda: handle.status() == "cancelled", "the task to be cancelled")
    assert lines(marks / "cleanup") == ["a"]
    assert lines(marks / "started") == ["a"]  # not retried
    assert stats(os.environ["HURTLE_BROKER"]).dead == 0


def test_hurtle_cancel_stops_a_running_sync_task_through_current_task_cancelled(
    app_on_each_store: Any, workers: Workers, marks: Path
) -> None:
    app = app_on_each_store
    workers.start("-p", "1", "--threads", "2")
    handle = app.wait_for_cancel_sync.send("s")
    wait_until(lambda: lines(marks / "started"), "the task to start")

    done = hurtle_cli("cancel", handle.id, "-A", "workerapp", cwd=APPS)

    assert done.returncode == 0, done.stderr
    assert "cancel requested" in done.stdout
    wait_until(lambda: handle.status() == "cancelled", "the task to be recorded cancelled")
    assert lines(marks / "stopped") == ["s"]
    shown = hurtle_cli("status", "task", handle.id, "-A", "workerapp", cwd=APPS)
    assert shown.returncode == 0 and "cancelled" in shown.stdout
    again = hurtle_cli("cancel", handle.id, "-A", "workerapp", cwd=APPS)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "already been cancelled" in again.stderr


def test_progress_is_visible_while_the_task_runs(
    app_on_each_store: Any, workers: Workers, marks: Path
) -> None:
    app = app_on_each_store
    workers.start("-p", "1")
    handle = app.report_progress.send("p", 3, 10)
    wait_until(lambda: lines(marks / "started"), "the task to start")

    progress = wait_until(handle.progress, "the progress report to be stored")
    assert (progress.done, progress.total, progress.note) == (3, 10, "rows")
    shown = hurtle_cli("status", "task", handle.id, "-A", "workerapp", cwd=APPS)
    assert shown.returncode == 0, shown.stderr
    assert "3/10 (30%) rows" in shown.stdout

    (marks / "go").touch()
    assert handle.result(timeout=60) == "p"
    assert handle.progress() == progress  # kept as long as the result


def test_cancelling_an_unknown_task_is_one_line_and_exit_code_1(app_on_each_store: Any) -> None:
    app_on_each_store.record.send("make the queue exist")
    done = hurtle_cli("cancel", "no-such-task", "-A", "workerapp", cwd=APPS)
    if app_on_each_store.app.broker_url.scheme == "amqp":  # cannot look by id: the cancel is recorded
        assert done.returncode == 0 and "cannot tell" in done.stdout
        return
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "no task no-such-task" in done.stderr


def test_a_sync_task_that_ignores_its_cancel_alone_in_its_process_is_ended_after_the_grace(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    # Given a worker running one sync task per process, and a task that never checks `cancelled`
    workers.start("-p", "1", "--threads", "1")
    handle = workerapp.wait_for_go.send("deaf")
    wait_until(lambda: lines(marks / "started"), "the task to start")
    first_process = lines(marks / "worker_start")

    # When it is cancelled
    handle.cancel()

    # Then after the grace period it is recorded cancelled and its process replaced
    wait_until(lambda: handle.status() == "cancelled", "the grace period to end")
    wait_until(lambda: len(lines(marks / "worker_start")) > len(first_process), "a new worker process")
    after = workerapp.add.send(1, 2)
    assert after.result(timeout=60) == 3
    assert lines(marks / "started") == ["deaf"]  # never run again


def test_hurtle_cancel_on_rabbitmq_without_a_result_store_is_one_line_and_exit_code_2() -> None:
    done = hurtle_cli("cancel", "some-task", "--broker", "amqp://guest:guest@127.0.0.1:5672/",
                      env={"HURTLE_RESULTS": None, "HURTLE_APP": None})

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "keeps no records" in done.stderr and "guest:guest" not in done.stderr
