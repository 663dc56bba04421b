"""Helpers for testing code that uses hurtle, with any broker (``memory://`` is fastest).

    app = hurtle.App("memory://")
    handle = add.send(1, 2)
    hurtle.testing.drain(app)          # run every queued task here, then return
    assert handle.result() == 3

An existing ``tasks.py`` whose app names a real broker is tested the same way
inside ``isolated(app)``, which points it at a private memory broker for the
test and back afterwards.

``drain`` runs the real consumer (the same code as ``hurtle worker``) on this
process, in burst mode: retries, time limits and dead-lettering behave as they
do in production, minus the fork. Like ``hurtle worker --burst`` it waits for
delayed tasks too (a retry's backoff, an ``eta``): give it a ``timeout`` when a
test leaves tasks delayed far into the future.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Sequence

from hurtle.app import App
from hurtle.brokers import from_url
from hurtle.worker.config import WorkerConfig
from hurtle.worker.consumer import Consumer
from hurtle.worker.process import worker_connection
from hurtle.worker.settle import Counters


@contextlib.contextmanager
def isolated(app: App) -> Iterator[App]:
    """Point ``app`` at a fresh in-process broker (results kept) for the ``with``
    block, then back at its own: tests of an existing ``tasks.py`` touch no real
    broker and see nothing of each other's tasks."""
    previous = (app.broker_url, app.results_url)
    app.use_broker(f"memory://hurtle-test-{os.urandom(8).hex()}")
    try:
        yield app
    finally:
        app.use_broker(previous[0], results=previous[1])


async def drain_async(
    app: App,
    queues: Sequence[str] | None = None,
    *,
    concurrency: int = 100,
    threads: int = 8,
    fetch_timeout: float = 0.05,
    timeout: float | None = None,
) -> Counters:
    """Run tasks on the running loop until the queues are empty (delayed tasks
    included); return the counts. With ``timeout``, stop after that many seconds
    (tasks running then finish) and raise ``TimeoutError`` if any are left."""
    config = WorkerConfig(
        queues=list(queues) if queues else app.queues(),
        concurrency=concurrency,
        threads=threads,
        burst=True,
        burst_timeout=timeout,
        fetch_timeout=fetch_timeout,
    )
    consumer = await run_consumer(app, config)
    if timeout is not None:  # a burst run ends with nothing left unless the timeout stopped it
        left = await _pending(app, config.queues)
        if left:
            raise TimeoutError(f"drain: {left} task(s) still queued or delayed after {timeout:g}s")
    return consumer.counters


async def run_consumer(app: App, config: WorkerConfig) -> Consumer:
    """Run the real consumer on the running loop until it stops (in burst mode:
    until its queues are empty, or its ``burst_timeout`` passes); return it for
    its ``exit_code`` and ``counters``."""
    async with worker_connection(app) as connection:
        consumer = Consumer(app, connection, config)
        try:
            await consumer.run()
        finally:
            await consumer.tick_claims.close()
        return consumer


async def _pending(app: App, queues: Sequence[str]) -> int:
    broker = from_url(app.broker_url, visibility_timeout=app.visibility_timeout)
    try:
        return sum(s.pending for s in await broker.stats(queues))
    finally:
        await broker.close()


def drain(
    app: App,
    queues: Sequence[str] | None = None,
    *,
    concurrency: int = 100,
    threads: int = 8,
    fetch_timeout: float = 0.05,
    timeout: float | None = None,
) -> Counters:
    """Blocking ``drain_async``, for sync tests: runs on a fresh event loop."""
    return asyncio.run(
        drain_async(
            app, queues, concurrency=concurrency, threads=threads, fetch_timeout=fetch_timeout,
            timeout=timeout,
        )
    )
