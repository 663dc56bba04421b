"""Helpers shared by every test directory.

``run_worker`` runs a burst-mode ``Consumer`` in-process, on the test's own event
loop, the way ``worker/process.py`` ``_serve`` does in a worker process: one
connection made by the app, bound to the running loop so tasks that send tasks
share it. (A public ``hurtle.testing`` module will replace this helper.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hurtle import App
from hurtle.worker.consumer import Consumer, WorkerConfig

WORKER_LIMIT = 30.0  # seconds: a bound on one burst run, never expected to be reached

RunWorker = Callable[..., Awaitable[Consumer]]


async def run_worker(app: App, **config: Any) -> Consumer:
    """Run a consumer until its queues are empty (or it stops); return it.

    ``config`` overrides ``WorkerConfig`` fields; ``burst`` is on and fetches
    block briefly so an empty queue is noticed quickly. The consumer's
    ``exit_code`` and ``counters`` tell how the run ended.
    """
    settings: dict[str, Any] = {"burst": True, "fetch_timeout": 0.05, **config}
    connection = app._make_connection()
    app._clients.bind(connection)
    consumer = Consumer(app, connection, WorkerConfig(**settings))
    try:
        await asyncio.wait_for(consumer.run(), WORKER_LIMIT)
    finally:
        app._clients.unbind()
        await connection.close()
    return consumer


@pytest.fixture
def worker() -> RunWorker:
    """``consumer = await worker(app, threads=1, ...)``: one burst run, in-process."""
    return run_worker
