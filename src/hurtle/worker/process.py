"""One worker process: one event loop (uvloop when installed), its hooks, its consumer.

Signal handlers only set flags (little else is safe inside one): the first
SIGTERM stops fetching and drains within the grace period; a second one exits
at once, leaving leases to
expire so the work is delivered again. SIGINT is ignored here: Ctrl-C reaches
the whole process group, and the supervisor turns it into one SIGTERM per child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from hurtle.app import App
from hurtle.client import Connection
from hurtle.loops import cancel_all, new_event_loop, worker_loop
from hurtle.observe.figure_writer import FigureSink, FigureWriter
from hurtle.observe.heartbeat import Heartbeat
from hurtle.observe.metrics.reporter import metric_sinks
from hurtle.record_source import open_records
from hurtle.schedule.worker import scheduling
from hurtle.worker.config import WorkerConfig
from hurtle.worker.consumer import Consumer
from hurtle.worker.fetch_groups import runs_async_tasks
from hurtle.worker.loop_watch import LoopWatcher, block_limit
from hurtle.worker.watchdog import Heartbeats

if TYPE_CHECKING:
    from hurtle.profiling.profiler import Profiler

log = logging.getLogger("hurtle.worker")

EXIT_HOOK_FAILED = 3
EXIT_STOP_HUNG = 1  # a stop that outlived its deadline: the process ended itself
#: Seconds a stop may take past the grace period (closing stores and connections,
#: each bounded on its own) before the process ends itself: ``stop_deadline``.
STOP_MARGIN = 60.0
_PARENT_CHECK_EVERY = 1.0  # seconds


def run_process(
    app: App,
    config: WorkerConfig,
    *,
    handle_signals: bool = True,
    heartbeats: Heartbeats | None = None,
    slot: int = 0,
) -> int:
    """Run a worker process to its end; return its exit code."""
    for hook in app.worker_start_hooks:
        try:
            hook()
        except Exception:
            log.exception("on_worker_start hook %s failed; this process stops", _name(hook))
            return EXIT_HOOK_FAILED
    loop = new_event_loop(worker_loop(config.loop, runs_async_tasks(app.tasks.values(), config.queues)))
    watcher = None
    if heartbeats is not None:  # a supervised process: find what blocks its loop
        watcher = LoopWatcher(heartbeats, slot, block_limit(app.visibility_timeout))
        watcher.start()
    try:
        return loop.run_until_complete(_serve(app, config, handle_signals, heartbeats, slot))
    finally:
        if watcher is not None:
            watcher.stop()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        for hook in app.worker_stop_hooks:
            try:
                hook()
            except Exception:
                log.exception("on_worker_stop hook %s failed", _name(hook))


async def _serve(
    app: App, config: WorkerConfig, handle_signals: bool, heartbeats: Heartbeats | None, slot: int
) -> int:
    async with worker_connection(app) as connection, profiling(app, config, connection) as profiler:
        consumer = Consumer(app, connection, config, profiler)
        watchers: list[asyncio.Task[Any]] = []
        if handle_signals:
            _install_signals(consumer)
            watchers.append(asyncio.create_task(_watch_parent(consumer)))
        if heartbeats is not None:
            watchers.append(asyncio.create_task(heartbeats.keep_stamping(slot)))
        watchers.append(asyncio.create_task(stop_deadline(consumer, consumer.config.grace + STOP_MARGIN)))
        log.info("worker %s started", consumer.name)  # what it runs: the supervisor's start block
        try:
            supervised = heartbeats is not None
            async with (
                registry(app, consumer, supervised=supervised),
                history(app, consumer) as sinks,
                figure_writing(consumer, [*sinks, *metric_sinks(consumer, slot)]),
                scheduling(app, consumer, slot),
            ):
                return await consumer.run()
        finally:
            for watcher in watchers:
                watcher.cancel()


@contextlib.asynccontextmanager
async def worker_connection(app: App) -> AsyncIterator[Connection]:
    """The consumer's connection, bound to the running loop so tasks that send
    tasks share it (one client per process, never one per task), closed at the end."""
    connection = app.client.new_connection()
    app.client.bind(connection)
    try:
        yield connection
    finally:
        app.client.unbind()
        await connection.close()


@contextlib.asynccontextmanager
async def profiling(app: App, config: WorkerConfig, connection: Connection) -> AsyncIterator[Profiler | None]:
    """This process's profiler, writing to the broker's store while the consumer
    runs; None (no thread, no wrapper) when no task is profiled. A broker that
    keeps tallies lends its own store: no second connection per process."""
    if config.profile is None and not any(task.opts.profile for task in app.tasks.values()):
        yield None
        return
    from hurtle.profiling.profiler import ProfileConfig, Profiler, profiled_tasks
    from hurtle.tally_source import open_tallies

    settings = config.profile or ProfileConfig()
    borrowed = connection.broker.tally_store() if settings.directory is None else None
    store = borrowed or open_tallies(app.broker_url, app.results_url, settings.directory)
    profiler = Profiler(profiled_tasks(app, config.profile), settings, app)
    profiler.start()
    writer = asyncio.create_task(profiler.keep_writing(store), name="hurtle-profile-writer")
    try:
        yield profiler
    finally:
        writer.cancel()
        profiler.stop()
        try:
            await profiler.write(store)  # what the last seconds sampled
        except Exception as exc:
            log.warning("could not write profiles (%s: %s)", type(exc).__name__, exc)
        finally:
            if store is not borrowed:  # the connection closes its own
                await store.close()


@contextlib.asynccontextmanager
async def registry(app: App, consumer: Consumer, *, supervised: bool) -> AsyncIterator[None]:
    """This process in the worker registry while the consumer runs
    (``hurtle.observe``): a record every few seconds, deleted at a clean stop.
    Nothing when the interval is 0 or no store keeps records (RabbitMQ without a
    result store that does). A broker that keeps records lends its own store."""
    every = consumer.config.registry_interval
    borrowed = consumer.broker.record_store() if every > 0 else None
    store = borrowed or (open_records(app.broker_url, app.results_url) if every > 0 else None)
    if store is None:
        yield
        return
    heartbeat = Heartbeat(store, consumer, every, os.getppid() if supervised else None)
    beating = asyncio.create_task(heartbeat.keep_beating(), name="hurtle-registry")
    try:
        yield
    finally:
        await cancel_all([beating])
        await heartbeat.leave()
        try:
            if store is not borrowed:  # the connection closes its own
                await store.close()
        except Exception as exc:
            log.warning("could not close the worker registry's store (%s: %s)", type(exc).__name__, exc)


@contextlib.asynccontextmanager
async def history(app: App, consumer: Consumer) -> AsyncIterator[list[FigureSink]]:
    """The task history's sink (``hurtle.observe.history_sink``), or none when
    ``app.history_ttl`` is 0 or no store keeps tallies (RabbitMQ without a result
    store that does). A broker that keeps tallies lends its own store: no second
    connection per process. The sink's close (the figure writer's) closes a store
    opened here."""
    if app.history_ttl <= 0:
        yield []
        return
    from hurtle.errors import ConfigurationError
    from hurtle.observe.history_sink import HistorySink, Sampler
    from hurtle.tally_source import open_tallies

    broker = consumer.broker
    borrowed = broker.tally_store()
    try:
        store = borrowed or open_tallies(app.broker_url, app.results_url, None)
    except ConfigurationError:
        yield []
        return
    queues = list(consumer.queues)
    sample: Sampler | None = (lambda: broker.added_counts(queues)) if broker.counts_added else None
    yield [HistorySink(store, app.history_ttl, sample=sample, own_store=store is not borrowed)]


@contextlib.asynccontextmanager
async def figure_writing(consumer: Consumer, sinks: list[FigureSink]) -> AsyncIterator[None]:
    """Send the consumer's task figures to ``sinks`` every few seconds while it runs,
    and what is left when it stops (``hurtle.observe.figure_writer``)."""
    if not sinks:
        yield
        return
    writer = FigureWriter(consumer.figures, sinks)
    writing = asyncio.create_task(writer.keep_writing(), name="hurtle-figures")
    try:
        yield
    finally:
        await cancel_all([writing])
        await writer.close()


def _install_signals(consumer: Consumer) -> None:
    loop = asyncio.get_running_loop()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term() -> None:
        if consumer.stopping:
            os._exit(1)  # second signal: stop at once, leases expire
        consumer.stop()

    loop.add_signal_handler(signal.SIGTERM, on_term)


async def stop_deadline(consumer: Consumer, limit: float) -> None:
    """Once a stop is asked for, give it ``limit`` seconds; then log what was still
    awaited, and end the process. An await that never ends while stopping must not
    keep a process alive for ever (orphaned, if its supervisor is gone meanwhile):
    its leases expire and its messages are delivered again."""
    await consumer.stop_requested()
    await asyncio.sleep(limit)
    me = asyncio.current_task()
    waiting = [task for task in asyncio.all_tasks() if task is not me and not task.done()]
    log.error("stopping took more than %gs; ending this process now. Still awaited: %s",
              limit, "; ".join(_awaiting(task) for task in waiting) or "nothing")
    logging.shutdown()
    os._exit(EXIT_STOP_HUNG)


def _awaiting(task: asyncio.Task[Any]) -> str:
    """``name at file:line in function``: where ``task`` waits."""
    stack = task.get_stack()
    if not stack:
        return task.get_name()
    frame = stack[-1]
    return f"{task.get_name()} at {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


async def _watch_parent(consumer: Consumer) -> None:
    """A child whose supervisor died (SIGKILL) stops gracefully, not orphaned."""
    parent = os.getppid()
    while not consumer.stopping:
        await asyncio.sleep(_PARENT_CHECK_EVERY)
        if os.getppid() != parent:
            log.warning("supervisor %d is gone; stopping", parent)
            consumer.stop()


def _name(hook: Callable[..., Any]) -> str:
    return getattr(hook, "__qualname__", repr(hook))
