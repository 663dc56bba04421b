"""``hurtle status task ID`` with real ``hurtle worker`` processes, as a user runs it:
on SQLite, on Redis, and on RabbitMQ with its results (and worker registry) in Redis.

RabbitMQ cannot look into a queue by task id: there a task nobody has finished
reads ``unknown``, and the command says so rather than guessing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hurtle.brokers.sqlite import SQLiteBroker
from hurtle.envelope import Result, encode_result
from tests.integration.conftest import APPS, Workers, hurtle_cli, lines, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def workerapp(app_on_each_store: Any) -> Any:
    return app_on_each_store


def on_rabbitmq() -> bool:
    return os.environ["HURTLE_BROKER"].startswith("amqp")


def status_task(task_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    return hurtle_cli("status", "task", task_id, "-A", "workerapp", *args, cwd=APPS)


def status_json(task_id: str) -> dict[str, Any]:
    out = status_task(task_id, "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_a_waiting_task_reads_queued_where_the_broker_can_look_and_unknown_on_rabbitmq(
    workerapp: Any,
) -> None:
    handle = workerapp.add.send(2, 3)

    out = status_task(handle.id)

    if on_rabbitmq():
        assert out.returncode == 1
        assert out.stdout == ""
        (line,) = out.stderr.splitlines()
        assert f"task {handle.id}: unknown until it finishes (amqp cannot find a message by task id" in line
    else:
        assert out.returncode == 0, out.stderr
        assert "queued (waiting to run" in out.stdout
        assert handle.id in out.stdout


def test_a_finished_task_shows_its_attempts_worker_times_and_value(workerapp: Any, workers: Workers) -> None:
    handle = workerapp.add.send(2, 3)
    proc = workers.start("-p", "1")
    assert handle.result(timeout=60) == 5

    found = status_json(handle.id)
    shown = status_task(handle.id).stdout

    assert found["state"] == "succeeded" and found["value"] == 5
    assert found["attempts"] == 1
    pid = found["worker"].rsplit(":", 1)[1]
    assert int(pid) in workers.children(proc)
    assert found["ready_at"] <= found["started_at"] <= found["finished_at"]
    assert found["queue_wait"] == pytest.approx(found["started_at"] - found["ready_at"])
    assert found["run_time"] == pytest.approx(found["finished_at"] - found["started_at"])
    assert found["error"] is None and found["dead_letter"] is None
    for label in ("succeeded", "attempts", found["worker"], "ready at", "queue wait", "run time"):
        assert label in shown
    assert any(line.split()[:2] == ["result", "5"] for line in shown.splitlines())


def test_a_running_task_names_the_worker_process_that_runs_it(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    handle = workerapp.wait_for_go.send("one")
    proc = workers.start("-p", "1", "--registry-interval", "0.3")
    wait_until(lambda: lines(marks / "started"), "the task to start")

    def listed() -> dict[str, Any] | None:
        # (On RabbitMQ the task is unknown, exit code 1, until its worker's first heartbeat.)
        found: dict[str, Any] = json.loads(status_task(handle.id, "--json").stdout)
        return found if found["running"] is not None else None

    try:
        found = wait_until(listed, "the worker registry to list the task")
        shown = status_task(handle.id).stdout
    finally:
        (marks / "go").touch()

    # On RabbitMQ too: the registry knows what the broker cannot look up.
    assert found["state"] == "running"
    assert found["worker"] == found["running"]["worker"]
    assert int(found["worker"].rsplit(":", 1)[1]) in workers.children(proc)
    assert f"{found['worker']}, running" in shown
    assert handle.result(timeout=60) == "one"


def test_a_task_that_failed_for_good_shows_its_error_traceback_attempts_and_dead_letter(
    workerapp: Any, workers: Workers
) -> None:
    handle = workerapp.always_fails.send("no [bold]such[/bold] user")  # retries=2: three attempts
    workers.start("-p", "1")
    wait_until(lambda: handle.status() == "failed", "the task to fail for good")
    wait_until(lambda: status_json(handle.id)["dead_letter"], "its dead letter")  # stored before it moves

    found = status_json(handle.id)
    shown = status_task(handle.id)

    assert found["state"] == "failed" and found["attempts"] == 3
    assert found["error"] == "ValueError: no [bold]such[/bold] user"
    assert "Traceback (most recent call last)" in found["traceback"]
    assert found["dead_letter"]["attempts"] == 3
    assert found["dead_letter"]["reason"].startswith("ValueError: no [bold]such[/bold] user")
    assert shown.returncode == 0, shown.stderr
    assert "ValueError: no [bold]such[/bold] user" in shown.stdout  # as it is, never read as markup
    assert "Traceback (most recent call last)" in shown.stdout
    assert "dead letter" in shown.stdout and "after attempt 3" in shown.stdout


def test_an_id_nobody_knows_is_one_line_and_exit_code_1(workerapp: Any) -> None:
    workerapp.add.send(1, 1)  # the broker and its queues exist

    out = status_task("0" * 32)

    assert out.returncode == 1
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert "0" * 32 in line and "Traceback" not in line
    assert ("unknown until it finishes" if on_rabbitmq() else "never sent, or its result has expired") in line


def test_options_before_task_serve_it_as_after(workerapp: Any) -> None:
    handle = workerapp.add.send(1, 1)

    out = hurtle_cli("status", "-A", "workerapp", "--json", "task", handle.id, cwd=APPS)

    assert json.loads(out.stdout)["id"] == handle.id
    assert out.returncode == (1 if on_rabbitmq() else 0), out.stderr


def test_a_long_value_is_cut_for_the_terminal_and_whole_in_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/broker.db"
    value = list(range(2000))

    async def store() -> None:
        broker = SQLiteBroker(url, visibility_timeout=30)
        try:
            record = Result(id="big", status="succeeded", value=value, started_at=1.0, finished_at=2.0)
            await broker.result_store().store([("big", encode_result(record))], 3600)
        finally:
            await broker.close()

    asyncio.run(store())

    shown = hurtle_cli("status", "task", "big", "--broker", url)
    whole = hurtle_cli("status", "task", "big", "--broker", url, "--json")

    assert shown.returncode == 0 and whole.returncode == 0, shown.stderr + whole.stderr
    assert "--json gives it all" in shown.stdout
    assert "1999" not in shown.stdout
    assert json.loads(whole.stdout)["value"] == value
    assert json.loads(whole.stdout)["run_time"] == 1.0
