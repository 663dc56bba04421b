"""`hurtle bench noop` verifies the work before it reports a speed (speeds are never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from hurtle.bench.result import RunResult, Timings
from hurtle.bench.runner import check_run


def bench_json(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "hurtle", "bench", *args, "--json"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


@pytest.mark.slow
def test_bench_noop_reports_every_task_ran_once_in_json() -> None:
    code, lines, stderr = bench_json("noop", "-n", "500", "--processes", "2")

    assert code == 0, stderr
    run, summary = lines
    assert run["type"] == "run" and run["verified"] is True
    assert (run["n"], run["ran"], run["lost"], run["extra_runs"]) == (500, 500, 0, 0)
    assert (run["pending"], run["dead"], run["worker_exit"]) == (0, 0, 0)
    assert {"enqueue_rate", "processing_rate", "wall_rate"} <= run.keys()
    assert summary["type"] == "summary" and summary["verified"] is True and summary["runs"] == 1


def test_a_run_that_lost_tasks_reports_the_loss_and_no_speed() -> None:
    # Given a run whose tasks counted 497 runs of 500, with the worker's timings
    result = RunResult("noop", "sync", 500, 2, "sqlite:////x.db", ran=497, pending=3, dead=0,
                       worker_exit=0, timings=Timings(0.01, 0.1, 0.5, 0.3, 1.0))

    # When it is checked
    result.problems += check_run(result)

    # Then it is not verified, says why, and carries no rate
    assert not result.verified
    assert any(p.startswith("lost tasks: 3 of 500 runs not counted") for p in result.problems)
    assert "3 message(s) still pending after the worker exited" in result.problems
    assert result.rates() == {}
    data = result.as_json()
    assert data["verified"] is False and data["lost"] == 3
    assert not {"enqueue_rate", "processing_rate", "wall_rate"} & data.keys()


def test_a_run_where_tasks_ran_twice_is_not_verified_either() -> None:
    result = RunResult("noop", "sync", 500, 2, "sqlite:////x.db", ran=501, pending=0, dead=0,
                       worker_exit=0, timings=Timings(0.01, 0.1, 0.5, 0.3, 1.0))
    result.problems += check_run(result)
    assert result.problems == ["1 task(s) ran more than once (redelivered)"]
    assert result.rates() == {}
