"""One process's connection to Redis: a client with its pool and scripts, and lanes.

A lane is a connection of its own for a caller that sends one command at a time,
over and over (the fetch loop's reads, the flusher's acks): it skips the pool
and redis-py's retry wrapper, and keeps its deadline with one timer.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Union

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline as SinglePipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hurtle.brokers.redis.compat import new_connection

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py runs without it, packing in Python
    _hiredis_pack = None  # type: ignore[assignment]

Client = Union[aioredis.Redis, RedisCluster]  # noqa: UP007 - a runtime alias: py3.10 has no `type`
Pipeline = Union[SinglePipeline, ClusterPipeline]  # noqa: UP007

BLOCK_CAP = 5.0  # seconds one blocking command may wait; below the socket timeout
SOCKET_TIMEOUT = BLOCK_CAP + 5.0  # a silent server (no RST) is noticed after this


@functools.cache
def script_source(name: str) -> str:
    """``lua/NAME.lua`` with ``lib.lua``, the helpers every script shares, in front."""
    folder = resources.files("hurtle.brokers.redis").joinpath("lua")
    return folder.joinpath("lib.lua").read_text() + folder.joinpath(f"{name}.lua").read_text()


def _raise(exc: Exception) -> None:
    raise exc


OnError = Callable[[Exception], None]


@dataclass
class RedisConn:
    """What one process uses: a client (with its pool), the scripts, a consumer name."""

    client: Client
    scripts: dict[str, AsyncScript]
    consumer: str
    pid: int = field(default_factory=os.getpid)
    groups: set[str] = field(default_factory=set)  # streams whose consumer group exists
    lanes: dict[str, Any] = field(default_factory=dict)  # lane name: a redis-py connection
    _busy_lanes: set[str] = field(default_factory=set)

    async def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        # EVALSHA; after a server restart emptied the script cache, redis-py loads it again.
        return await self.scripts[name](keys=keys, args=args)

    async def on_lane(self, lane: str, *command: Any) -> Any:
        """One command on a connection of ``lane``'s own, for a caller that sends one
        command at a time, over and over: the fetch loop's reads, the flusher's acks.
        No pool and no retry wrapper (a lost connection still raises, and
        ``RedisLink.call`` retries). While the lane is busy (a second caller), on a
        cluster, or for a reply that needs parsing: through the client."""
        # The pool and the retry wrapper were 100 of the 250 us a command cost.
        connection = self._lane(lane)
        if connection is None:
            return await self.client.execute_command(*command)
        (reply,) = await self._exchange_on(lane, connection, [command])
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def script_on_lane(
        self, lane: str, name: str, keys: Sequence[str], args: Sequence[Any],
        *, before: Sequence[Sequence[Any]] = (), before_failed: OnError = _raise,
    ) -> Any:
        """``script`` through ``lane``, after the commands ``before`` (in the same write);
        its reply. A server that lost its scripts gets them through ``script``. The
        error of a command ``before`` goes to ``before_failed`` once the script ran."""
        connection = self._lane(lane)
        if connection is None:
            pipe = self.client.pipeline(transaction=False)
            for command in before:
                pipe.execute_command(*command)
            return (await self.scripts_in(pipe, name, [(list(keys), list(args))], before_failed))[-1]
        evalsha = ("EVALSHA", self.scripts[name].sha, len(keys), *keys, *args)
        replies = await self._exchange_on(lane, connection, [*before, evalsha])
        *firsts, reply = replies
        if isinstance(reply, NoScriptError):
            reply = await self.script(name, keys, args)
        elif isinstance(reply, ResponseError):
            raise reply
        for first in firsts:
            if isinstance(first, ResponseError):
                before_failed(first)
        return reply

    def _lane(self, lane: str) -> Any:
        """``lane``'s connection, made on first use; None while it is busy (a second
        caller) or on a cluster, whose client routes each command to its node."""
        if isinstance(self.client, RedisCluster) or lane in self._busy_lanes:
            return None
        connection = self.lanes.get(lane)
        if connection is None:
            connection = new_connection(self.client, socket_timeout=_LANESOCKET_TIMEOUT)
            if connection is None:  # a redis-py hurtle does not know: through its pool
                return None
            self.lanes[lane] = connection
        return connection

    async def _exchange_on(self, lane: str, connection: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
        self._busy_lanes.add(lane)
        try:
            return await _exchange(connection, commands)
        finally:
            self._busy_lanes.discard(lane)

    async def close(self) -> None:
        for connection in self.lanes.values():
            await connection.disconnect()
        await self.client.aclose()

    async def scripts_in(
        self, pipe: Pipeline, name: str, calls: Sequence[tuple[list[str], list[Any]]],
        before_failed: OnError = _raise,
    ) -> list[Any]:
        """Add one ``EVALSHA`` of script ``name`` per (keys, args) to ``pipe``, run it, and
        return every reply (the pipe's own commands first). A call a restarted server
        answers NOSCRIPT did nothing: it runs again through ``script``, which loads it.
        The error of a script is raised; that of one of the pipe's own commands, once
        the scripts ran, goes to ``before_failed``.

        ``execute_command("EVALSHA")``, not ``pipe.evalsha``: redis-py's cluster pipeline
        refuses the method (not the command), which it routes by the script's keys."""
        first = len(pipe)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", self.scripts[name].sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        for index, (keys, args) in enumerate(calls, first):
            if isinstance(replies[index], NoScriptError):
                replies[index] = await self.script(name, keys, args)
        for reply in replies[first:]:
            if isinstance(reply, Exception):
                raise reply
        for reply in replies[:first]:
            if isinstance(reply, Exception):
                before_failed(reply)
        return replies


def _pack(connection: Any, commands: Sequence[Sequence[Any]]) -> Any:
    """RESP bytes of ``commands``, packed by hiredis in C when it is installed."""
    # hiredis: 3 us a command, where redis-py's packer takes 20 (a send_many of
    # 1,000: 2.4 ms with redis-py, 0.3 ms with hiredis).
    if _hiredis_pack is not None:
        return b"".join([_hiredis_pack(tuple(command)) for command in commands])
    return connection.pack_commands(commands)


async def _reply(connection: Any) -> Any:
    """The next reply; an error reply as its exception, so the replies after it are
    still read and the connection stays in step."""
    try:
        return await connection.read_response()
    except ResponseError as exc:
        return exc


if sys.version_info >= (3, 11):
    _LANESOCKET_TIMEOUT = None  # the exchange keeps the deadline, with one timer

    def _lane_deadline() -> Any:
        return asyncio.timeout(SOCKET_TIMEOUT)

else:  # no asyncio.timeout: the connection's socket_timeout keeps the deadline
    _LANESOCKET_TIMEOUT = SOCKET_TIMEOUT

    def _lane_deadline() -> Any:
        return contextlib.nullcontext()


async def _exchange(connection: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send ``commands`` in one write and read their replies within ``SOCKET_TIMEOUT``.
    One timer: a connection's own socket_timeout starts a task per write
    (``wait_for``) and a timer per read. Cancelled mid-way, or on a lost
    connection, the connection disconnects itself."""
    try:
        async with _lane_deadline():
            await connection.send_packed_command(_pack(connection, commands), check_health=False)
            return [await _reply(connection) for _ in commands]
    except builtins.TimeoutError:
        raise RedisTimeoutError(f"no reply from Redis within {SOCKET_TIMEOUT:.0f}s") from None
