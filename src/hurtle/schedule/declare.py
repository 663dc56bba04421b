"""``@app.periodic`` and ``app.schedule``: how an app declares its schedules.

``@app.periodic(cron, queue=..., retries=...)`` registers the function as a task
(taking ``@app.task``'s options) and schedules it; above an ``@app.task`` it
schedules that task as it is. Either way the task is called with no
arguments; ``app.schedule(task, cron=..., args=..., kwargs=...)`` sends a task
that takes some.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from hurtle.errors import ConfigurationError
from hurtle.schedule.timing import CatchUp, Schedule
from hurtle.task import Task

if TYPE_CHECKING:
    from hurtle.app import App

R = TypeVar("R")


class PeriodicDecorator:
    """What ``@app.periodic(...)`` returns: applied to a function, or to a task."""

    def __init__(self, app: App, when: dict[str, Any], options: dict[str, Any]) -> None:
        self._app = app
        self._when = when
        self._options = options

    @overload
    def __call__(self, fn: Task[[], R]) -> Task[[], R]: ...
    @overload
    def __call__(self, fn: Callable[[], Awaitable[R]]) -> Task[[], R]: ...
    @overload
    def __call__(self, fn: Callable[[], R]) -> Task[[], R]: ...
    def __call__(self, fn: Any) -> Task[[], Any]:
        if isinstance(fn, Task):
            if self._options:
                given = ", ".join(sorted(self._options))
                raise ConfigurationError(
                    f"@app.periodic above @app.task: give the task's options ({given}) to @app.task"
                )
            task: Task[[], Any] = fn
        else:
            task = self._app.task(**self._options)(fn)
        try:
            task.types.signature.bind()
        except TypeError:
            raise ConfigurationError(
                f"@app.periodic calls {task.name} with no arguments, which it needs:"
                " use app.schedule(task, args=..., kwargs=...)"
            ) from None
        add_schedule(self._app, task, name=None, args=(), kwargs={}, **self._when)
        return task


def add_schedule(
    app: App,
    task: Task[Any, Any],
    *,
    name: str | None,
    cron: str | None,
    every: float | None,
    tz: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    catch_up: CatchUp,
) -> Schedule:
    """Check and register one schedule of ``task``; the schedule's name is the
    task's unless given, and names are unique within the app."""
    if not isinstance(task, Task) or app.tasks.get(task.name) is not task:
        raise ConfigurationError(f"app.schedule takes a task registered with this app, not {task!r}")
    try:
        task.types.check_call(tuple(args), dict(kwargs))
    except TypeError as exc:
        raise ConfigurationError(f"schedule of {task.name}: {exc}") from None
    schedule = Schedule(
        name=name or task.name, task=task.name, cron=cron, every=every, tz=tz,
        args=tuple(args), kwargs=dict(kwargs), catch_up=catch_up,
    )
    if schedule.name in app.schedules:
        raise ConfigurationError(
            f"two schedules are named {schedule.name!r}: give each its own name= (app.schedule)"
        )
    app.schedules[schedule.name] = schedule
    return schedule
