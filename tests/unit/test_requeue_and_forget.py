"""Requeueing a dead letter forgets its task's stored failure, and only that: a
worker that runs the task again at once keeps its new result."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from hurtle.brokers import Message
from hurtle.brokers.base import BeforeMove, Requeued
from hurtle.brokers.memory import MemoryBroker
from hurtle.client import Connection
from hurtle.dead_letters import requeue_and_forget

FAILURE = b'{"status": "failed"}'
SUCCESS = b'{"status": "succeeded"}'


@pytest.fixture
async def broker() -> MemoryBroker:
    """A broker of the test's own holding one dead letter, ``task-1``, whose failure is stored."""
    made = MemoryBroker(f"memory://requeue-{uuid.uuid4().hex}", visibility_timeout=30)
    await made.enqueue([Message("task-1", "q", b"body")])
    (delivery,) = await made.fetch(["q"], 1, 1.0)
    await made.result_store().store([("task-1", FAILURE)], ttl=60)
    await made.dead_letter(delivery, "ValueError: partner down")
    return made


async def test_the_old_failure_is_forgotten_before_the_task_can_run_again(
    broker: MemoryBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = broker.result_store()
    ready_when_forgotten: list[int] = []
    forget = results.forget

    async def watched_forget(task_ids: Sequence[str]) -> None:
        ready_when_forgotten.append((await broker.stats(["q"]))[0].ready)
        await forget(task_ids)

    monkeypatch.setattr(results, "forget", watched_forget)

    requeued = await requeue_and_forget(Connection(broker, results), ["task-1"])

    assert requeued.count == 1 and requeued.task_ids == ("task-1",)
    assert ready_when_forgotten == [0]
    assert await results.get("task-1") is None


async def test_a_worker_that_runs_the_task_at_once_keeps_its_new_result(
    broker: MemoryBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = broker.result_store()
    requeue = broker.requeue_dead_by_id

    async def requeue_then_a_worker_runs_it(
        ids: Sequence[str], before_move: BeforeMove | None = None
    ) -> Requeued:
        requeued = await requeue(ids, before_move)
        (delivery,) = await broker.fetch(["q"], 1, 1.0)  # before the requeue has even returned
        await results.store([("task-1", SUCCESS)], ttl=60)
        await broker.ack([delivery])
        return requeued

    monkeypatch.setattr(broker, "requeue_dead_by_id", requeue_then_a_worker_runs_it)

    await requeue_and_forget(Connection(broker, results), ["task-1"])

    assert await results.get("task-1") == SUCCESS
