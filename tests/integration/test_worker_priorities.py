"""``hurtle worker -q high,default,low --strict`` and ``-q high:5,default:2,low:1``:
which queue a real worker runs from first, on SQLite, Redis and RabbitMQ."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import hurtle_cli, lines
from tests.redis_server import unique_redis_url

NO_ENV: dict[str, str | None] = {"HURTLE_APP": None, "HURTLE_BROKER": None, "HURTLE_RESULTS": None}

TASKS = '''
import os
import hurtle

app = hurtle.App(os.environ["PRIORITY_BROKER"])

def _record(queue: str) -> None:
    with open(os.environ["PRIORITY_RUNS"], "a") as runs:
        runs.write(queue + "\\n")

@app.task(queue="high")
def high() -> None:
    _record("high")

@app.task(queue="default")
def default() -> None:
    _record("default")

@app.task(queue="low")
def low() -> None:
    _record("low")
'''

SEND = '''
import tasks
for name in ("low", "default", "high"):  # the lowest first: oldest-first would run it first
    getattr(tasks, name).send_many([()] * {count})
'''


def sqlite_broker(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/hurtle.db"


def redis_broker(tmp_path: Path) -> str:
    return unique_redis_url()


def amqp_broker(tmp_path: Path) -> str:
    return unique_amqp_url()


@pytest.fixture(params=[sqlite_broker, redis_broker, amqp_broker], ids=["sqlite", "redis", "amqp"])
def app_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "env").write_text(request.param(tmp_path))
    return tmp_path


def run_worker(app_dir: Path, count: int, *args: str) -> list[str]:
    """Send ``count`` tasks to each queue, run one worker (one process, one thread: one
    task at a time, so the run order is the fetch order) until they are done; the
    queue of each task run, in order."""
    env = {**NO_ENV, "PRIORITY_BROKER": (app_dir / "env").read_text(), "PRIORITY_RUNS": str(app_dir / "runs")}
    environ = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    subprocess.run([sys.executable, "-c", SEND.format(count=count)], cwd=app_dir, env=environ, check=True)
    out = hurtle_cli("worker", "tasks", "--burst", "-p", "1", "-t", "1", *args, cwd=app_dir, env=env)
    assert out.returncode == 0, out.stderr
    return lines(app_dir / "runs")


@pytest.mark.slow
def test_a_strict_worker_runs_every_higher_queues_task_before_any_lower_one(app_dir: Path) -> None:
    runs = run_worker(app_dir, 10, "-q", "high,default,low", "--strict")

    assert runs == ["high"] * 10 + ["default"] * 10 + ["low"] * 10


@pytest.mark.slow
def test_a_weighted_worker_shares_its_runs_by_weight_until_a_queue_runs_dry(app_dir: Path) -> None:
    runs = run_worker(app_dir, 30, "-q", "high:5,default:2,low:1")

    # While every queue is full (the first 48 runs: high runs dry at its 30th), the
    # shares are 5:2:1, and the lowest weight runs in every stretch of 8.
    first = collections.Counter(runs[:48])
    assert (first["high"], first["default"], first["low"]) == (30, 12, 6)
    assert all("low" in runs[start : start + 8] for start in range(0, 48, 8))
    assert collections.Counter(runs) == {"high": 30, "default": 30, "low": 30}


def test_the_worker_shows_its_queue_order_as_it_starts(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    env = {**NO_ENV, "PRIORITY_BROKER": sqlite_broker(tmp_path)}

    weighted = hurtle_cli("worker", "tasks", "--burst", "-p", "1", "-q", "high:3,low:1",
                          cwd=tmp_path, env=env)
    strict = hurtle_cli("worker", "tasks", "--burst", "-p", "1", "-q", "high,low", "--strict",
                        cwd=tmp_path, env=env)

    assert "consuming high 3/4, low 1/4 (weighted)" in weighted.stderr, weighted.stderr
    assert "consuming high > low (strict priority)" in strict.stderr, strict.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["-q", "high:5,low:1", "--strict"],
         "--queues: --strict takes the queues in order, weights share fetches: not both"),
        (["-q", "high:0,low:1"], "--queues: queue 'high': weight '0' is not a positive integer"),
        (["-q", "high:x"], "--queues: queue 'high': weight 'x' is not a positive integer"),
        (["-q", "high:2,low"], "--queues: give a weight to every queue (high:5,low:1) or to none"),
        (["--strict"], "--strict takes the queues in the order -q gives them: pass -q too"),
    ],
)
def test_a_bad_queue_order_is_one_line_and_exit_2(tmp_path: Path, args: list[str], error: str) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    env = {**NO_ENV, "PRIORITY_BROKER": sqlite_broker(tmp_path)}

    out = hurtle_cli("worker", "tasks", "--burst", *args, cwd=tmp_path, env=env)

    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"hurtle: error: {error}"], out.stderr
