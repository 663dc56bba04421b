"""Helpers shared by every test directory.

``run_worker`` runs a burst-mode ``Consumer`` in-process, on the test's own event
loop, through ``hurtle.testing.run_consumer``, the code a worker process runs, with
test defaults (burst on, short fetches, a bound on the run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hurtle import App
from hurtle.testing import run_consumer
from hurtle.worker.consumer import Consumer, WorkerConfig
from tests.amqp_server import delete_test_queues
from tests.xdist_groups import pytest_xdist_make_scheduler  # noqa: F401  # xdist's hook, here to be found

WORKER_LIMIT = 30.0  # seconds: a bound on one burst run, never expected to be reached

RunWorker = Callable[..., Awaitable[Consumer]]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the RabbitMQ queues this process's tests made, while it is sure to
    live (an xdist worker may be stopped before its exit handlers are done)."""
    delete_test_queues()


async def run_worker(app: App, **config: Any) -> Consumer:
    """Run a consumer until its queues are empty (or it stops); return it.

    ``config`` overrides ``WorkerConfig`` fields; ``burst`` is on and fetches
    block briefly so an empty queue is noticed quickly. The consumer's
    ``exit_code`` and ``counters`` tell how the run ended.
    """
    settings: dict[str, Any] = {"burst": True, "fetch_timeout": 0.05, **config}
    return await asyncio.wait_for(run_consumer(app, WorkerConfig(**settings)), WORKER_LIMIT)


@pytest.fixture
def worker() -> RunWorker:
    """``consumer = await worker(app, threads=1, ...)``: one burst run, in-process."""
    return run_worker
