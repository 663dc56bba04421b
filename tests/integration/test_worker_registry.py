"""The worker registry with real ``hurtle worker`` processes, read by ``hurtle status
--json`` as a user would: on SQLite, on Redis, and on RabbitMQ with its registry
in a Redis result store.

Each test waits for what it looks for, with a deadline; a short
``--registry-interval`` makes the records come and go in seconds.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import APPS, Workers, hurtle_cli, lines, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def workerapp(app_on_each_store: Any) -> Any:
    """The test app on SQLite, on Redis, and on RabbitMQ with a Redis result store."""
    return app_on_each_store


def status() -> dict[str, Any]:
    """``hurtle status -A workerapp --json``, as a user runs it."""
    out = hurtle_cli("status", "-A", "workerapp", "--json", cwd=APPS)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def workers_now() -> list[dict[str, Any]]:
    workers: list[dict[str, Any]] = status()["workers"]
    return workers


def test_two_processes_list_themselves_with_the_task_each_runs(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    first, second = workerapp.wait_for_go.send("first"), workerapp.wait_for_go.send("second")
    # One sync task at a time per process: each process takes one of the two.
    proc = workers.start("-p", "2", "-t", "1", "--registry-interval", "0.5")
    wait_until(lambda: len(lines(marks / "started")) == 2, "both tasks to start")

    def both_listed_running() -> list[dict[str, Any]] | None:
        listed = workers_now()
        running = [task for worker in listed for task in worker["running"]]
        return listed if len(listed) == 2 and len(running) == 2 else None

    try:
        listed = wait_until(both_listed_running, "both processes in the registry, each with its task")
        table = hurtle_cli("status", "-A", "workerapp", cwd=APPS)
    finally:
        (marks / "go").touch()

    assert table.returncode == 0, table.stderr
    for worker in listed:
        (row,) = [line for line in table.stdout.splitlines() if f"{worker['host']}:{worker['pid']}" in line]
        assert worker["running"][0]["id"][:8] in row

    assert sorted(worker["pid"] for worker in listed) == sorted(workers.children(proc))
    assert {worker["supervisor_pid"] for worker in listed} == {proc.pid}
    assert all(len(worker["running"]) == 1 for worker in listed)
    running = sorted((task["name"], task["id"], task["kind"]) for w in listed for task in w["running"])
    name = workerapp.wait_for_go.name
    assert running == sorted([(name, first.id, "sync"), (name, second.id, "sync")])
    for worker in listed:
        assert worker["busy_threads"] == 1 and worker["threads"] == 1
        assert worker["rss_bytes"] > 0
    assert first.result(timeout=60) == "first" and second.result(timeout=60) == "second"


def test_a_clean_stop_removes_every_process_at_once(workerapp: Any, workers: Workers, marks: Path) -> None:
    # Records that would live three minutes: only a deletion removes them within the test.
    proc = workers.start("-p", "2", "--registry-interval", "60")
    wait_until(lambda: len(lines(marks / "worker_start")) == 2, "both processes to start")
    wait_until(lambda: len(workers_now()) == 2, "both processes in the registry")

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, workers.log()

    assert workers_now() == []


def test_a_killed_process_disappears_after_its_records_ttl_and_its_replacement_appears(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    proc = workers.start("-p", "1", "--registry-interval", "0.3")
    wait_until(lambda: lines(marks / "worker_start"), "the process to start")  # the store exists by then
    (victim,) = wait_until(lambda: [w["pid"] for w in workers_now()], "the process in the registry")

    os.kill(victim, signal.SIGKILL)

    def replaced() -> list[int] | None:
        pids = [w["pid"] for w in workers_now()]
        return pids if victim not in pids and len(pids) == 1 else None

    (replacement,) = wait_until(replaced, "the killed process to leave the registry, its replacement in it")
    assert replacement in workers.children(proc)


def test_status_on_rabbitmq_without_a_result_store_says_workers_are_not_visible_and_how_to_fix_it(
    tmp_path: Path,
) -> None:
    url = unique_amqp_url()
    env: dict[str, str | None] = {"HURTLE_RESULTS": None, "HURTLE_APP": None}

    table = hurtle_cli("status", "--broker", url, env=env)
    as_json = hurtle_cli("status", "--broker", url, "--json", env=env)

    assert table.returncode == 0 and as_json.returncode == 0, table.stderr + as_json.stderr
    assert "workers: not visible (amqp keeps no worker registry)" in table.stdout
    assert "App(results='redis://...')" in table.stdout
    assert json.loads(as_json.stdout)["workers"] is None
    assert "workers: not visible" in as_json.stderr
