"""``hurtle worker --burst`` and delayed tasks: waited for, and bounded by ``--burst-timeout``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Workers, hurtle_cli, lines, stats

pytestmark = pytest.mark.slow


def test_a_burst_worker_waits_for_a_delayed_task_and_runs_it(workerapp: Any, workers: Workers) -> None:
    handle = workerapp.add.options(delay=1.0).send(2, 3)

    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()

    assert handle.result(timeout=5) == 5


def test_a_burst_timeout_stops_a_worker_left_with_a_task_delayed_for_an_hour(
    workerapp: Any, workers: Workers
) -> None:
    workerapp.record.send("now")
    workerapp.record.options(delay=3600.0).send("later")

    code = workers.start("-p", "1", "--burst", "--burst-timeout", "2").wait(60)

    assert code == 1, workers.log()
    assert [line.split()[0] for line in lines(workers.marks / "runs")] == ["now"]
    assert "1 task(s) still queued or delayed after the 2s burst timeout" in workers.log()
    assert stats(workerapp.app.broker_url).delayed == 1


def test_a_burst_timeout_with_nothing_left_exits_zero(workerapp: Any, workers: Workers) -> None:
    workerapp.record.send("now")

    assert workers.start("-p", "1", "--burst", "--burst-timeout", "30").wait(60) == 0, workers.log()


def test_a_burst_timeout_without_burst_is_a_one_line_error(worker_env: dict[str, str]) -> None:
    result = hurtle_cli("worker", "workerapp", "--burst-timeout", "5")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hurtle: error: --burst-timeout bounds a --burst run: pass --burst too"
    ]
