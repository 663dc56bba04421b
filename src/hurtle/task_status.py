"""What a task is doing now, from its id alone: ``Handle.status()``.

One look, never a wait: the result store first (a finished task, including a
dead-lettered one, has a result record), then the broker's queues
(``Broker.locate``), then the result store again, since a task can finish while
the broker looks (workers store a result before they acknowledge the message).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hurtle.brokers import Broker
from hurtle.envelope import Result, decode_result
from hurtle.results import ResultStore

#: ``queued``: waiting to run (ready, delayed, or waiting for a retry);
#: ``running``: leased by a live worker; ``succeeded``/``failed``: its result is
#: stored; ``cancelled``: a worker recorded its cancel (``Handle.cancel``; a task
#: cancelled while queued reads ``queued`` until a worker takes it and records
#: that); ``unknown``: none of these could be seen (never sent, its result expired
#: or not kept, or a broker that cannot look by id).
TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "unknown"]


@dataclass(frozen=True, slots=True)
class TaskLook:
    """One look at a task: its status, and its result record when it has finished."""

    status: TaskStatus
    result: Result | None = None


async def task_status(
    broker: Broker, results: ResultStore | None, task_id: str, queues: Sequence[str] | None = None
) -> TaskStatus:
    """The status of ``task_id``; ``queues`` narrows the broker's look (default: every known queue)."""
    return (await look_at_task(broker, results, task_id, queues)).status


async def look_at_task(
    broker: Broker, results: ResultStore | None, task_id: str, queues: Sequence[str] | None = None
) -> TaskLook:
    """``task_status`` with the result record it read, for a caller that shows the
    record too (``hurtle status task``) without reading it a second time."""
    finished = await _finished(results, task_id)
    if finished is not None:
        return finished
    where = (await broker.locate([task_id], queues)).get(task_id)
    if where is not None:
        return TaskLook(where)
    finished = await _finished(results, task_id)
    return TaskLook("unknown") if finished is None else finished


async def _finished(results: ResultStore | None, task_id: str) -> TaskLook | None:
    record = None if results is None else await results.get(task_id)
    if record is None:
        return None
    result = decode_result(record)
    return TaskLook(result.status, result)
