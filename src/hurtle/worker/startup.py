"""What a worker says as it starts: where it reads and writes, what it runs, and
what looks wrong.

The supervisor logs this once, before it forks. A worker pointed at the wrong
broker, or not consuming a queue its tasks are sent to, otherwise looks exactly
like an idle one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hurtle.app import App
from hurtle.brokers import from_url, keeping_broker
from hurtle.loops import worker_loop
from hurtle.schedule.limits import describe_limits
from hurtle.schedule.worker import runs_scheduler
from hurtle.task import Task
from hurtle.urls import SecretURL
from hurtle.worker.config import WorkerConfig
from hurtle.worker.cpu_pin import cpu_plan
from hurtle.worker.cpu_pin import describe as describe_cpus
from hurtle.worker.fetch_groups import runs_async_tasks
from hurtle.worker.priorities import QueueSpec


def describe_results(broker_url: str | SecretURL, results_url: str | SecretURL | None) -> str:
    """Where results are kept, fit to print."""
    url = SecretURL(results_url or broker_url)
    if from_url(url).result_store() is None:  # makes no connection
        return f"not kept ({url.scheme} keeps no results)"
    return str(url) if results_url else "kept by the broker"


def keeps_records(app: App) -> bool:
    """Whether the app's broker, or its result store, keeps records (makes no connection)."""
    return keeping_broker(app.broker_url, app.results_url, lambda broker: broker.record_store()) is not None


def task_kind(task: Task[Any, Any], threads: int) -> str:
    if task.is_async:
        return "async, on the event loop"
    if threads == 1:
        return "sync, one at a time per process"
    return "sync, in the thread pool"


def thread_count(config: WorkerConfig) -> str:
    if config.auto_threads:
        return f"auto ({config.threads} to start, at most {config.max_threads})"
    return str(config.threads)


def event_loop(app: App, config: WorkerConfig) -> str:
    """The event loop each process runs (``loops.worker_loop``), and why, for ``auto``."""
    runs_async = runs_async_tasks(app.tasks.values(), config.queues)
    kind = worker_loop(config.loop, runs_async)
    if config.loop != "auto":
        return kind
    if kind == "uvloop":
        return "uvloop (async tasks run here)"
    if runs_async:
        return "asyncio (uvloop is not installed)"
    return "asyncio (every task here is sync: uvloop would wait for the threads at each callback)"


def queue_order(config: WorkerConfig) -> str:
    """The queues consumed, with their order or weights (``priorities.py``)."""
    weights = None if config.weights is None else tuple(config.weights)
    return QueueSpec(tuple(config.queues), weights, config.strict).describe()


def start_block(app: App, config: WorkerConfig, processes: int) -> str:
    """The start-up description, one line per fact, tasks by name."""
    lines = [
        f"starting {processes} worker process(es) consuming {queue_order(config)}"
        f" (concurrency {config.concurrency}, threads {thread_count(config)} per process)",
        f"  broker:  {app.broker_url}",
        f"  results: {describe_results(app.broker_url, app.results_url)}",
        f"  loop:    {event_loop(app, config)}",
        f"  cpus:    {describe_cpus(cpu_plan(config.cpu_pin, processes))}",
    ]
    if config.profile is not None or any(task.opts.profile for task in app.tasks.values()):
        from hurtle.profiling.profiler import ProfileConfig, describe, profiled_tasks

        profiled = profiled_tasks(app, config.profile)
        lines.append(f"  profile: {describe(profiled, config.profile or ProfileConfig())}")
    if not app.tasks:
        lines.append("  tasks:   none registered")
    width = max((len(name) for name in app.tasks), default=0)
    queue_width = max((len(task.opts.queue) for task in app.tasks.values()), default=0)
    for index, (name, task) in enumerate(sorted(app.tasks.items())):
        label = "  tasks:   " if index == 0 else "           "
        queue = task.opts.queue.ljust(queue_width)
        limits = describe_limits(task)
        kind = task_kind(task, config.threads) + (f"  limits: {limits}" if limits else "")
        lines.append(f"{label}{name.ljust(width)}  queue {queue}  {kind}")
    lines += schedule_lines(app, config)
    return "\n".join(lines)


def schedule_lines(app: App, config: WorkerConfig) -> list[str]:
    """The app's schedules, and whether this worker competes to run them."""
    if not app.schedules:
        return []
    if runs_scheduler(app, config):
        how = f"this worker runs them while it holds the lease ({config.schedule_lease:g}s)"
    else:
        why = "--burst" if config.burst else "--schedule-lease 0"
        how = f"not run by this worker ({why})"
    lines = [f"  schedules: {how}"]
    width = max(len(name) for name in app.schedules)
    for name, schedule in sorted(app.schedules.items()):
        lines.append(f"    {name.ljust(width)}  {schedule.describe()}  catch_up {schedule.catch_up}")
    return lines


def start_warnings(app: App, queues: Sequence[str]) -> list[str]:
    """What a worker consuming ``queues`` would likely get wrong, one line each."""
    warnings = []
    task_queues = {task.opts.queue for task in app.tasks.values()}
    for queue in queues:
        if queue not in task_queues and queue != app.default_queue:
            warnings.append(
                f"queue {queue!r} has no registered task: only tasks sent there with"
                f" options(queue={queue!r}) will run from it (a typo in -q?)"
            )
    consumed = ", ".join(queues)
    for name, task in sorted(app.tasks.items()):
        if task.opts.queue not in queues:
            warnings.append(
                f"task {name} (queue {task.opts.queue!r}) will not run here:"
                f" this worker consumes {consumed}"
            )
    if app.schedules and not keeps_records(app):
        warnings.append(
            f"periodic tasks will not run: {app.broker_url.scheme} keeps no records to elect"
            " their leader in; pass App(results=URL) of a store that does (redis://, sqlite://)"
        )
    keeps_results = any(task.opts.store_result for task in app.tasks.values())
    store_url = app.results_url or app.broker_url
    if keeps_results and from_url(store_url).result_store() is None:
        warnings.append(
            f"results are not kept: {store_url.scheme} keeps none, so Handle.result()"
            " waits until its timeout; pass App(results=URL) or set HURTLE_RESULTS"
        )
    return warnings

