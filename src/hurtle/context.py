"""What a running task can know about itself: ``hurtle.current_task()``.

Celery tasks read ``self.request.retries``; here a task asks for its context,
so its own signature stays the caller's (no ``bind=True`` and no ``self``).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from hurtle.progress import make_progress, report


class TaskControl(Protocol):
    """What the worker keeps per running task that the task reads live: whether
    a cancel reached it."""

    cancelled: bool


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The message being run: its id and name, how many retries came before
    (``attempt``), and how many times the broker has handed it out."""

    id: str
    name: str
    queue: str
    attempt: int
    deliveries: int
    headers: dict[str, str] = field(default_factory=dict)
    control: TaskControl | None = field(default=None, repr=False, compare=False)

    def task_context(self) -> TaskContext:
        return self

    @property
    def cancelled(self) -> bool:
        """True once a cancel of this task reached its worker (``Handle.cancel``):
        a sync task checks it now and then and stops cleanly. (An async task is
        cancelled for it: ``asyncio.CancelledError`` at its next ``await``.)"""
        control = self.control
        return control is not None and control.cancelled

    def progress(self, done: float, total: float | None = None, *, note: str = "") -> None:
        """Report how far the task is: ``done`` of ``total``. Never waits: the
        worker stores the latest report a few times a second at most, where
        ``Handle.progress()`` and ``hurtle status task`` read it."""
        report(self.id, make_progress(done, total, note))


class ContextSource(Protocol):
    """What the worker sets per task: the context is built only when a task asks,
    not for every message."""

    def task_context(self) -> TaskContext: ...


_current: ContextVar[ContextSource | None] = ContextVar("hurtle_current_task", default=None)


def current_task() -> TaskContext:
    """The context of the task running in this coroutine or thread.

    Raises ``RuntimeError`` outside a task (a plain call, a test).
    """
    source = _current.get()
    if source is None:
        raise RuntimeError("hurtle.current_task() is only available inside a running task")
    return source.task_context()


def set_current(source: ContextSource) -> None:
    """Set by the worker in the asyncio task, or the thread, that runs the message."""
    _current.set(source)
