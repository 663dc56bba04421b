"""``App``: the task registry, the settings and the lifecycle hooks.

There is no global default app and no ``current_app`` proxy: code that sends
or runs tasks holds its app explicitly.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from hurtle import settings
from hurtle.arguments import check_call_nesting
from hurtle.client import Client
from hurtle.envelope import Envelope, make_envelope
from hurtle.errors import ConfigurationError
from hurtle.retry import Backoff
from hurtle.schedule.declare import PeriodicDecorator, add_schedule
from hurtle.schedule.rates import check_max_concurrency, parse_rate
from hurtle.schedule.timing import CatchUp, Schedule, check_when
from hurtle.task import Handle, Task, TaskOptions
from hurtle.urls import SecretURL

P = ParamSpec("P")
R = TypeVar("R")
Hook = Callable[[], Any]


class TaskDecorator:
    """What ``@app.task(...)`` with options returns: applied to the function."""

    def __init__(self, app: App, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> Task[Any, Any]:
        return self._app._register(fn, **self._options)


class App:
    """A hurtle application: where tasks are registered and sent from.

    ``broker`` is a URL (default: ``$HURTLE_BROKER``, else ``sqlite:///hurtle.db``);
    ``results`` a result store URL (default: ``$HURTLE_RESULTS``, else the
    broker's own store). Both are held as ``SecretURL``: printed without their
    passwords, equal to the strings given.
    """

    _broker_url: SecretURL
    _results_url: SecretURL | None

    def __init__(
        self,
        broker: str | None = None,
        *,
        results: str | None = None,
        visibility_timeout: float = settings.VISIBILITY_TIMEOUT,
        secret_key: str | bytes | None = None,
        signature_max_age: float | None = None,
        result_ttl: float = settings.RESULT_TTL,
        history_ttl: float = settings.HISTORY_TTL,
        max_deliveries: int = settings.MAX_DELIVERIES,
        max_message_bytes: int = settings.MAX_MESSAGE_BYTES,
        default_queue: str = settings.DEFAULT_QUEUE,
        default_retries: int = settings.DEFAULT_RETRIES,
    ) -> None:
        if visibility_timeout <= 0:
            raise ConfigurationError(f"visibility_timeout must be > 0 seconds, not {visibility_timeout!r}")
        if not history_ttl >= 0:
            raise ConfigurationError(f"history_ttl must be >= 0 seconds (0: none), not {history_ttl!r}")
        if max_deliveries < 1:
            raise ConfigurationError(f"max_deliveries must be >= 1, not {max_deliveries!r}")
        if signature_max_age is not None and (secret_key is None or not signature_max_age > 0):
            raise ConfigurationError(
                f"signature_max_age must be > 0 seconds, with a secret_key, not {signature_max_age!r}"
            )
        self.broker_url = settings.broker_url_from_env(broker)
        self.results_url = settings.results_url_from_env(results)
        self.visibility_timeout = float(visibility_timeout)
        self.secret_key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        #: With a secret key: a worker refuses a signed message due (its eta, else when
        #: it was sent) more than this many seconds from now, a replay of an old one.
        self.signature_max_age = None if signature_max_age is None else float(signature_max_age)
        self.result_ttl = float(result_ttl)
        #: Seconds the task history is kept (``hurtle.observe.history``); 0: none is written.
        self.history_ttl = float(history_ttl)
        self.max_deliveries = max_deliveries
        self.max_message_bytes = max_message_bytes
        self.default_queue = default_queue
        self.default_retries = default_retries
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: Periodic tasks by name: ``@app.periodic`` and ``app.schedule`` (``hurtle.schedule``).
        self.schedules: dict[str, Schedule] = {}
        self.preload_hooks: list[Hook] = []
        self.worker_start_hooks: list[Hook] = []
        self.worker_stop_hooks: list[Hook] = []
        #: How this app sends tasks and looks up results (``hurtle.client.Client``).
        self.client = Client(self)
        # Fail now, not at the first send, on a URL no broker serves.
        from hurtle.brokers import from_url

        from_url(self.broker_url, visibility_timeout=self.visibility_timeout)
        self.check_queue(default_queue)

    def __repr__(self) -> str:
        return f"<hurtle.App {self.broker_url} tasks={len(self.tasks)}>"

    @property
    def broker_url(self) -> SecretURL:
        """The broker's URL; ``str()`` and ``repr()`` show it without its password."""
        return self._broker_url

    @broker_url.setter
    def broker_url(self, url: str | SecretURL) -> None:
        self._broker_url = SecretURL(url)

    @property
    def results_url(self) -> SecretURL | None:
        """The result store's URL, None for the broker's own store; printed without its password."""
        return self._results_url

    @results_url.setter
    def results_url(self, url: str | SecretURL | None) -> None:
        self._results_url = None if url is None else SecretURL(url)

    # -- tasks -----------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        store_result: bool = True,
        retry_on: tuple[type[BaseException], ...] | None = None,
        no_retry_on: tuple[type[BaseException], ...] | None = None,
        profile: bool = False,
        rate_limit: str | None = None,
        max_concurrency: int | None = None,
    ) -> TaskDecorator: ...
    def task(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """Register a function (sync or async) as a task; usable with or without options."""
        if fn is None:
            return TaskDecorator(self, options)
        return self._register(fn, **options)

    def _register(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        queue: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        store_result: bool = True,
        retry_on: tuple[type[BaseException], ...] | None = None,
        no_retry_on: tuple[type[BaseException], ...] | None = None,
        profile: bool = False,
        rate_limit: str | None = None,
        max_concurrency: int | None = None,
    ) -> Task[Any, Any]:
        if not callable(fn):
            raise ConfigurationError(f"@app.task decorates a function, not {fn!r}")
        task_name = name or _default_name(fn)
        if task_name in self.tasks and self.tasks[task_name].fn is not fn:
            raise ConfigurationError(f"two different functions are registered as task {task_name!r}")
        if backoff is not None and not callable(getattr(backoff, "compute", None)):
            raise ConfigurationError("backoff must have a compute(attempt) -> seconds method")
        options = TaskOptions(
            queue=queue or self.default_queue,
            retries=self.default_retries if retries is None else retries,
            timeout=timeout,
            backoff=backoff,
            store_result=store_result,
            retry_on=retry_on,
            # Naming what to retry says the rest is not worth it; otherwise a bug
            # (a TypeError, say) fails at once instead of after every retry.
            no_retry_on=(() if retry_on is not None else settings.NO_RETRY_ON)
            if no_retry_on is None else no_retry_on,
            profile=bool(profile),
            rate_limit=None if rate_limit is None else parse_rate(rate_limit),
            max_concurrency=None if max_concurrency is None else check_max_concurrency(max_concurrency),
        )
        self.check_queue(options.queue)
        task: Task[Any, Any] = Task(self, fn, task_name, options)
        self.tasks[task_name] = task
        return task

    # -- periodic tasks --------------------------------------------------

    def periodic(
        self,
        cron: str | None = None,
        /,
        *,
        every: float | None = None,
        tz: str = "UTC",
        catch_up: CatchUp = "skip",
        name: str | None = None,
        queue: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        store_result: bool | None = None,
        retry_on: tuple[type[BaseException], ...] | None = None,
        no_retry_on: tuple[type[BaseException], ...] | None = None,
        profile: bool | None = None,
        rate_limit: str | None = None,
        max_concurrency: int | None = None,
    ) -> PeriodicDecorator:
        """Register a task sent at each tick of ``cron`` (read in time zone ``tz``)
        or ``every`` seconds, by whichever worker holds the scheduler's lease.
        Takes ``@app.task``'s options; above an ``@app.task`` it takes none.
        ``catch_up``: after ticks were missed (no worker ran), "skip" sends the
        latest alone, "all" each one (at most 100). See docs/scheduling.md."""
        given = {
            "name": name, "queue": queue, "retries": retries, "timeout": timeout, "backoff": backoff,
            "store_result": store_result, "retry_on": retry_on, "no_retry_on": no_retry_on,
            "profile": profile, "rate_limit": rate_limit, "max_concurrency": max_concurrency,
        }
        options = {key: value for key, value in given.items() if value is not None}
        when = {"cron": cron, "every": every, "tz": tz, "catch_up": catch_up}
        check_when("@app.periodic", cron, every, tz, catch_up)  # fail here, not at the function below
        return PeriodicDecorator(self, when, options)

    def schedule(
        self,
        task: Task[..., Any],
        *,
        cron: str | None = None,
        every: float | None = None,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        catch_up: CatchUp = "skip",
    ) -> Schedule:
        """Send ``task(*args, **kwargs)`` at each tick of ``cron`` or ``every``
        seconds. ``name`` (default: the task's) tells two schedules of one task apart."""
        return add_schedule(
            self, task, name=name, cron=cron, every=every, tz=tz, args=args, kwargs=kwargs or {},
            catch_up=catch_up,
        )

    def check_queue(self, queue: str) -> None:
        """Raise ``ConfigurationError`` when ``queue`` cannot name a queue on this
        app's broker (each broker class states its rules: ``queue_name_problem``)."""
        from hurtle.brokers import broker_class

        problem = broker_class(self.broker_url).queue_name_problem(self.broker_url, queue)
        if problem is not None:
            raise ConfigurationError(f"queue {queue!r} cannot be used with this broker: {problem}")

    def queues(self) -> list[str]:
        """Every queue a registered task uses, and the default queue: what a
        worker consumes when not told otherwise."""
        return sorted({task.opts.queue for task in self.tasks.values()} | {self.default_queue})

    # -- hooks -----------------------------------------------------------

    def on_preload(self, fn: Hook) -> Hook:
        """Run ``fn`` once in the worker's supervisor, before it forks: setup
        paid once, not once per process or per task."""
        self.preload_hooks.append(fn)
        return fn

    def on_worker_start(self, fn: Hook) -> Hook:
        """Run ``fn`` once in each worker process after fork: open pools here, one
        per process (a pool opened per call opens a connection per call)."""
        self.worker_start_hooks.append(fn)
        return fn

    def on_worker_stop(self, fn: Hook) -> Hook:
        """Run ``fn`` once in each worker process as it stops: close pools here."""
        self.worker_stop_hooks.append(fn)
        return fn

    # -- sending ---------------------------------------------------------

    def send_task(self, name: str, *args: Any, **kwargs: Any) -> Handle[Any]:
        """Send a task by name, without importing its code."""
        envelope = self._by_name(name, args, kwargs)
        self.client.send([envelope])
        return Handle(self, envelope.id, name)

    async def send_task_async(self, name: str, *args: Any, **kwargs: Any) -> Handle[Any]:
        envelope = self._by_name(name, args, kwargs)
        await self.client.send_async([envelope])
        return Handle(self, envelope.id, name)

    def handle(self, task_id: str, task_name: str | None = None) -> Handle[Any]:
        """A handle to a task sent elsewhere (another process, a request that kept
        its id): ``result()`` and ``status()`` work on it as on ``send``'s own."""
        if not isinstance(task_id, str) or not task_id:
            raise TypeError(f"app.handle takes a task id, a non-empty str, not {task_id!r}")
        return Handle(self, task_id, task_name or "?")

    # -- the task history ------------------------------------------------

    def mark_deploy(self, text: str) -> None:
        """Record a deploy marker (``text``, such as a version, and the time now) in the
        task history, kept as long as it is: ``hurtle status`` names the latest. Call it
        as a release goes out; ``hurtle deploy-mark TEXT`` does the same from a shell.
        Raises ``ConfigurationError`` when the history is off or no store keeps it."""
        self.client.run_sync(self.mark_deploy_async(text))

    async def mark_deploy_async(self, text: str) -> None:
        from hurtle.observe.deploys import check_text, mark_deploy
        from hurtle.tally_source import find_tallies

        try:
            text = check_text(text)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if self.history_ttl <= 0:
            raise ConfigurationError("the task history is off (history_ttl=0): no deploy marker is kept")
        borrowed = self.client.connection().broker.tally_store()
        store = borrowed or find_tallies(self.broker_url, self.results_url)
        if store is None:
            raise ConfigurationError(
                f"{self.broker_url.scheme} keeps no task history: give the app a result store that does,"
                " as App(results='redis://...') or results='sqlite:///results.db'"
            )
        try:
            await mark_deploy(store, text, self.history_ttl + 60.0)
        finally:
            if store is not borrowed:
                await store.close()

    def _by_name(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Envelope:
        task = self.tasks.get(name)
        if task is None:  # its code is elsewhere: only JSON itself (at encode) and depth can be checked
            check_call_nesting(name, args, kwargs)
            return make_envelope(name, args, kwargs, queue=self.default_queue)
        task.types.check_call(args, kwargs)
        return make_envelope(name, args, kwargs, queue=task.opts.queue, timeout=task.opts.timeout)

    def use_broker(self, broker: str | SecretURL, *, results: str | SecretURL | None = None) -> None:
        """Send to and read from ``broker`` (and ``results``) from now on: how a test
        points an existing ``tasks.py`` at a private broker (``hurtle.testing.isolated``).
        Closes the sync API's connections; the next call opens new ones."""
        from hurtle.brokers import from_url

        from_url(broker, visibility_timeout=self.visibility_timeout)  # a bad URL fails here
        self.client.reset()
        self.broker_url = broker
        self.results_url = results

    def close(self) -> None:
        """Close the connections the sync API opened. Safe to call more than once."""
        self.client.close()


def _default_name(fn: Callable[..., Any]) -> str:
    """``<module>.<qualname>``; a script run as ``__main__`` is named by its file."""
    module = fn.__module__
    if module == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
        else:
            path = inspect.getfile(fn)
            module = path.rsplit("/", 1)[-1].removesuffix(".py")
    return f"{module}.{fn.__qualname__}"
