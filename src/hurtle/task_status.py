"""What a task is doing now, from its id alone: ``Handle.status()``.

One look, never a wait: the result store first (a finished task, including a
dead-lettered one, has a result record), then the broker's queues
(``Broker.locate``), then the result store again, since a task can finish while
the broker looks (workers store a result before they acknowledge the message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from hurtle.brokers import Broker
from hurtle.envelope import decode_result
from hurtle.results import ResultStore

#: ``queued``: waiting to run (ready, delayed, or waiting for a retry);
#: ``running``: leased by a live worker; ``succeeded``/``failed``: its result is
#: stored; ``unknown``: none of these could be seen (never sent, its result expired
#: or not kept, or a broker that cannot look by id). ``cancelled`` is reserved for
#: task cancellation, which hurtle does not have yet: no status is ``cancelled`` today.
TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "unknown"]


async def task_status(
    broker: Broker, results: ResultStore | None, task_id: str, queues: Sequence[str] | None = None
) -> TaskStatus:
    """The status of ``task_id``; ``queues`` narrows the broker's look (default: every known queue)."""
    finished = await _finished(results, task_id)
    if finished is not None:
        return finished
    where = (await broker.locate([task_id], queues)).get(task_id)
    if where is not None:
        return where
    finished = await _finished(results, task_id)
    return "unknown" if finished is None else finished


async def _finished(results: ResultStore | None, task_id: str) -> Literal["succeeded", "failed"] | None:
    record = None if results is None else await results.get(task_id)
    return None if record is None else decode_result(record).status
