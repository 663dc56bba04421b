"""Waiting for results on Redis: one subscribed connection serves every waiter.

``store.lua`` PUBLISHes each result on the channel named like its key,
``P:result:<task id>``: the record itself when it is at most
``PUBLISH_MAX_BYTES``, else an empty message that says "read the key" (Redis
disconnects a subscriber whose output buffer passes 32 MB: a thousand large
results at once must not get there).

The waiters of one store on one loop share one connection of their own,
subscribed to the channel of every awaited id, however many there are (a
``BLMOVE`` per waiter held a pooled connection each: a thousand gathered
waiters ran redis-py's pool of 100 dry). A message resolves its waiters with no
further round trip. An id is looked up (``LINDEX``, batched) once its
``SUBSCRIBE`` is confirmed, for a result stored before the subscription took
effect; and every ``CHECK_EVERY`` seconds every awaited id is, for a result
whose message was lost or never sent (a worker of a version that did not
publish). The same round pings the connection, so a silent server is noticed.
A lost connection is made again with the broker's backoff (logged once), every
channel subscribed again, and so every id looked up again.

Replies arrive as protocol callbacks (hiredis parses them), not through a task
that reads: when no one waits, nothing is left pending on the loop (see
``hurtle.results``). The connection is made by redis-py, which knows every URL
option (TLS, unix sockets, credentials); its transport is then handed to the
``Subscriber`` protocol. Without hiredis, waiters poll with batched lookups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from hurtle.brokers.redis import compat
from hurtle.brokers.redis.compat import new_connection, node_connection, transport_of
from hurtle.brokers.redis.lanes import BLOCK_CAP, RedisConn
from hurtle.brokers.redis.link import RedisLink
from hurtle.brokers.redis.url import Keys
from hurtle.errors import BrokerError
from hurtle.results import Waiters

try:
    import hiredis
except ImportError:  # redis-py runs without it; then the waiters poll
    hiredis = None  # type: ignore[assignment]

PUBLISH_MAX_BYTES = 4096  # a larger record is announced empty, and read with LINDEX
CHECK_EVERY = 1.0  # seconds between lookups of every awaited id (and pings)
_PONG_WITHIN = BLOCK_CAP + 5.0  # seconds: a ping unanswered this long means a dead connection
_IDS_PER_PIPELINE = 1000


def can_subscribe() -> bool:
    """The subscriber parses replies with hiredis, on a connection taken from a
    redis-py hurtle knows; without either the waiters poll."""
    return hiredis is not None and compat.IN_RANGE


class Subscriber(asyncio.Protocol):
    """The subscribed connection: sends (un)subscriptions at once, hands each reply
    to ``on_reply`` as it comes."""

    def __init__(self, connection: Any, waiters: RedisWaiters) -> None:
        self.connection = connection  # redis-py's, kept to close it (and its packer)
        self.waiters = waiters
        self.lost: Exception | None = None  # why the connection ended; None while it lives
        self._parser = hiredis.Reader()
        # redis-py made the connection (TLS, AUTH, CLIENT SETNAME); from here on its
        # transport delivers to this protocol, and redis-py's reader is never used.
        self._transport = transport_of(connection)
        self._transport.set_protocol(self)

    def send(self, commands: Sequence[Sequence[Any]]) -> None:
        if self.lost is None:
            self._transport.write(b"".join([hiredis.pack_command(tuple(c)) for c in commands]))

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        while True:
            try:
                reply = self._parser.gets()
            except hiredis.ProtocolError as exc:
                self._fail(ConnectionError(f"unreadable reply from Redis: {exc}"))
                return
            if reply is False:
                return
            if isinstance(reply, hiredis.ReplyError):
                self._fail(ResponseError(str(reply)))  # say, no permission to SUBSCRIBE
                return
            self.waiters.on_reply(reply)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:  # a redis-py error, which RedisLink.call knows to retry
            self.lost = ConnectionError(f"the subscribed connection was lost ({exc or 'closed by Redis'})")
        self.waiters.nudge()

    def _fail(self, exc: Exception) -> None:
        self.lost = exc
        self._transport.close()

    async def close(self) -> None:
        if self.lost is None:
            self.lost = ConnectionError("closed")
        self._transport.close()
        await self.connection.disconnect(nowait=True)


class RedisWaiters(Waiters):
    """Keeps one ``Subscriber`` subscribed to the awaited ids; the waiter on duty
    (``serve``) connects, looks up what is due and pings."""

    def __init__(self, link: RedisLink, keys: Keys) -> None:
        super().__init__()
        self.link = link
        self.keys = keys
        self._channel_prefix = len(keys.result("").encode())
        self._subscriber: Subscriber | None = None
        self._subscribed: set[str] = set()  # ids whose SUBSCRIBE went out on this connection
        self._joining: set[str] = set()  # awaited ids not subscribed yet
        self._leaving: set[str] = set()  # subscribed ids no one awaits any more
        self._to_check: set[str] = set()  # ids to look up at the next round
        self._ping_sent: float | None = None  # loop time the unanswered PING went out
        self._check_at = 0.0  # loop time of the next lookup of every awaited id

    def added(self, task_id: str) -> None:
        if task_id in self._leaving:
            self._leaving.discard(task_id)  # still subscribed; a message may have come meanwhile
            self._look_up(task_id)
        elif task_id not in self._subscribed:
            self._joining.add(task_id)
            self.nudge()

    def removed(self, task_id: str) -> None:
        # Unsubscribed at the next round, in the same write as that round's new
        # subscriptions: one write per result, not two, for results awaited one
        # after the other. (A message for a channel no one awaits is dropped.)
        self._joining.discard(task_id)
        if task_id in self._subscribed:
            self._leaving.add(task_id)

    def on_reply(self, reply: Any) -> None:
        """A message, a confirmation or a pong (RESP2 arrays of bytes)."""
        kind = reply[0] if isinstance(reply, list) else reply
        if kind == b"message":
            task_id, record = reply[1][self._channel_prefix :].decode(), reply[2]
            if record:
                self.resolve(task_id, record)
            else:
                self._look_up(task_id)  # too large to publish: read the key
        elif kind == b"subscribe":  # from now on a message would come: look once for an earlier one
            self._look_up(reply[1][self._channel_prefix :].decode())
        elif kind in (b"pong", b"PONG"):
            self._ping_sent = None

    def _look_up(self, task_id: str) -> None:
        if task_id in self.waiting:
            self._to_check.add(task_id)
            self.nudge()

    async def serve(self, patience: float | None) -> float | None:
        try:
            await self.link.call(self._round, patience)
        except BrokerError as exc:  # past the URL's reconnect_timeout: keep trying while anyone waits
            self.trouble = exc
            await self._drop()
            return CHECK_EVERY
        self.trouble = None
        return max(0.0, self._check_at - self.loop.time())

    async def _round(self, conn: RedisConn) -> None:
        """(Re)connect when needed, look up what is due, ping when due."""
        subscriber = await self._connected(conn)
        now = self.loop.time()
        if now >= self._check_at:
            self._check_at = now + CHECK_EVERY
            self._to_check.update(self.waiting)
            if self._ping_sent is None:
                self._ping_sent = now
                subscriber.send([("PING",)])
            elif now - self._ping_sent > _PONG_WITHIN:
                await self._drop()
                raise TimeoutError(f"no answer to PING within {_PONG_WITHIN:.0f}s")
        self._send_subscriptions()
        due, self._to_check = self._to_check, set()
        ids = [i for i in due if i in self.waiting]
        if not ids:
            return
        try:
            found = await lindex_many(conn, self.keys, ids)
        except BaseException:
            self._to_check |= due  # looked up again when the call is retried
            raise
        for task_id, record in found.items():
            self.resolve(task_id, record)

    async def _connected(self, conn: RedisConn) -> Subscriber:
        """The subscriber, made (again) when needed. One whose connection ended raises
        why, here, where ``RedisLink.call`` logs it, backs off and tries again."""
        subscriber = self._subscriber
        if subscriber is not None and subscriber.lost is not None:
            await self._drop()
            raise subscriber.lost
        if subscriber is None:
            subscriber = self._subscriber = Subscriber(await _new_connection(conn), self)
            self._subscribed, self._leaving, self._ping_sent = set(), set(), None
            self._joining = set(self.waiting)
        return subscriber

    def _send_subscriptions(self) -> None:
        """One write with the subscriptions to drop and to add."""
        subscriber = self._subscriber
        if subscriber is None or subscriber.lost is not None:
            return  # the next round connects again and subscribes to every awaited id
        commands = []
        if self._leaving:
            commands.append(("UNSUBSCRIBE", *(self.keys.result(i) for i in self._leaving)))
            self._subscribed -= self._leaving
            self._leaving = set()
        if self._joining:
            commands.append(("SUBSCRIBE", *(self.keys.result(i) for i in self._joining)))
            self._subscribed |= self._joining
            self._joining = set()
        if commands:
            subscriber.send(commands)

    async def _drop(self) -> None:
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            await subscriber.close()

    async def closed(self) -> None:
        await self._drop()


async def _new_connection(conn: RedisConn) -> Any:
    """A connected redis-py connection of the waiters' own (no pool): on one server
    like the pool's, on a cluster to any node (a message PUBLISHed on one node
    reaches every node). RESP2, whatever the URL asks: its pub/sub replies are
    plain arrays."""
    client = conn.client
    if isinstance(client, RedisCluster):
        await client.initialize()
        connection = node_connection(client.get_random_node(), protocol=2)
    else:
        connection = new_connection(client, protocol=2)
    await connection.connect()
    return connection


async def lindex(conn: RedisConn, key: str) -> bytes | None:
    # The client is made with decode_responses=False: replies are bytes, never str.
    return cast("bytes | None", await conn.client.lindex(key, 0))


async def lindex_many(conn: RedisConn, keys: Keys, task_ids: list[str]) -> dict[str, bytes]:
    """``LINDEX key 0`` of every id, pipelined (a cluster's pipeline sends each node its share)."""
    if len(task_ids) == 1:  # one result awaited at a time, over and over: on a lane
        record = await conn.on_lane("results", "LINDEX", keys.result(task_ids[0]), 0)
        return {} if record is None else {task_ids[0]: record}
    found: dict[str, bytes] = {}
    for start in range(0, len(task_ids), _IDS_PER_PIPELINE):
        chunk = task_ids[start : start + _IDS_PER_PIPELINE]
        pipe = conn.client.pipeline(transaction=False)
        for task_id in chunk:
            pipe.lindex(keys.result(task_id), 0)
        for task_id, record in zip(chunk, await pipe.execute(), strict=True):
            if record is not None:
                found[task_id] = record
    return found
