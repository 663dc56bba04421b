"""What waiting for results on Redis promises beyond the contract suite: a few
connections for any number of waiters, and no result missed however it comes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from hurtle.brokers import from_url
from hurtle.brokers.redis import RedisBroker
from hurtle.brokers.redis import waiters as redis_waiters
from hurtle.brokers.redis.results import RedisResults
from hurtle.brokers.redis.waiters import PUBLISH_MAX_BYTES
from hurtle.errors import BrokerError
from hurtle.results import PollingWaiters, ResultStore
from tests.redis_server import RedisServer, unique_redis_url

WAIT_LIMIT = 30.0  # seconds: a bound on every wait, never reached when the store is right
TTL = 3600.0


@pytest.fixture
async def redis_admin() -> AsyncIterator[aioredis.Redis]:
    """A plain client on the same server, for looking at it from outside."""
    client = aioredis.Redis.from_url(unique_redis_url().partition("?")[0])
    yield client
    await client.aclose()


@pytest.fixture
async def stores() -> AsyncIterator[Callable[[], Any]]:
    """``await stores()``: result stores (each its broker's) on one fresh key prefix."""
    url = unique_redis_url()
    opened: list[RedisBroker] = []

    async def open_one() -> ResultStore:
        broker = from_url(url)
        assert isinstance(broker, RedisBroker)
        opened.append(broker)
        await broker.connect()
        return broker.result_store()

    yield open_one
    for broker in opened:
        await broker.close()


async def our_connections(admin: aioredis.Redis) -> list[dict[str, Any]]:
    """The connections this process's hurtle clients hold (named ``hurtle:HOST:PID``)."""
    name = f"hurtle:{socket.gethostname().replace('/', '_')}:{os.getpid()}"
    return [c for c in await admin.client_list() if c.get("name") == name]


async def test_a_thousand_waiters_share_a_few_connections(
    stores: Callable[[], Any], redis_admin: aioredis.Redis
) -> None:
    results, writer = await stores(), await stores()
    ids = [f"t{i}" for i in range(1000)]
    waiting = asyncio.gather(*(results.wait(i, WAIT_LIMIT) for i in ids))
    most = 0
    for start in range(0, len(ids), 100):  # stored while they wait, in batches, looking at the server between
        most = max(most, len(await our_connections(redis_admin)))
        await writer.store([(i, i.encode()) for i in ids[start : start + 100]], TTL)

    assert await waiting == [i.encode() for i in ids]
    # The waiters' subscribed connection and one for lookups, the writer's: not one per waiter.
    assert most <= 5


async def test_a_result_too_large_to_publish_still_reaches_its_waiter(stores: Callable[[], Any]) -> None:
    results, writer = await stores(), await stores()
    large = b"x" * (PUBLISH_MAX_BYTES + 1)
    waiting = asyncio.create_task(results.wait("big", WAIT_LIMIT))
    await asyncio.sleep(0)  # let the wait start

    await writer.store([("big", large)], TTL)

    assert await waiting == large


async def subscribed_to(admin: aioredis.Redis, channels: int) -> None:
    """Wait until one of this process's connections is subscribed to ``channels`` channels."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not any(int(c.get("sub", 0)) == channels for c in await our_connections(admin)):
        assert time.monotonic() < deadline, f"no connection subscribed to {channels} channels"
        await asyncio.sleep(0.01)


async def test_a_result_written_without_a_message_is_found_all_the_same(
    stores: Callable[[], Any], redis_admin: aioredis.Redis
) -> None:
    # Given a subscribed waiter, and a writer that only writes the list (a worker of a
    # version that did not publish)
    results = await stores()
    waiting = asyncio.create_task(results.wait("quiet", WAIT_LIMIT))
    await subscribed_to(redis_admin, 1)

    assert isinstance(results, RedisResults)
    await redis_admin.rpush(results.keys.result("quiet"), b"written quietly")

    # Then the waiter finds it all the same
    assert await waiting == b"written quietly"


async def test_waiters_get_results_stored_while_their_connection_was_lost(
    stores: Callable[[], Any], redis_admin: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    results, writer = await stores(), await stores()
    waiting = asyncio.gather(*(results.wait(f"t{i}", WAIT_LIMIT) for i in range(10)))

    await subscribed_to(redis_admin, 10)
    # When the server drops the subscribed connection and the results come before it is back
    (subscriber,) = [c for c in await our_connections(redis_admin) if int(c.get("sub", 0)) == 10]
    await redis_admin.client_kill_filter(_id=subscriber["id"])
    await writer.store([(f"t{i}", b"done") for i in range(10)], TTL)

    # Then every waiter still gets its result, and the log says the connection was lost and back
    assert await waiting == [b"done"] * 10
    assert "lost the connection to Redis" in caplog.text


async def test_a_client_waiting_with_blmove_still_gets_the_result(
    stores: Callable[[], Any], redis_admin: aioredis.Redis
) -> None:
    # Given a client of an earlier hurtle, which blocks on the result list itself
    writer = await stores()
    assert isinstance(writer, RedisResults)
    key = writer.keys.result("old")
    blocked = asyncio.create_task(redis_admin.blmove(key, key, 5, "LEFT", "LEFT"))
    await asyncio.sleep(0)  # sent (whether it blocks before the store or finds the list, it must answer)

    await writer.store([("old", b"same list as ever")], TTL)

    assert await blocked == b"same list as ever"
    assert await redis_admin.lrange(key, 0, -1) == [b"same list as ever"]


async def test_a_waiter_keeps_waiting_across_a_redis_restart_and_gets_a_result_stored_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        results, writer = from_url(server.url).result_store(), from_url(server.url).result_store()
        assert results is not None and writer is not None
        waiting = asyncio.create_task(results.wait("t1", WAIT_LIMIT))
        admin = aioredis.Redis.from_url(server.url)
        await subscribed_to(admin, 1)
        await admin.aclose()

        # When the server goes away and comes back, and only then the result is stored
        await asyncio.to_thread(server.stop, kill=True)
        await asyncio.to_thread(server.start)
        await writer.store([("t1", b"after the restart")], TTL)

        # Then the waiter gets it, and the log says the connection came back
        assert await waiting == b"after the restart"
        assert "reconnected to Redis" in caplog.text
        await results.close()
        await writer.close()
    finally:
        server.stop(kill=True)


async def test_a_waiter_whose_time_runs_out_while_redis_is_down_says_so(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        results = from_url(server.url + "?reconnect_timeout=0.2").result_store()
        assert results is not None
        assert await results.wait("t1", 0.05) is None  # connected, nothing yet
        await asyncio.to_thread(server.stop, kill=True)

        with pytest.raises(BrokerError, match="unreachable"):
            await results.wait("t1", 1.0)
        await results.close()
    finally:
        server.stop(kill=True)


async def test_without_hiredis_the_waiters_poll_together(
    stores: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_waiters, "hiredis", None)
    results, writer = await stores(), await stores()
    waiting = asyncio.gather(*(results.wait(f"t{i}", WAIT_LIMIT) for i in range(200)))
    await writer.store([(f"t{i}", b"done") for i in range(200)], TTL)

    assert await waiting == [b"done"] * 200
    assert isinstance(results._waiters, PollingWaiters)


def test_a_script_that_waited_with_the_sync_api_exits_without_a_word() -> None:
    # The sync API's loop runs on a daemon thread and is never closed: anything the
    # waiters left running would be reported as destroyed when the script ends.
    script = f"""
import asyncio, threading
import hurtle
from hurtle.brokers import from_url

app = hurtle.App({unique_redis_url()!r})

@app.task
def seven() -> int:
    return 7

late, done = seven.send(), seven.send()
try:
    late.result(timeout=0.2)
except TimeoutError:
    pass

async def store_result() -> None:
    broker = from_url(app.broker_url)
    record = b'{{"v":1,"id":"%s","status":"succeeded","value":7}}' % done.id.encode()
    await broker.result_store().store([(done.id, record)], 60)
    await broker.close()

threading.Timer(0.05, lambda: asyncio.run(store_result())).start()
assert done.result(timeout=10) == 7
"""
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (finished.returncode, finished.stderr) == (0, "")
