"""A running task can ask who it is: hurtle.current_task()."""

from __future__ import annotations

import pytest

import hurtle
import hurtle.testing


def test_a_task_knows_its_id_and_attempt_sync_and_async() -> None:
    app = hurtle.App("memory://current-task")
    seen: list[tuple[str, int, int]] = []

    @app.task(retries=2, backoff=hurtle.Constant(0.0))
    def flaky() -> int:
        context = hurtle.current_task()
        seen.append((context.id, context.attempt, context.deliveries))
        if context.attempt == 0:
            raise ValueError("first try fails")
        return context.attempt

    @app.task
    async def who_am_i() -> str:
        return hurtle.current_task().name

    first, second = flaky.send(), who_am_i.send()
    hurtle.testing.drain(app)
    assert first.result(timeout=5) == 1
    assert seen == [(first.id, 0, 1), (first.id, 1, 1)]
    assert second.result(timeout=5) == who_am_i.name
    app.close()


def test_outside_a_task_current_task_says_so() -> None:
    with pytest.raises(RuntimeError, match="only available inside a running task"):
        hurtle.current_task()
