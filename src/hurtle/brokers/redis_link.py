"""The Redis broker's plumbing: its URL, key names, one client per process, reconnects.

The client is redis-py's asyncio ``Redis``, or its ``RedisCluster`` for a
``redis+cluster://`` URL (``redis_cluster.py``); both answer the same commands.

One client and pool per broker object, made on first use in the process that
uses it (seed 001: a pool built per request opened a connection per request and
timed out under load). After ``fork`` the parent's client is dropped unclosed and
a new one is made, as redis-py's own pool does in ``_checkpid``.

A lost connection is retried with backoff (``reconnect_timeout`` seconds at
most, then ``BrokerError``), and the log says so once when it is lost and once
when it is back. ``fetch`` does not wait: it raises at once and the worker's
own outage handling backs off, and exits past ``--max-disconnect``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import inspect
import logging
import os
import re
import secrets
import socket
import sys
import time
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar, Union
from urllib.parse import urlencode, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline as SinglePipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS, Connection, ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ConnectionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
)

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py runs without it, packing in Python
    _hiredis_pack = None  # type: ignore[assignment]

from hurtle.brokers.reconnect_backoff import ReconnectBackoff
from hurtle.brokers.url_options import query_options, rebuild, refuse_unknown
from hurtle.errors import BrokerDataError, BrokerError, ConfigurationError
from hurtle.urls import SecretURL

T = TypeVar("T")
Client = Union[aioredis.Redis, RedisCluster]  # noqa: UP007 - a runtime alias: py3.10 has no `type`
Pipeline = Union[SinglePipeline, ClusterPipeline]  # noqa: UP007

log = logging.getLogger("hurtle.redis")

GROUP = "hurtle"  # the one consumer group of every queue's stream
DEFAULT_PREFIX = "hurtle"
DEFAULT_RECONNECT_TIMEOUT = 30.0  # seconds an operation keeps reconnecting before BrokerError
BLOCK_CAP = 5.0  # seconds one blocking command may wait; below the socket timeout
_SOCKET_TIMEOUT = BLOCK_CAP + 5.0  # a silent server (no RST) is noticed after this
_CONNECT_TIMEOUT = 5.0
_SCRIPTS = (
    "enqueue", "peek", "ack", "extend", "release", "dead_letter", "retry", "housekeep",
    "stats", "purge", "requeue", "store", "purge_dead", "locate_stream", "locate_delayed",
)
OPTIONS = ("prefix", "reconnect_timeout")  # hurtle's own query options; the others go to redis-py
_NOT_TRANSIENT = (AuthenticationError, AuthorizationError)  # a wrong password will not heal
# Worth reconnecting for: a lost connection, or a cluster failing over (no node
# serves a slot for a moment; CLUSTERDOWN) - redis-py refreshes its slot map meanwhile.
_TRANSIENT = (ConnectionError, TimeoutError, ClusterDownError, SlotNotCoveredError)
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class Keys:
    """Key names: every key of one queue carries the hash tag ``{queue}`` so a queue
    lives on one Redis Cluster slot and its Lua scripts touch one slot only."""

    prefix: str

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    def stream(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:stream"

    def delayed(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:delayed"

    def dead(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:dead"

    def result(self, task_id: str) -> str:
        return f"{self.prefix}:result:{task_id}"


@dataclass(frozen=True)
class RedisURL:
    """A hurtle Redis URL: redis-py's URL plus hurtle's own query parameters."""

    client_url: SecretURL  # what redis-py gets: the URL without hurtle's options
    where: str  # for logs and errors: no password
    keys: Keys
    reconnect_timeout: float
    cluster: bool = False  # redis+cluster:// or rediss+cluster://: a RedisCluster client

    @classmethod
    def parse(cls, url: str | SecretURL) -> RedisURL:
        url = SecretURL(url)
        parts = urlsplit(url.reveal())
        cluster = parts.scheme in CLUSTER_SCHEMES
        query = query_options(parts)
        ours = {k: v for k, v in query if k in OPTIONS}
        theirs = urlencode([(k, v) for k, v in query if k not in ours])
        client_url = SecretURL(rebuild(parts, theirs, scheme=parts.scheme.removesuffix("+cluster")))
        prefix = ours.get("prefix", DEFAULT_PREFIX)
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(f"bad Redis URL {str(url)!r}: prefix must be non-empty, without braces")
        try:
            reconnect_timeout = float(ours.get("reconnect_timeout", DEFAULT_RECONNECT_TIMEOUT))
            kwargs = parse_url(client_url.reveal())
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {str(url)!r}: {url.scrub(str(exc))}") from None
        connection_class: type = RedisCluster if cluster else kwargs.get("connection_class", Connection)
        refuse_unknown(
            "Redis Cluster" if cluster else "Redis", (k for k, _ in query),
            {"hurtle": OPTIONS, "redis-py": client_options(connection_class)},
        )
        path = parts.path.strip("/")
        if parts.scheme != "unix" and path and not path.isdigit():
            raise ConfigurationError(f"bad Redis URL {str(url)!r}: the path is a database number, like /0")
        if cluster:
            _check_cluster_url(url, kwargs)
            return cls(client_url, f"{parts.scheme}://{kwargs['host']}:{kwargs.get('port', 6379)}",
                       Keys(prefix), reconnect_timeout, cluster=True)
        if parts.scheme == "unix":
            where = f"unix://{kwargs.get('path', '')}"
        else:
            where = f"{parts.scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        where += f"/{kwargs.get('db', 0)}"
        return cls(client_url, where, Keys(prefix), reconnect_timeout)


def _check_cluster_url(url: SecretURL, kwargs: Mapping[str, object]) -> None:
    """A Cluster has database 0 only, TCP only, and a seed node to ask for the others."""
    if kwargs.get("db", 0) != 0:
        raise ConfigurationError(f"bad Redis URL {str(url)!r}: a Redis Cluster has database 0 only")
    if not kwargs.get("host"):
        raise ConfigurationError(f"bad Redis URL {str(url)!r}: name a node, like redis+cluster://host:6379")


@functools.cache
def client_options(client_class: type) -> frozenset[str]:
    """The query options redis-py takes from a URL whose connections are ``client_class``
    (or that makes a ``RedisCluster``): the keywords of its constructors that redis-py's
    URL parser can fill. It converts the options it knows (``URL_QUERY_ARGUMENT_PARSERS``)
    and hands on any other as text, so a keyword that takes no text is no URL option:
    an unknown one was a ``TypeError`` at the first connection, deep in redis-py."""
    constructors = [c.__dict__["__init__"] for c in client_class.__mro__ if "__init__" in c.__dict__]
    if client_class is not RedisCluster:  # whose own keywords take a cluster URL's options
        constructors.append(ConnectionPool.__init__)  # max_connections
    names = set()
    for constructor in constructors:
        for name, parameter in _signature(constructor).parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or name == "self":
                continue
            if name in URL_QUERY_ARGUMENT_PARSERS or _takes_text(parameter.annotation):
                names.add(name)
    return frozenset(names)


def _signature(function: Callable[..., Any]) -> inspect.Signature:
    try:  # a module with postponed annotations has them as source text
        return inspect.signature(function, eval_str=True)
    except Exception:  # a name the module imports only for type checkers
        return inspect.signature(function)


def _takes_text(annotation: Any) -> bool:
    """``str``, or a union with ``str`` in it (not ``tuple[str, int]``: no text fits that)."""
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return any(_takes_text(arg) for arg in typing.get_args(annotation))
    return False


@functools.cache
def script_source(name: str) -> str:
    """``redis_lua/NAME.lua`` with ``lib.lua``, the helpers every script shares, in front."""
    folder = resources.files("hurtle.brokers").joinpath("redis_lua")
    return folder.joinpath("lib.lua").read_text() + folder.joinpath(f"{name}.lua").read_text()


def _raise(exc: Exception) -> None:
    raise exc


OnError = Callable[[Exception], None]


@dataclass
class Conn:
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
        No pool and no retry wrapper: 100 of 250 us per command here (a lost connection
        still raises, and ``Link.call`` retries). While the lane is busy (a second
        caller), on a cluster, or for a reply that needs parsing: through the client."""
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
            pool = self.client.connection_pool
            kwargs = {**pool.connection_kwargs, "socket_timeout": _LANE_SOCKET_TIMEOUT}
            connection = self.lanes[lane] = pool.connection_class(**kwargs)
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


