"""The one place that touches redis-py's internals, checked against the version.

Written for redis-py ``SUPPORTED`` (lowest included, the next major version
excluded); pyproject.toml bounds the extra the same way. Outside them a warning
says so at import, and what has a public path takes it: lanes go through the
client and its pool, and result waiters poll instead of subscribing.
``tests/unit/test_redis_compat.py`` checks every assumption below against the
installed redis-py, and that the fast paths are taken.

What is used:

- connections made outside the pool with the pool's (or a cluster node's) class
  and arguments: a lane each (``lanes.py``) and the waiters' subscribed one;
- a connection's stream transport (``_writer.transport``), handed to the
  waiters' own protocol once redis-py connected it (``waiters.py``);
- the reply of ``XREADGROUP`` left unparsed, by replacing its response callback;
- a cluster node's ``acquire_connection``, ``release`` and ``parse_response``,
  for a read on a connection of its own (``cluster.py``).
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection

from hurtle.brokers.versions import in_range

SUPPORTED = ((6, 2), (9, 0))  # redis-py versions: lowest included, highest excluded


def supported(installed: str) -> bool:
    """Whether redis-py ``installed`` is one this module was written for; a warning says
    what happens when it is not."""
    return in_range("redis-py", installed, SUPPORTED, "commands go through its pool, result waiters poll")


VERSION = version("redis")
IN_RANGE = supported(VERSION)

#: A cluster node lends connections one by one (redis-py 6.2 and later).
_NODE_LENDS = ("acquire_connection", "release", "parse_response")
CLUSTER_READS = all(hasattr(ClusterNode, name) for name in _NODE_LENDS)


def new_connection(client: aioredis.Redis, **overrides: Any) -> Any:
    """A connection like the pool's, outside it (not connected yet); None outside
    ``SUPPORTED``, where the caller goes through the client."""
    if not IN_RANGE:
        return None
    pool = client.connection_pool
    return pool.connection_class(**{**pool.connection_kwargs, **overrides})


def node_connection(node: ClusterNode, **overrides: Any) -> Any:
    """A connection like ``node``'s own, outside its pool (not connected yet)."""
    return node.connection_class(**{**node.connection_kwargs, **overrides})


def borrow(node: ClusterNode) -> Any:
    """One of ``node``'s connections, for the caller alone until ``give_back``."""
    return node.acquire_connection()


def give_back(node: ClusterNode, connection: Any) -> None:
    node.release(connection)


async def reply(node: ClusterNode, connection: Any, command_name: str) -> Any:
    """The next reply on ``connection``, parsed as ``node`` parses ``command_name``'s."""
    return await node.parse_response(connection, command_name)


def transport_of(connection: Any) -> asyncio.Transport:
    """The transport of a connected redis-py connection, to hand to another protocol."""
    transport: asyncio.Transport = connection._writer.transport
    return transport


def leave_unparsed(client: aioredis.Redis | RedisCluster, command: str) -> None:
    """``command``'s reply as the server sent it: no response callback."""
    client.set_response_callback(command, _unparsed)


def _unparsed(response: Any, **kwargs: Any) -> Any:
    return response


def assumptions() -> list[str]:
    """What of the above the installed redis-py lacks: empty when all holds."""
    missing: list[str] = []
    for cls, names in (
        (aioredis.ConnectionPool, ("__init__",)),
        (AbstractConnection, ("connect", "disconnect", "send_packed_command", "read_response",
                               "pack_commands")),
        (ClusterNode, _NODE_LENDS),
        (aioredis.Redis, ("set_response_callback",)),
    ):
        missing += [f"{cls.__name__}.{name}" for name in names if not callable(getattr(cls, name, None))]
    for maker in (aioredis.ConnectionPool(), ClusterNode("127.0.0.1", 6379)):  # neither connects yet
        kwargs = getattr(maker, "connection_kwargs", None)
        if not hasattr(maker, "connection_class") or not isinstance(kwargs, dict):
            missing.append(f"{type(maker).__name__}.connection_class, .connection_kwargs")
    for name, parameters in (
        ("send_packed_command", {"command", "check_health"}),
        ("disconnect", {"nowait"}),
    ):
        method = getattr(AbstractConnection, name, None)
        if method is not None and not parameters <= set(inspect.signature(method).parameters):
            missing.append(f"AbstractConnection.{name}({', '.join(sorted(parameters))})")
    if "connection_class" not in inspect.signature(ClusterNode.__init__).parameters:
        missing.append("ClusterNode(connection_class=...)")
    return missing  # a connection's ``_writer`` exists once connected: the tests check it on one

