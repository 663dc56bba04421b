"""A lane (the fetch loop's reads, the flusher's acks) keeps its own deadline: a
server that stops answering is a Redis ``TimeoutError`` (which ``Link.call``
retries on a new connection), never a fetch that hangs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from hurtle.brokers.redis import lanes
from hurtle.brokers.redis.lanes import RedisConn


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server on loopback that reads everything and never answers; its port."""
    connected = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in connected:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_lane_to_a_server_that_never_answers_times_out_and_disconnects(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lanes, "SOCKET_TIMEOUT", 0.2)
    client = aioredis.Redis(host="127.0.0.1", port=silent_server, socket_timeout=0.2)
    conn = RedisConn(client, {}, "consumer")
    try:
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(conn.on_lane("read", "PING"), 5)
        assert not conn.lanes["read"].is_connected
        assert "read" not in conn._busy_lanes  # the next call may use the lane again
    finally:
        await conn.close()
