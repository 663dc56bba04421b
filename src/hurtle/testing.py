"""Helpers for testing code that uses hurtle, with any broker (``memory://`` is fastest).

    app = hurtle.App("memory://")
    handle = add.send(1, 2)
    hurtle.testing.drain(app)          # run every queued task here, then return
    assert handle.result() == 3

``drain`` runs the real consumer (the same code as ``hurtle worker``) on this
process, in burst mode: retries, time limits and dead-lettering behave as they
do in production, minus the fork.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hurtle.app import App
from hurtle.worker.consumer import Consumer, Counters, WorkerConfig
from hurtle.worker.process import worker_connection


async def drain_async(
    app: App,
    queues: Sequence[str] | None = None,
    *,
    concurrency: int = 100,
    threads: int = 8,
    fetch_timeout: float = 0.05,
) -> Counters:
    """Run tasks on the running loop until the queues are empty; return the counts."""
    config = WorkerConfig(
        queues=list(queues) if queues else app.queues(),
        concurrency=concurrency,
        threads=threads,
        burst=True,
        fetch_timeout=fetch_timeout,
    )
    return (await run_consumer(app, config)).counters


async def run_consumer(app: App, config: WorkerConfig) -> Consumer:
    """Run the real consumer on the running loop until it stops (in burst mode:
    until its queues are empty); return it for its ``exit_code`` and ``counters``."""
    async with worker_connection(app) as connection:
        consumer = Consumer(app, connection, config)
        await consumer.run()
        return consumer


def drain(
    app: App,
    queues: Sequence[str] | None = None,
    *,
    concurrency: int = 100,
    threads: int = 8,
    fetch_timeout: float = 0.05,
) -> Counters:
    """Blocking ``drain_async``, for sync tests: runs on a fresh event loop."""
    return asyncio.run(
        drain_async(
            app, queues, concurrency=concurrency, threads=threads, fetch_timeout=fetch_timeout
        )
    )