class Link:
    """The broker's connection to Redis: made lazily per process, retried with backoff."""

    def __init__(self, url: RedisURL, lease_ms: int) -> None:
        self.url = url
        self.lease_ms = lease_ms
        self._conn: Conn | None = None
        self._outage = ReconnectBackoff("Redis", url.where, log)

    def conn(self) -> Conn:
        conn = self._conn
        if conn is None or conn.pid != os.getpid():
            # A client inherited through fork is the parent's: drop it, never close it.
            conn = self._conn = self._open()
        return conn

    def _open(self) -> Conn:
        host = socket.gethostname().replace("/", "_")
        consumer = f"{host}/{os.getpid()}/{secrets.token_hex(3)}/{self.lease_ms}"
        make = RedisCluster.from_url if self.url.cluster else aioredis.Redis.from_url
        client: Client = make(
            self.url.client_url.reveal(),
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            # One quick retry on a fresh connection (a pooled one the server closed);
            # the backoff and its log lines are ours. (A cluster client retries once
            # too, after refreshing its map of which node serves which slot.)
            retry=Retry(NoBackoff(), 1),
            client_name=f"hurtle:{host}:{os.getpid()}",
        )
        if not self.url.cluster:
            # The read's reply as it comes: redis-py's dict per entry was a tenth of a
            # busy worker's time. (A cluster client parses node replies itself.)
            client.set_response_callback("XREADGROUP", _unparsed)
        scripts = {name: client.register_script(script_source(name)) for name in _SCRIPTS}
        return Conn(client, scripts, consumer)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.pid == os.getpid():
            await conn.close()

    async def call(self, op: Callable[[Conn], Awaitable[T]], patience: float | None = None) -> T:
        """Run ``op``; on a lost connection, reconnect with backoff for up to ``patience``
        seconds (default: the URL's ``reconnect_timeout``), then raise ``BrokerError``."""
        deadline = time.monotonic() + (self.url.reconnect_timeout if patience is None else patience)
        regrouped = False
        while True:
            conn = self.conn()
            try:
                result = await op(conn)
            except _NOT_TRANSIENT as exc:
                raise BrokerError(f"Redis at {self.url.where} refused us: {exc}") from exc
            except _TRANSIENT as exc:
                pause = self._outage.next_pause()
                retrying = time.monotonic() + pause <= deadline
                self._outage.failed(exc, retrying)
                if not retrying:
                    raise BrokerError(f"Redis at {self.url.where} is unreachable: {exc}") from exc
                await asyncio.sleep(pause)
                continue
            except ResponseError as exc:
                if _is_nogroup(exc) and not regrouped:
                    conn.groups.clear()  # the stream was deleted (or Redis lost its data)
                    regrouped = True
                    continue
                # Redis answered: unless it says it cannot serve now, the key or the
                # record was wrong, and waiting for Redis will not mend it.
                kind = BrokerError if is_unavailable(exc) else BrokerDataError
                raise kind(f"Redis at {self.url.where}: {exc}") from exc
            except (RedisError, RedisClusterException) as exc:
                raise BrokerError(f"Redis at {self.url.where}: {exc}") from exc
            self._outage.recovered()
            return result

    async def ensure_groups(self, conn: Conn, streams: Sequence[str]) -> None:
        """Create the consumer group of each stream once (from its first entry: ``0``)."""
        for stream in streams:
            if stream in conn.groups:
                continue
            try:
                await conn.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise
            conn.groups.add(stream)


