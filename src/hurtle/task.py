"""``Task[P, R]``, what ``@app.task`` makes, and ``Handle[R]``, what ``send`` returns.

``Task`` keeps the function's signature (``ParamSpec``), so ``add.send("x")`` is
a type error where ``add(x: int, y: int)``. Options live on a copy made by
``options(...)``, so they never collide with the task's own keyword arguments.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, Generic, NoReturn, ParamSpec, Protocol, TypeVar, overload

from hurtle.arguments import TaskTypes
from hurtle.envelope import Envelope, decode_result, make_envelope, new_ids
from hurtle.errors import ConfigurationError, TaskCancelled, TaskFailed
from hurtle.progress import Progress, read_progress
from hurtle.record_source import require_records
from hurtle.retry import Backoff
from hurtle.schedule.cancel import request_cancel
from hurtle.schedule.rates import Rate
from hurtle.schedule.unique import DEFAULT_UNIQUE_FOR, UNIQUE_HEADER, check_unique, header_value
from hurtle.task_status import TaskStatus, task_status

if TYPE_CHECKING:
    from hurtle.app import App
    from hurtle.workflows.canvas import Signature, Signature2

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
A = TypeVar("A")
A2 = TypeVar("A2")


@dataclass(frozen=True)
class TaskOptions:
    """Per-task settings, checked when the task is decorated."""

    queue: str
    retries: int
    timeout: float | None
    backoff: Backoff | None
    store_result: bool
    delay: float | None = None
    eta: float | None = None  # unix seconds: an absolute time, set by ``options(eta=...)``
    #: Exceptions to retry (None: every exception but ``no_retry_on``'s).
    retry_on: tuple[type[BaseException], ...] | None = None
    #: Exceptions never retried: a bug in the code fails at once rather than
    #: three times over several minutes of backoff.
    no_retry_on: tuple[type[BaseException], ...] = ()
    #: Profile every worker's executions of this task, as ``hurtle worker --profile`` does.
    profile: bool = False
    #: Send options (``options(unique_key=..., id=...)``): see ``hurtle.schedule.unique``.
    unique_key: str | None = None
    unique_for: float | None = None
    task_id: str | None = None
    #: Starts per period across every worker (``"100/m"``), evenly spaced; None: unlimited.
    rate_limit: Rate | None = None
    #: Runs at once across every worker; None: unlimited. Both: ``hurtle.schedule.limits``.
    max_concurrency: int | None = None

    @property
    def limited(self) -> bool:
        """Whether a worker must ask the limit store before starting this task."""
        return self.rate_limit is not None or self.max_concurrency is not None

    def __post_init__(self) -> None:
        if not self.queue or not isinstance(self.queue, str):
            raise ConfigurationError(f"queue must be a non-empty string, not {self.queue!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError(f"retries must be an int >= 0, not {self.retries!r}")
        for name in ("timeout", "delay"):
            value = getattr(self, name)
            valid = isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
            if value is not None and not valid:
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, not {value!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, not {self.timeout!r}")
        if self.delay is not None and self.eta is not None:
            raise ConfigurationError("give delay= or eta=, not both")
        for name in ("retry_on", "no_retry_on"):
            value = getattr(self, name)
            if value is not None and not _exception_types(value):
                raise ConfigurationError(f"{name} must be a tuple of exception classes, not {value!r}")
        check_unique(self.unique_key, self.unique_for, self.task_id)

    @property
    def unique(self) -> str | None:
        """The ``hurtle-unique`` header of its sends (None: not a unique send)."""
        return header_value(self.unique_key, self.task_id)

    def retries_on(self, exception: type[BaseException] | None) -> bool:
        """Whether a failure raising ``exception`` may be retried (None: not an
        exception of the task's own, such as a time limit: retried)."""
        if exception is None:
            return True
        if self.retry_on is not None and not issubclass(exception, self.retry_on):
            return False
        return not issubclass(exception, self.no_retry_on)


def _exception_types(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value
    )


def eta_seconds(eta: datetime | float) -> float:
    """Unix seconds from ``options(eta=...)``: an aware datetime, a naive one read
    as local time (as ``datetime.timestamp`` does), or unix seconds."""
    if isinstance(eta, datetime):
        return eta.timestamp()
    if isinstance(eta, (int, float)) and not isinstance(eta, bool) and math.isfinite(eta):
        return float(eta)
    raise ConfigurationError(f"eta must be a datetime or unix seconds, not {eta!r}")


class Task(Generic[P, R]):
    """A registered function that can be sent to workers."""

    def __init__(self, app: App, fn: Callable[..., Any], name: str, options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.opts = options
        self.is_async = inspect.iscoroutinefunction(fn)
        #: Parameter and return types: calls are checked at send, converted at the worker.
        self.types = TaskTypes(fn, name)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.opts.queue!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function here and now, as a plain call (handy in tests)."""
        return self.fn(*args, **kwargs)

    def options(
        self,
        *,
        delay: float | None = None,
        eta: datetime | float | None = None,
        queue: str | None = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        unique_for: float | None = None,
        id: str | None = None,
    ) -> Task[P, R]:
        """A copy that sends with these options; the registry keeps the original.

        ``delay`` is seconds from now; ``eta`` an absolute time (a datetime, naive
        ones read as local time, or unix seconds). A past ``eta`` runs at once.

        ``unique_key``: send nothing while a task sent with the same key is queued
        or running, and return that task's handle; the key is held until the task
        is done for good, and ``unique_for`` seconds at most (default an hour).
        ``id``: the task id, chosen by the caller; a send with the id of a task
        queued or running is the same no-op (docs/scheduling.md)."""
        changes: dict[str, Any] = {}
        if unique_key is not None or id is not None or unique_for is not None:
            check_unique(unique_key, unique_for, id)
            require_records(self.app.broker_url, self.app.results_url, "unique_key= and id=")
            changes.update(unique_key=unique_key, task_id=id, unique_for=unique_for)
        if delay is not None:
            changes["delay"] = delay
        if eta is not None:
            changes["eta"] = eta_seconds(eta)
        if queue is not None:
            self.app.check_queue(queue)
            changes["queue"] = queue
        if timeout is not None:
            changes["timeout"] = timeout
        return Task(self.app, self.fn, self.name, replace(self.opts, **changes))

    # -- workflows (docs/workflows.md) ----------------------------------------------

    # The overloads read which parameters ``.s()`` leaves open from the call: the
    # first (a step after another), none (a workflow's first step), or the first
    # two (a chord's failure handler). ``self`` is matched through ``send`` (a
    # callable): mypy infers a ``Concatenate`` prefix from a callable, not from a
    # class's ParamSpec. They overlap by design: the first that fits is meant.
    @overload
    def s(  # type: ignore[overload-overlap]
        self: _Sends[A, P2, R], *args: P2.args, **kwargs: P2.kwargs
    ) -> Signature[A, R]: ...
    @overload
    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature[NoReturn, R]: ...  # type: ignore[overload-overlap]
    @overload
    def s(self: _Sends2[A, A2, P2, R], *args: P2.args, **kwargs: P2.kwargs) -> Signature2[A, A2, R]: ...
    def s(self, *args: Any, **kwargs: Any) -> Any:
        """A workflow step calling this task with these arguments, after the result
        of the step before it, which comes first: ``resize.s(path) | store.s()``."""
        from hurtle.workflows.canvas import Signature

        return Signature(self, args, kwargs, immutable=False)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature[object, R]:
        """A workflow step calling this task with exactly these arguments: it
        ignores the result of the step before it."""
        from hurtle.workflows.canvas import Signature

        return Signature(self, args, kwargs, immutable=True)

    def _envelope(
        self, args: Sequence[Any], kwargs: dict[str, Any], task_id: str | None = None,
        now: float | None = None,
    ) -> Envelope:
        self.types.check_call(args, kwargs)
        opts = self.opts
        envelope = make_envelope(
            self.name,
            args,
            kwargs,
            queue=opts.queue,
            delay=opts.delay,
            eta=opts.eta,
            timeout=opts.timeout,
            task_id=opts.task_id or task_id,
            now=now,
        )
        unique = opts.unique
        if unique is not None:
            envelope.headers[UNIQUE_HEADER] = unique
        return envelope

    @property
    def _unique_for(self) -> float:
        return self.opts.unique_for or DEFAULT_UNIQUE_FOR

    def send(self, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        """Enqueue one call; returns at once with a handle to its result (with a
        unique key held by a task queued or running: that task's handle)."""
        envelope = self._envelope(args, kwargs)
        if self.opts.unique is None:
            self.app.client.send([envelope])
            return Handle(self.app, envelope.id, self.name)
        (task_id,) = self.app.client.send_unique([envelope], self._unique_for)
        return Handle(self.app, task_id, self.name)

    async def send_async(self, *args: P.args, **kwargs: P.kwargs) -> Handle[R]:
        envelope = self._envelope(args, kwargs)
        if self.opts.unique is None:
            await self.app.client.send_async([envelope])
            return Handle(self.app, envelope.id, self.name)
        (task_id,) = await self.app.client.send_unique_async([envelope], self._unique_for)
        return Handle(self.app, task_id, self.name)

    def send_many(self, calls: Iterable[Sequence[Any] | dict[str, Any]]) -> list[Handle[R]]:
        """Enqueue many calls in one round trip: each item a tuple of positional
        arguments or a dict of keyword arguments. With a unique key, the first call
        claims it and the others get the handle of the task that holds it."""
        envelopes = self._call_envelopes(calls)
        if self.opts.unique is None:
            self.app.client.send(envelopes)
            return [Handle(self.app, e.id, self.name) for e in envelopes]
        ids = self.app.client.send_unique(envelopes, self._unique_for)
        return [Handle(self.app, task_id, self.name) for task_id in ids]

    async def send_many_async(
        self, calls: Iterable[Sequence[Any] | dict[str, Any]]
    ) -> list[Handle[R]]:
        envelopes = self._call_envelopes(calls)
        if self.opts.unique is None:
            await self.app.client.send_async(envelopes)
            return [Handle(self.app, e.id, self.name) for e in envelopes]
        ids = await self.app.client.send_unique_async(envelopes, self._unique_for)
        return [Handle(self.app, task_id, self.name) for task_id in ids]

    def _call_envelopes(self, calls: Iterable[Sequence[Any] | dict[str, Any]]) -> list[Envelope]:
        """One envelope per call; the batch's ids from one ``urandom``, one clock read."""
        calls = list(calls)
        now = time.time()
        return [
            self._call_envelope(call, task_id, now)
            for call, task_id in zip(calls, new_ids(len(calls)), strict=True)
        ]

    def _call_envelope(self, call: Sequence[Any] | dict[str, Any], task_id: str, now: float) -> Envelope:
        if isinstance(call, dict):
            return self._envelope((), call, task_id, now)
        if isinstance(call, (str, bytes)):
            raise TypeError(f"send_many: each call is a tuple or a dict, not {call!r}")
        return self._envelope(call, {}, task_id, now)


_A_in = TypeVar("_A_in", contravariant=True)
_A2_in = TypeVar("_A2_in", contravariant=True)


class _Sends(Protocol[_A_in, P2, R]):
    """A task whose first parameter takes an ``A``, seen through its ``send``."""

    @property
    def send(self) -> Callable[Concatenate[_A_in, P2], Handle[R]]: ...


class _Sends2(Protocol[_A_in, _A2_in, P2, R]):
    """A task whose first two parameters take an ``A`` and an ``A2``."""

    @property
    def send(self) -> Callable[Concatenate[_A_in, _A2_in, P2], Handle[R]]: ...


class Handle(Generic[R]):
    """A sent task: its id, and a way to wait for its result."""

    __slots__ = ("app", "id", "task_name")

    def __init__(self, app: App, task_id: str, task_name: str) -> None:
        self.app = app
        self.id = task_id
        self.task_name = task_name

    def __repr__(self) -> str:
        return f"<Handle {self.task_name} {self.id}>"

    def result(self, timeout: float | None = 10.0) -> R:
        """Wait up to ``timeout`` seconds for the result and return it.

        Raises ``TaskFailed`` (with the worker's traceback) if the task failed for
        good, ``TimeoutError`` if no result came in time.
        """
        return self.app.client.run_sync(self.result_async(timeout))

    async def result_async(self, timeout: float | None = 10.0) -> R:
        results = self.app.client.results()
        if results is None:
            raise ConfigurationError(
                "this app has no result store: pass results='sqlite:///hurtle.db' (or another"
                " store URL) to App(), or set HURTLE_RESULTS"
            )
        started = time.monotonic()
        record = await results.wait(self.id, timeout)
        if record is None:
            waited = time.monotonic() - started
            raise TimeoutError(f"no result for task {self.task_name} {self.id} after {waited:.1f}s")
        result = decode_result(record)
        if result.status == "failed":
            raise TaskFailed(self.id, result.error, result.traceback)
        if result.status == "cancelled":
            raise TaskCancelled(self.id)
        task = self.app.tasks.get(self.task_name)
        if task is None:  # sent by name, its code not here: the value as JSON gave it
            return result.value  # type: ignore[no-any-return]
        return task.types.convert_result(result.value)  # type: ignore[no-any-return]

    def status(self) -> TaskStatus:
        """Where the task is now, in one look that never waits for it: ``queued``,
        ``running``, ``succeeded``, ``failed``, ``cancelled`` or ``unknown`` (see ``TaskStatus``)."""
        return self.app.client.run_sync(self.status_async())

    async def status_async(self) -> TaskStatus:
        connection = self.app.client.connection()
        return await task_status(connection.broker, connection.results, self.id)

    def cancel(self) -> None:
        """Ask the workers to cancel the task: a queued one never runs, a running
        async one is cancelled, a running sync one sees ``current_task().cancelled``.
        Its result then records ``cancelled`` (``result()`` raises ``TaskCancelled``).
        A task that finished first keeps its result. Workers learn of it within
        about a second (docs/scheduling.md)."""
        self.app.client.run_sync(self.cancel_async())

    async def cancel_async(self) -> None:
        require_records(self.app.broker_url, self.app.results_url, "cancel()")
        records = self.app.client.connection().records
        assert records is not None  # require_records said a store keeps them
        await request_cancel(records, [self.id], self.app.result_ttl)

    def progress(self) -> Progress | None:
        """What the task last reported with ``current_task().progress(...)``; None
        before its first report (or after its result's time to live)."""
        return self.app.client.run_sync(self.progress_async())

    async def progress_async(self) -> Progress | None:
        require_records(self.app.broker_url, self.app.results_url, "progress()")
        records = self.app.client.connection().records
        assert records is not None
        return await read_progress(records, self.id)

    def forget(self) -> None:
        """Delete the stored result now, before its time to live runs out."""
        self.app.client.run_sync(self.forget_async())

    async def forget_async(self) -> None:
        results = self.app.client.results()
        if results is not None:
            await results.forget([self.id])
