"""What a running task can know about itself: ``hurtle.current_task()``.

Celery tasks read ``self.request.retries``; here a task asks for its context,
so its own signature stays the caller's (no ``bind=True`` and no ``self``).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


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


_current: ContextVar[TaskContext | None] = ContextVar("hurtle_current_task", default=None)


def current_task() -> TaskContext:
    """The context of the task running in this coroutine or thread.

    Raises ``RuntimeError`` outside a task (a plain call, a test).
    """
    context = _current.get()
    if context is None:
        raise RuntimeError("hurtle.current_task() is only available inside a running task")
    return context


def set_current(context: TaskContext) -> None:
    """Set by the worker for the asyncio task that runs the message; sync tasks
    see it too, as the thread runs in a copy of that task's context."""
    _current.set(context)
