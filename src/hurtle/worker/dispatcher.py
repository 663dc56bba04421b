"""From bytes to a runnable job: decode, find the task, bind the arguments.

Everything wrong with a message is found here, before any user code runs, and
answered with a ``DeadLetter`` that says why (DESIGN: bad input never crashes a
worker and is never retried blindly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hurtle.arguments import Refused
from hurtle.brokers import Delivery
from hurtle.context import TaskContext
from hurtle.envelope import DecodeError, Envelope, decode
from hurtle.task import Task
from hurtle.worker.outcome import DeadLetter


@dataclass(slots=True)
class Job:
    """A message that passed every check and can run."""

    delivery: Delivery
    envelope: Envelope
    task: Task[Any, Any]

    @property
    def is_async(self) -> bool:
        return self.task.is_async

    def task_context(self) -> TaskContext:
        """``hurtle.current_task()`` inside this job (made only when asked)."""
        envelope, delivery = self.envelope, self.delivery
        return TaskContext(
            envelope.id, self.task.name, delivery.queue, envelope.attempt, delivery.deliveries,
            envelope.headers,
        )


class Dispatcher:
    def __init__(
        self, tasks: dict[str, Task[Any, Any]], *, max_deliveries: int, secret_key: bytes | None
    ) -> None:
        self.tasks = tasks
        self.max_deliveries = max_deliveries
        self.secret_key = secret_key

    def prepare(self, delivery: Delivery) -> Job | tuple[DeadLetter, Envelope | None]:
        """A Job, or why the message must be dead-lettered (with what was decoded)."""
        if delivery.deliveries > self.max_deliveries:
            reason = (
                f"delivered {delivery.deliveries} times, over max_deliveries={self.max_deliveries}:"
                " the task may be killing its worker process"
            )
            return DeadLetter(reason), self._try_decode(delivery.body)
        try:
            envelope = decode(delivery.body, self.secret_key)
        except DecodeError as exc:
            return DeadLetter(str(exc)), None
        task = self.tasks.get(envelope.task)
        if task is None:
            return DeadLetter(f"unknown task {envelope.task!r}: not registered with this app"), envelope
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
        try:
            return decode(body, self.secret_key)
        except DecodeError:
            return None
