"""What ``hurtle worker`` says as it starts: the broker, the result store, each task
with its queue and kind, and warnings about queues and results it can see are wrong."""

from __future__ import annotations

import re
from pathlib import Path

from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import hurtle_cli

NO_ENV: dict[str, str | None] = {"HURTLE_APP": None, "HURTLE_BROKER": None, "HURTLE_RESULTS": None}

TASKS = '''
import hurtle

app = hurtle.App({broker!r})

@app.task
def add(x: int, y: int) -> int:
    return x + y

@app.task(queue="io")
async def fetch(url: str) -> int:
    return 200
'''


def start(tmp_path: Path, *args: str, broker: str = "sqlite:///hurtle.db") -> str:
    """Run ``hurtle worker tasks --burst ARGS`` on an app of two tasks; return its log."""
    (tmp_path / "tasks.py").write_text(TASKS.format(broker=broker))
    out = hurtle_cli("worker", "tasks", "--burst", *args, cwd=tmp_path, env=NO_ENV)
    assert out.returncode == 0, out.stderr
    return out.stderr


def warnings(log: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in log.splitlines() if " WARNING " in line]


def test_the_worker_names_its_broker_result_store_and_tasks_once(tmp_path: Path) -> None:
    log = start(tmp_path, "-p", "2")

    assert log.count(f"  broker:  sqlite:///{tmp_path}/hurtle.db\n") == 1
    assert log.count("  results: kept by the broker\n") == 1
    assert re.search(r"tasks\.add +queue default +sync, in the thread pool\n", log), log
    assert re.search(r"tasks\.fetch +queue io +async, on the event loop\n", log), log
    assert warnings(log) == []


def test_the_worker_names_its_event_loop_by_the_tasks_it_runs(tmp_path: Path) -> None:
    # Async tasks among them: uvloop. Only sync ones: asyncio's own, which keeps the GIL
    # between callbacks (uvloop takes it back for each, and busy threads make it wait).
    assert "  loop:    uvloop (async tasks run here)\n" in start(tmp_path, "-p", "1")
    assert "  loop:    asyncio (every task here is sync: " in start(tmp_path, "-p", "1", "-q", "default")
    assert "  loop:    uvloop\n" in start(tmp_path, "-p", "1", "-q", "default", "--loop", "uvloop")


def test_with_one_thread_a_sync_task_runs_one_at_a_time(tmp_path: Path) -> None:
    log = start(tmp_path, "-p", "1", "-t", "1")

    assert re.search(r"tasks\.add +queue default +sync, one at a time per process\n", log), log


def test_the_worker_warns_of_a_queue_without_tasks_and_of_tasks_it_will_not_run(tmp_path: Path) -> None:
    log = start(tmp_path, "-p", "1", "-q", "default,low")

    assert warnings(log) == [
        "queue 'low' has no registered task: only tasks sent there with options(queue='low')"
        " will run from it (a typo in -q?)",
        "task tasks.fetch (queue 'io') will not run here: this worker consumes default, low",
    ]


def test_the_worker_warns_when_results_are_not_kept_and_masks_the_password(tmp_path: Path) -> None:
    url = unique_amqp_url()
    password = url.split("@")[0].rsplit(":", 1)[1]

    log = start(tmp_path, "-p", "1", broker=url)

    assert "  broker:  amqp://guest:***@" in log and f":{password}@" not in log
    assert "  results: not kept (amqp keeps no results)\n" in log
    assert warnings(log) == [
        "results are not kept: amqp keeps none, so Handle.result() waits until its timeout;"
        " pass App(results=URL) or set HURTLE_RESULTS"
    ]


def test_a_bad_result_store_url_is_one_line_before_any_fork(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text('import hurtle\n\napp = hurtle.App(results="nosuch://x")\n')

    out = hurtle_cli("worker", "tasks", "--burst", "-p", "1", cwd=tmp_path, env=NO_ENV)

    assert out.returncode == 2, out
    assert out.stderr.startswith("hurtle: error: unknown broker URL 'nosuch://x'")
    assert len(out.stderr.splitlines()) == 1
