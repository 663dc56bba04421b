"""redis-py's internals that hurtle uses, all in ``brokers/redis/compat.py``: they hold
for the installed redis-py, its fast paths are taken, and a redis-py it was not
written for is said so and gets the public paths."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode

from hurtle.brokers.redis import compat
from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.waiters import can_subscribe
from tests.redis_server import shared_redis_url


@pytest.fixture
async def conn() -> AsyncIterator[RedisConn]:
    opened = RedisConn(aioredis.Redis.from_url(shared_redis_url()), {}, "compat-test")
    yield opened
    await opened.close()


def test_the_installed_redis_py_has_everything_the_adapter_assumes() -> None:
    assert compat.IN_RANGE, f"redis-py {compat.VERSION} is outside {compat.SUPPORTED}"
    assert compat.assumptions() == []
    assert compat.CLUSTER_READS


async def test_a_lane_is_a_connection_of_its_own_outside_the_pool(conn: RedisConn) -> None:
    assert await conn.on_lane("read", "PING") in (True, b"PONG")
    assert conn.lanes["read"].is_connected


async def test_the_subscriber_takes_over_a_connected_connection_s_transport(conn: RedisConn) -> None:
    assert can_subscribe()
    client = conn.client
    assert isinstance(client, aioredis.Redis)
    connection = compat.new_connection(client, protocol=2)
    await connection.connect()
    try:
        assert isinstance(compat.transport_of(connection), asyncio.Transport)
    finally:
        await connection.disconnect()


async def test_an_unparsed_reply_comes_as_the_server_sent_it(conn: RedisConn) -> None:
    client = conn.client
    assert isinstance(client, aioredis.Redis)
    compat.leave_unparsed(client, "INFO")
    assert isinstance(await client.execute_command("INFO", "server"), bytes)  # parsed, it is a dict


def test_a_cluster_node_lends_a_connection_and_takes_it_back() -> None:
    node = ClusterNode("127.0.0.1", 6379)
    connection = compat.borrow(node)
    assert callable(connection.send_packed_command)
    compat.give_back(node, connection)
    assert compat.borrow(node) is connection


@pytest.mark.parametrize("installed", ["6.1.0", "9.0.0", "10.1"])
def test_a_redis_py_the_adapter_was_not_written_for_is_named_in_a_warning(installed: str) -> None:
    with pytest.warns(RuntimeWarning, match=f"redis-py {installed} is installed"):
        assert not compat.supported(installed)


@pytest.mark.parametrize("installed", ["6.2.0", "7.0.1", "8.2.0", "8.99"])
def test_a_redis_py_within_the_bounds_is_supported(installed: str) -> None:
    assert compat.supported(installed)


async def test_outside_the_bounds_commands_go_through_the_pool_and_waiters_poll(
    conn: RedisConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compat, "IN_RANGE", False)
    assert await conn.on_lane("read", "SET", "hurtle-test-compat", "1", "EX", "5")
    assert conn.lanes == {}
    assert not can_subscribe()
