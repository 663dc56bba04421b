"""An async task that blocks its event loop, under a real ``hurtle worker``.

``time.sleep`` inside ``async def`` stops every task of its process, and the
lease heartbeats with them. The worker must find the task that blocks while it
blocks, name it, charge it alone, and let the tasks beside it finish. (The
same scenario runs on Redis and RabbitMQ in their worker tests.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import hurtle
from tests.integration.conftest import Workers, lines
from tests.integration.scenarios import a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone

pytestmark = pytest.mark.slow


def test_a_blocked_loop_names_the_task_that_blocks_it_and_charges_it_alone(
    load_workerapp: Any, workers: Workers, marks: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/broker.db"
    a_blocked_loop_is_charged_to_the_task_that_blocks_it_alone(load_workerapp, workers, marks, url)


def test_a_block_no_signal_can_interrupt_gets_its_process_killed_and_the_task_dead_lettered(
    load_workerapp: Any, workers: Workers, marks: Path
) -> None:
    # Given a task that blocks its loop with every signal blocked (as a C call
    # holding the GIL would), allowed a single delivery
    workerapp = load_workerapp(visibility=1, max_deliveries=1)
    blocker = workerapp.block_the_loop_deaf_to_signals.send()
    # When a burst worker runs it
    assert workers.start("-p", "1", "--burst").wait(60) == 0, workers.log()
    # Then the supervisor kills the stalled process, and the redelivery is over the limit
    assert "its event loop has not run" in workers.log()
    assert len(lines(marks / "runs")) == 1
    with pytest.raises(hurtle.TaskFailed, match="max_deliveries"):
        blocker.result(timeout=5)
