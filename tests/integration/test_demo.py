"""`hurtle demo` as a new user runs it from the README: a real worker, no server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hurtle.demo import tasks
from hurtle.demo.workload import Plan
from hurtle.settings import ENV_BROKER, ENV_RESULTS

pytestmark = pytest.mark.slow

DEMO_LIMIT = 120.0  # seconds; the demo itself takes a few


def run_demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Not a TTY, so rich prints plain text: what a CI log or `> out.txt` shows.
    env = {k: v for k, v in os.environ.items() if k not in (ENV_BROKER, ENV_RESULTS)}
    env["COLUMNS"] = "100"
    return subprocess.run(
        [sys.executable, "-m", "hurtle", "demo", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=DEMO_LIMIT,
    )


def numbers_after(label: str, output: str) -> set[int]:
    """The number after ``label`` on every line that starts with it (past box drawing)."""
    found = re.findall(rf"^\W*{re.escape(label)}\W+([\d,]+)", output, flags=re.MULTILINE)
    return {int(number.replace(",", "")) for number in found}


def test_the_demo_runs_its_planned_workload_through_a_worker_and_summarises_it(tmp_path: Path) -> None:
    # Given the workload the demo plans for 300 tasks
    plan = Plan(300)
    # When a user runs the demo
    done = run_demo(tmp_path, "-n", "300", "-p", "2")
    out = done.stdout
    # Then it succeeds, and its summary accounts for every task as planned
    assert done.returncode == 0, out + done.stderr
    assert f"{plan.total:,} sent, {plan.expected_succeeded:,} succeeded" in out
    assert numbers_after("retries", out) == {plan.expected_retries}
    assert numbers_after("dead letters", out) == {plan.expected_dead}
    rate = numbers_after("tasks/s", out)
    assert len(rate) == 1 and rate.pop() > 0
    # And it reports percentiles of queue wait and run time
    for label in ("queue wait", "run time"):
        line = next(line for line in out.splitlines() if label in line and "p50" in line)
        assert re.search(r"p50 [\d.]+ m?s · p95 [\d.]+ m?s · p99 [\d.]+ m?s", line), line
    # And it explains its dead letters by their reasons
    assert "ValueError: card declined" in out
    assert "unknown task 'hurtle.demo.tasks.export_legacy'" in out
    # And it ends with where the time went in one of its tasks, read from the worker's profiles
    hot = re.search(r"^where the time went in (\w+): \d+% in ([\w.]+) \((\S+):\d+\)", out, re.MULTILINE)
    assert hot is not None, out
    task, function, path = hot.groups()
    assert task in {name.rsplit(".", 1)[-1] for name in tasks.app.tasks}
    assert path.endswith("hurtle/demo/tasks.py") and hasattr(tasks, function.split(".")[0]), hot.group(0)
    assert out.rstrip().endswith(f"run with --keep, then hurtle profile show {task}")
    # And it leaves nothing behind: not its temporary broker, not a hurtle.db here
    broker = re.search(r"broker: sqlite:///(\S+)", out)
    assert broker is not None, out
    assert not Path(broker.group(1)).parent.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_broker_other_processes_cannot_share_is_a_one_line_error(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--broker", "memory://")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "memory://" in done.stderr
