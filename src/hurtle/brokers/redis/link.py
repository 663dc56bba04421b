"""The Redis broker's link: one client per process, made on first use, and reconnects.

The client is redis-py's asyncio ``Redis``, or its ``RedisCluster`` for a
``redis+cluster://`` URL (``cluster.py``); both answer the same commands.

One client and pool per broker object, made on first use in the process that
uses it (a pool built per request opens a connection per request, and times out
under load). After ``fork`` the parent's client is dropped unclosed and
a new one is made, as redis-py's own pool does in ``_checkpid``.

A lost connection is retried with backoff (``reconnect_timeout`` seconds at
most, then ``BrokerError``), and the log says so once when it is lost and once
when it is back. ``fetch`` does not wait: it raises at once and the worker's
own outage handling backs off, and exits past ``--max-disconnect``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hurtle.brokers.reconnect_backoff import ReconnectBackoff
from hurtle.brokers.redis.compat import leave_unparsed
from hurtle.brokers.redis.lanes import SOCKET_TIMEOUT, Client, RedisConn, script_source
from hurtle.brokers.redis.url import GROUP, RedisURL
from hurtle.errors import BrokerDataError, BrokerError

T = TypeVar("T")

log = logging.getLogger("hurtle.redis")

_CONNECT_TIMEOUT = 5.0
_SCRIPTS = (
    "enqueue", "peek", "ack", "extend", "release", "dead_letter", "retry", "housekeep",
    "stats", "purge", "requeue", "store", "purge_dead", "locate_stream", "locate_delayed", "tally_add",
    "record_put_if", "record_gather", "added", "rate_take", "permit_take", "permit_renew", "permit_count",
)
_NOT_TRANSIENT = (AuthenticationError, AuthorizationError)  # a wrong password will not heal
# Worth reconnecting for: a lost connection, or a cluster failing over (no node
# serves a slot for a moment; CLUSTERDOWN) - redis-py refreshes its slot map meanwhile.
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, ClusterDownError, SlotNotCoveredError)


class RedisLink:
    """The broker's connection to Redis: made lazily per process, retried with backoff."""

    def __init__(self, url: RedisURL, lease_ms: int) -> None:
        self.url = url
        self.lease_ms = lease_ms
        self._conn: RedisConn | None = None
        self._outage = ReconnectBackoff("Redis", url.where, log)

    def conn(self) -> RedisConn:
        conn = self._conn
        if conn is None or conn.pid != os.getpid():
            # A client inherited through fork is the parent's: drop it, never close it.
            conn = self._conn = self._open()
        return conn

    def _open(self) -> RedisConn:
        host = socket.gethostname().replace("/", "_")
        consumer = f"{host}/{os.getpid()}/{secrets.token_hex(3)}/{self.lease_ms}"
        make = RedisCluster.from_url if self.url.cluster else aioredis.Redis.from_url
        client: Client = make(
            self.url.client_url.reveal(),
            socket_timeout=SOCKET_TIMEOUT,
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
            leave_unparsed(client, "XREADGROUP")
        scripts = {name: client.register_script(script_source(name)) for name in _SCRIPTS}
        return RedisConn(client, scripts, consumer)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.pid == os.getpid():
            await conn.close()

    async def call(self, op: Callable[[RedisConn], Awaitable[T]], patience: float | None = None) -> T:
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

    async def ensure_groups(self, conn: RedisConn, streams: Sequence[str]) -> None:
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