def _unparsed(response: Any, **kwargs: Any) -> Any:
    return response


def _pack(connection: Any, commands: Sequence[Sequence[Any]]) -> Any:
    """RESP bytes of ``commands``: hiredis packs in C, 3 us a command where redis-py
    takes 20 (2.4 ms for a ``send_many`` of 1,000, 0.3 ms with hiredis)."""
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
    _LANE_SOCKET_TIMEOUT = None  # the exchange keeps the deadline, with one timer

    def _lane_deadline() -> Any:
        return asyncio.timeout(_SOCKET_TIMEOUT)

else:  # no asyncio.timeout: the connection's socket_timeout keeps the deadline
    _LANE_SOCKET_TIMEOUT = _SOCKET_TIMEOUT

    def _lane_deadline() -> Any:
        return contextlib.nullcontext()


async def _exchange(connection: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send ``commands`` in one write and read their replies within ``_SOCKET_TIMEOUT``.
    One timer: a connection's own socket_timeout starts a task per write
    (``wait_for``) and a timer per read. Cancelled mid-way, or on a lost
    connection, the connection disconnects itself."""
    try:
        async with _lane_deadline():
            await connection.send_packed_command(_pack(connection, commands), check_health=False)
            return [await _reply(connection) for _ in commands]
    except builtins.TimeoutError:
        raise TimeoutError(f"no reply from Redis within {_SOCKET_TIMEOUT:.0f}s") from None


def _is_nogroup(exc: ResponseError) -> bool:
    """The stream or its group is gone; in a pipeline redis-py puts "Command # N (...)
    of pipeline caused error: " in front of the server's words."""
    text = str(exc)
    return text.startswith("NOGROUP") or "caused error: NOGROUP" in text


# Error replies that say the server cannot serve now, whatever the data: out of
# memory, a replica, a failing disk, a long script, a cluster without a majority.
_UNAVAILABLE = re.compile(r"(?:^|: |-)(?:OOM|READONLY|MISCONF|BUSY|MASTERDOWN|TRYAGAIN|NOREPLICAS|LOADING)\b")


def is_unavailable(exc: ResponseError) -> bool:
    """True when an error reply says Redis cannot serve now (an outage), not that a
    key or a record is wrong (a script's error included: "... script: ...")."""
    return isinstance(exc, (OutOfMemoryError, ReadOnlyError)) or bool(_UNAVAILABLE.search(str(exc)))


def is_wrong_type(exc: ResponseError) -> bool:
    """A key holds another type than the command needs (another program wrote it)."""
    return "WRONGTYPE" in str(exc)


_ENTRY_ID = re.compile(r"^\d+-\d+$")


def is_entry_id(text: str) -> bool:
    return bool(_ENTRY_ID.match(text))


def entry_order(entry_id: bytes) -> tuple[int, int]:
    """Stream ids sort as (milliseconds, sequence)."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)
