"""A thousand handles awaited at once in one process, on every broker and result
store a user would pair: every result arrives, nothing is logged, and the
result store holds a few connections, not one per waiter."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

import hurtle
import hurtle.testing
from tests.amqp_server import unique_amqp_url
from tests.redis_server import shared_redis_url, unique_redis_url

MANY = 1000
WAIT_LIMIT = 60.0  # seconds: a bound on the wait, never reached when the store is right

Urls = Callable[[Path], tuple[str, str | None]]  # tmp_path -> (broker URL, results URL)

PAIRS: dict[str, Urls] = {
    "sqlite": lambda tmp: (f"sqlite:///{tmp}/app.db", None),
    "redis": lambda tmp: (unique_redis_url(), None),
    "amqp+sqlite": lambda tmp: (unique_amqp_url(), f"sqlite:///{tmp}/results.db"),
    "amqp+redis": lambda tmp: (unique_amqp_url(), unique_redis_url()),
}


async def most_connections_while(waiting: asyncio.Future[object], redis_url: str) -> int:
    """The most Redis connections this process held (hurtle names them ``hurtle:HOST:PID``)
    at any look, once every 20 ms, until ``waiting`` is done."""
    name = f"hurtle:{socket.gethostname().replace('/', '_')}:{os.getpid()}"
    admin = aioredis.Redis.from_url(redis_url)
    most = 0
    try:
        while not waiting.done():
            clients = await admin.client_list()
            most = max(most, sum(1 for c in clients if c.get("name") == name))
            await asyncio.sleep(0.02)
    finally:
        await admin.aclose()
    return most


@pytest.mark.parametrize("pair", list(PAIRS), ids=list(PAIRS))
async def test_a_thousand_handles_gathered_at_once_all_get_their_results_quietly(
    pair: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker_url, results_url = PAIRS[pair](tmp_path)
    app = hurtle.App(broker_url, results=results_url)

    @app.task
    def double(x: int) -> int:
        return 2 * x

    handles = await double.send_many_async([(i,) for i in range(MANY)])
    caplog.set_level(logging.WARNING)

    # When this process awaits every handle while a worker (on a thread, with its own loop) runs the tasks
    waiting = asyncio.ensure_future(asyncio.gather(*(h.result_async(timeout=WAIT_LIMIT) for h in handles)))
    looking = None
    if "redis" in pair:
        looking = asyncio.ensure_future(most_connections_while(waiting, shared_redis_url()))
    worker = asyncio.ensure_future(asyncio.to_thread(hurtle.testing.drain, app))

    # Then every result arrives, nothing is logged, and the connections stay few
    assert await waiting == [2 * i for i in range(MANY)]
    await worker
    assert [record.getMessage() for record in caplog.records] == []
    if looking is not None:
        # The waiters' subscribed connection and one for lookups, the worker's few: not one per waiter.
        assert await looking <= 15
    await app.client.connection().close()
