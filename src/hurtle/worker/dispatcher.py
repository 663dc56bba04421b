"""From bytes to a runnable job: decode, find the task, bind the arguments.

Everything wrong with a message is found here, before any user code runs, and
answered with a ``DeadLetter`` that says why (bad input never crashes a
worker and is never retried blindly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from hurtle.arguments import MAX_NESTING, Refused, check_call_nesting
from hurtle.brokers import Delivery
from hurtle.context import TaskContext
from hurtle.envelope import DecodeError, Envelope, decode
from hurtle.task import Task
from hurtle.worker.outcome import DeadLetter
from hurtle.workflows.wire import flow_problem


@dataclass(slots=True, init=False)
class Job:
    """A message that passed every check and can run."""

    delivery: Delivery
    envelope: Envelope
    task: Task[Any, Any]
    #: Its time limit in seconds: the message's own, else its task's (None: none).
    timeout: float | None
    #: Set on the loop when a cancel of it arrives; the task reads it through
    #: ``current_task().cancelled`` (the Job is its ``TaskControl``).
    cancelled: bool

    def __init__(self, delivery: Delivery, envelope: Envelope, task: Task[Any, Any]) -> None:
        # Written out, not generated: the rule costs no call more per message.
        self.delivery = delivery
        self.envelope = envelope
        self.task = task
        self.timeout = envelope.timeout if envelope.timeout is not None else task.opts.timeout
        self.cancelled = False

    @property
    def is_async(self) -> bool:
        return self.task.is_async

    def task_context(self) -> TaskContext:
        """``hurtle.current_task()`` inside this job (made only when asked)."""
        envelope, delivery = self.envelope, self.delivery
        return TaskContext(
            envelope.id, self.task.name, delivery.queue, envelope.attempt, delivery.deliveries,
            envelope.headers, self,
        )


class Dispatcher:
    def __init__(
        self,
        tasks: dict[str, Task[Any, Any]],
        *,
        max_deliveries: int,
        secret_key: bytes | None,
        signature_max_age: float | None = None,
    ) -> None:
        self.tasks = tasks
        self.max_deliveries = max_deliveries
        self.secret_key = secret_key
        self.signature_max_age = signature_max_age

    def prepare(self, delivery: Delivery) -> Job | tuple[DeadLetter, Envelope | None]:
        """A Job, or why the message must be dead-lettered (with what was decoded).
        Never raises: whatever the bytes, only this message is refused."""
        try:
            return self._prepare(delivery)
        except Exception as exc:
            # A defect no check foresaw (a bug here, or in msgspec): the message
            # must not take the worker, and the tasks fetched with it, down.
            reason = f"could not prepare the message: {type(exc).__name__}: {exc}"
            return DeadLetter(reason), self._try_decode(delivery.body)

    def _prepare(self, delivery: Delivery) -> Job | tuple[DeadLetter, Envelope | None]:
        if delivery.deliveries > self.max_deliveries:
            reason = (
                f"delivered {delivery.deliveries} times, over max_deliveries={self.max_deliveries}:"
                " the task may be killing its worker process"
            )
            return DeadLetter(reason), self._try_decode(delivery.body)
        try:
            envelope = decode(delivery.body, self.secret_key, max_age=self.signature_max_age)
        except DecodeError as exc:
            return DeadLetter(str(exc)), None
        task = self.tasks.get(envelope.task)
        if task is None:
            return DeadLetter(f"unknown task {envelope.task!r}: not registered with this app"), envelope
        if envelope.flow is not UNSET:
            problem = flow_problem(envelope.flow)
            if problem is not None:
                return DeadLetter(problem), envelope
        timeout = envelope.timeout
        if timeout is not None and not 0 < timeout < math.inf:
            return DeadLetter(f"timeout must be a positive number of seconds, not {timeout!r}"), envelope
        if _may_nest_too_deep(delivery.body):
            try:
                check_call_nesting(envelope.task, envelope.args, envelope.kwargs)
            except Refused as exc:
                return DeadLetter(f"arguments do not fit: {exc}"), envelope
        types = task.types
        try:
            if envelope.kwargs or len(envelope.args) != types.arity:
                types.signature.bind(*envelope.args, **envelope.kwargs)
        except TypeError as exc:
            return DeadLetter(f"arguments do not bind to {envelope.task}: {exc}"), envelope
        if types.converts:
            try:
                envelope.args, envelope.kwargs = types.convert_call(envelope.args, envelope.kwargs)
            except Refused as exc:
                return DeadLetter(f"arguments do not fit: {exc}"), envelope
        return Job(delivery, envelope, task)

    def _try_decode(self, body: bytes) -> Envelope | None:
        """The message, to tell its sender it failed; None when it cannot be read (or
        is not signed with our key: then its id may not be its own)."""
        try:
            return decode(body, self.secret_key)
        except Exception:
            return None


def _may_nest_too_deep(body: bytes) -> bool:
    """Whether the arguments may nest past ``MAX_NESTING``, the most ``send`` sends
    (a producer elsewhere may send more). Each level opens and closes a bracket,
    so a shorter body, or one with fewer brackets, cannot: the length spares the
    counts and the counts spare the walk for nearly every message."""
    # Measured: the counts take 300 ns, a third of preparing a small message.
    return len(body) > 2 * MAX_NESTING and body.count(b"[") + body.count(b"{") > MAX_NESTING
