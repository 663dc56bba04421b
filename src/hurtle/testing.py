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
        queues=list(queues) if queues else _all_queues(app),
        concurrency=concurrency,
        threads=threads,
        burst=True,
        fetch_timeout=fetch_timeout,
    )
    connection = app._make_connection()
    app._clients.bind(connection)
    try:
        consumer = Consumer(app, connection, config)
        await consumer.run()
        return consumer.counters
    finally:
        app._clients.unbind()
        await connection.close()


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


def _all_queues(app: App) -> list[str]:
    return sorted({task.opts.queue for task in app.tasks.values()} | {app.default_queue})
