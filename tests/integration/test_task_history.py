"""The task history with real ``hurtle worker`` processes, read by ``hurtle status`` as a
user would: on SQLite, on Redis, and on RabbitMQ with its history in a Redis result store.

A burst run writes its last figures as it stops cleanly, so once it exited the
history holds every message it settled: the counts are checked exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import APPS, Workers, hurtle_cli, lines, queue_table, wait_until

pytestmark = pytest.mark.slow

SUCCEEDED, FAILING, DEAD = 20, 3, 2
RETRIES = 2  # always_fails's: each failing task is retried twice, then fails for good


@pytest.fixture
def workerapp(app_on_each_store: Any) -> Any:
    """The test app on SQLite, Redis, and RabbitMQ keeping its history in Redis."""
    return app_on_each_store


def status_json() -> dict[str, Any]:
    out = hurtle_cli("status", "-A", "workerapp", "--json", cwd=APPS)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def run_known_work(workerapp: Any, workers: Workers, marks: Path) -> None:
    """Known work, settled by a burst run of two processes that each take part."""
    workerapp.add.send_many([(i, i) for i in range(SUCCEEDED)])
    for i in range(FAILING):
        workerapp.always_fails.send(f"no {i}")
    for _ in range(DEAD):
        workerapp.app.send_task("workerapp.no_such_task")  # dead-lettered: no such task here
    # One sync task at a time per process: each process takes one of the two, so the
    # figures of both processes meet in the history.
    workerapp.wait_for_go.send("first")
    workerapp.wait_for_go.send("second")
    proc = workers.start("-p", "2", "-t", "1", "--burst")
    wait_until(lambda: len(set(lines(marks / "started"))) == 2, "both processes to start a wait_for_go")
    (marks / "go").touch()
    assert proc.wait(60) == 0, workers.log()


def test_a_burst_run_of_two_processes_leaves_exact_counts_per_task(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    run_known_work(workerapp, workers, marks)

    data = status_json()

    tasks = {task["name"]: task for task in data["tasks"]}
    expected = {
        "workerapp.add": (SUCCEEDED, 0, 0, 0),
        "workerapp.always_fails": (0, FAILING, FAILING * RETRIES, 0),
        "(unregistered)": (0, 0, 0, DEAD),  # a name the app lacks: no field of its own
        "workerapp.wait_for_go": (2, 0, 0, 0),  # one from each process
    }
    assert set(tasks) == set(expected)
    for name, (succeeded, failed, retried, dead) in expected.items():
        for window in ("last_5m", "last_1h"):
            figures = tasks[name][window]
            counted = (figures["succeeded"], figures["failed"], figures["retried"], figures["dead"])
            assert counted == (succeeded, failed, retried, dead), (name, window)
            assert figures["settled"] == sum(counted)
    add = tasks["workerapp.add"]["last_5m"]
    assert add["failure_rate"] == 0.0 and add["per_minute"] > 0
    assert add["run_p50"] is not None and add["wait_p95"] is not None
    assert tasks["workerapp.always_fails"]["last_5m"]["failure_rate"] == 1.0
    assert tasks["(unregistered)"]["last_5m"]["run_p50"] is None  # it never ran
    # the task that took the most run time first: wait_for_go waited for the test
    assert data["tasks"][0]["name"] == "workerapp.wait_for_go"


def test_status_shows_the_queue_rates_and_the_tasks_table(
    workerapp: Any, workers: Workers, marks: Path
) -> None:
    run_known_work(workerapp, workers, marks)

    data = status_json()
    table = hurtle_cli("status", "-A", "workerapp", cwd=APPS)

    (queue,) = [q for q in data["queues"] if q["name"] == "default"]
    settled = SUCCEEDED + FAILING * (RETRIES + 1) + DEAD + 2
    assert queue["out_per_minute"] > 0
    assert queue["out_per_minute"] == pytest.approx(settled / _span(data), rel=0.25)
    if workerapp.app.broker_url.scheme == "amqp":
        assert queue["in_per_minute"] is None  # RabbitMQ cannot know it: never a guess
    assert table.returncode == 0, table.stderr
    row = queue_table(table.stdout)["default"]
    assert row["out/min"] != "?"
    assert "workerapp.always_fails" in table.stdout and "run p95" in table.stdout


def _span(data: dict[str, Any]) -> float:
    """The minutes the 5-minute window covered, as the rates were computed."""
    add = next(t for t in data["tasks"] if t["name"] == "workerapp.add")["last_5m"]
    return float(add["settled"] / add["per_minute"])


def test_a_deploy_marker_is_listed_and_named_as_the_latest(workerapp: Any) -> None:
    workerapp.app.mark_deploy("v1.1")
    marked = hurtle_cli("deploy-mark", "v1.2", "-A", "workerapp", cwd=APPS)
    assert marked.returncode == 0, marked.stderr
    assert "marked deploy v1.2" in marked.stdout

    data = status_json()
    shown = hurtle_cli("status", "-A", "workerapp", cwd=APPS)

    assert [mark["text"] for mark in data["deploys"]] == ["v1.1", "v1.2"]
    assert "deployed v1.2, " in shown.stdout and " ago" in shown.stdout


def test_a_deploy_marker_without_text_is_a_usage_error(workerapp: Any) -> None:
    out = hurtle_cli("deploy-mark", "  ", "-A", "workerapp", cwd=APPS)

    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "needs a text" in out.stderr


def test_deploy_mark_on_rabbitmq_without_a_result_store_says_where_to_keep_it() -> None:
    out = hurtle_cli("deploy-mark", "v1.2", "--broker", unique_amqp_url(), env={"HURTLE_RESULTS": None})

    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "amqp keeps no task history" in out.stderr and "results=" in out.stderr
