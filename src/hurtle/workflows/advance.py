"""What a worker does when a workflow step ends: move the workflow on, or fail it.

On success (``succeeded``) the step's result goes where its innermost frame
says: to the next node of its chain, started at once, or into its group's set
in the broker's store (``RecordStore.gather``: the member's first value kept,
the members counted atomically). The member whose result completes the set
reads the whole set and moves on with the list, in member order.

Every message a worker sends here is a *copy*: a worker that dies after sending
and before acknowledging its own message runs its step again and sends the
next one again. Ids were fixed when the workflow was sent, so both copies are
the same task, and the claim the consumer makes before running a copy
(``hurtle.schedule.ticks``) lets one of them run. A member counted before a
crash is counted once when it runs again; the next node is sent again, and
claimed once. So a chord's callback runs once, with every member's result.

On a failure for good (``failed``) nothing after the step is started. Each
group on the way out is marked failed once (``put_if``): the member that marks
it calls the group's ``on_failure`` handler and writes the failed results the
group's and the workflow's handles wait for; a member that finds the mark set
by another stops there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from hurtle.envelope import Envelope, Result, encode_result
from hurtle.errors import ConfigurationError
from hurtle.records import RecordStore
from hurtle.schedule.ticks import COPY_HEADER
from hurtle.workflows.batch import GatherBatch
from hurtle.workflows.plan import NO_INPUT, start, step_envelope
from hurtle.workflows.wire import Flow, Gather, StepNode, Then, final_id, flow_problem

if TYPE_CHECKING:
    from hurtle.app import App
    from hurtle.brokers import Broker
    from hurtle.results import ResultStore

#: Seconds a workflow's state (member results, failure marks) is kept after it
#: last changed: a workflow whose members run further apart than this loses them.
FLOW_TTL = 7 * 86_400.0

_encoder = msgspec.json.Encoder()


def gather_key(group: str) -> str:
    return f"flow:gather:{group}"


def failed_key(group: str) -> str:
    return f"flow:failed:{group}"


def tree_key(root: str) -> str:
    return f"flow:tree:{root}"


class FlowSteps:
    """One worker process's workflow duties, on its broker and record store."""

    def __init__(
        self, app: App, broker: Broker, results: ResultStore | None,
        records: Callable[[], RecordStore | None], worker: str,
    ) -> None:
        self.app = app
        self.broker = broker
        self.results = results
        #: The record store, opened on first use (the one periodic ticks claim in).
        self.records = records
        self.worker = worker
        self._gathers = GatherBatch(self._records)

    def _records(self) -> RecordStore:
        store = self.records()
        if store is None:
            raise ConfigurationError(
                "a workflow step came, but no store keeps workflow state: on RabbitMQ pass results= to App()"
            )
        return store

    async def succeeded(self, envelope: Envelope, value: Any) -> None:
        """Move the workflow on with ``value``, the result of ``envelope``'s step."""
        flow = envelope.flow
        assert isinstance(flow, Flow)
        frames = flow.frames
        for depth, frame in enumerate(frames):
            if isinstance(frame, Then):
                if not frame.rest:
                    continue
                outer = frames[depth + 1 :]
                rest = frame.rest[1:]
                following = start(
                    frame.rest[0], value, [Then(rest), *outer] if rest else outer, flow.root,
                    time.time(), copy=True,
                )
                await self._send(following)
                return
            members = await self._gather(frame, value)
            if members is None:  # others are still to come
                return
            value = members
        # Nothing follows: this is the workflow's result, kept under its root id too
        # (a failure handler's message names no root: its result is its own).
        if flow.root:
            await self._write([self._result(flow.root, "succeeded", time.time(), value=value)])

    async def _gather(self, frame: Gather, value: Any) -> list[Any] | None:
        """Record ``value`` as the frame's member; the group's results, in order,
        when the set is complete (None until then)."""
        key = gather_key(frame.group)
        _, count = await self._gathers.add(key, frame.index, _encoder.encode(value), FLOW_TTL)
        if count < frame.total:
            return None
        store = self._records()
        # Whoever sees the set complete moves on: the member that completed it and,
        # after a crash, a member that runs again. The next node's copies are claimed.
        found = await store.gathered(key)
        if any(i not in found for i in range(frame.total)):  # counted, yet not all readable: not ours to move
            return None
        values = [msgspec.json.decode(found[i]) for i in range(frame.total)]
        now = time.time()
        await self._write([self._result(frame.group, "succeeded", now, value=values)])
        return values

    async def failed(self, envelope: Envelope, error: str) -> None:
        """``envelope``'s step failed for good: fail what contains it, start nothing
        after it, call the ``on_failure`` handler of the group it fails."""
        flow = envelope.flow
        assert isinstance(flow, Flow)
        if flow_problem(flow) is not None:  # links that cannot be followed: nothing to fail
            return
        now = time.time()
        records: list[Result] = []
        handlers: list[Envelope] = []
        what = f"{envelope.task}[{envelope.id}]"
        for frame in flow.frames:
            if not isinstance(frame, Gather):
                continue
            if not await self._first_failure(frame.group, envelope.id):
                return  # another member failed this group first, and fails the rest
            reason = f"member {frame.index} of the group, {what}, failed: {error}"
            records.append(self._result(frame.group, "failed", now, error=reason))
            if frame.on_failure is not None:
                handlers.append(failure_handler(frame.on_failure, envelope.id, error, now))
        final = final_id(flow.frames, envelope.id)
        for task_id in (final, flow.root):
            if task_id != envelope.id and all(r.id != task_id for r in records):
                reason = f"workflow step {what} failed: {error}"
                records.append(self._result(task_id, "failed", now, error=reason))
        await self._write(records)
        await self._send(handlers)

    async def _first_failure(self, group: str, task_id: str) -> bool:
        """Whether this task is the one that fails ``group``: it marked it now, or
        had before (it runs again after a crash)."""
        store = self._records()
        key, mark = failed_key(group), task_id.encode()
        return await store.put_if(key, mark, FLOW_TTL, current=None) or await store.get(key) == mark

    def _result(self, task_id: str, status: Any, now: float, *, value: Any = None, error: str = "") -> Result:
        return Result(
            id=task_id, status=status, value=value, error=error, started_at=now, finished_at=now,
            worker=self.worker,
        )

    async def _write(self, records: list[Result]) -> None:
        if records and self.results is not None:
            await self.results.store([(r.id, encode_result(r)) for r in records], self.app.result_ttl)

    async def _send(self, envelopes: list[Envelope]) -> None:
        if envelopes:
            await self.broker.enqueue(self.app.client.encode(envelopes))


def failure_handler(node: StepNode, failed_id: str, error: str, now: float) -> Envelope:
    """The message that calls a group's ``on_failure`` handler: the failed member's
    id and error come first (unless ``.si()``), a copy claimed like any other, in
    no workflow (its result is not the workflow's)."""
    envelope = step_envelope(node, NO_INPUT, Flow(""), now)
    if not node.immutable:
        envelope.args = [failed_id, error, *node.args]
    envelope.headers[COPY_HEADER] = os.urandom(8).hex()
    return envelope
