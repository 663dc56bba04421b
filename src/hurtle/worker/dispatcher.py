"""From bytes to a runnable job: decode, find the task, bind the arguments.

Everything wrong with a message is found here, before any user code runs, and
answered with a ``DeadLetter`` that says why (DESIGN: bad input never crashes a
worker and is never retried blindly).
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import Parameter
from typing import Any

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
        self._arities: dict[str, int | None] = {}

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
        try:
            if envelope.kwargs or len(envelope.args) != self._arity(task):
                task.signature.bind(*envelope.args, **envelope.kwargs)
        except TypeError as exc:
            return DeadLetter(f"arguments do not bind to {envelope.task}: {exc}"), envelope
        return Job(delivery, envelope, task)

    def _arity(self, task: Task[Any, Any]) -> int | None:
        """How many positional arguments always bind, when the task's parameters are
        all plain (no defaults, no ``*args``/``**kwargs``, no keyword-only): then a
        message with that many and no kwargs skips ``Signature.bind``: 3 to 8 us a
        task, 6% of the event loop's time on no-op tasks (docs/benchmarks.md)."""
        if task.name not in self._arities:
            plain = (Parameter.POSITIONAL_ONLY, Parameter.POSITIONAL_OR_KEYWORD)
            params = task.signature.parameters.values()
            simple = all(p.kind in plain and p.default is Parameter.empty for p in params)
            self._arities[task.name] = len(params) if simple else None
        return self._arities[task.name]

    def _try_decode(self, body: bytes) -> Envelope | None:
        try:
            return decode(body, self.secret_key)
        except DecodeError:
            return None
