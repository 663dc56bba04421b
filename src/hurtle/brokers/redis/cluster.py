"""The Redis broker on a Redis Cluster: ``redis+cluster://host:6379`` (TLS: ``rediss+cluster://``).

The key schema, scripts, leases and guarantees are ``broker.py``'s; what differs
is whatever spans more than one slot. A key's slot is CRC16 of its hash tag
modulo 16384, and every key of queue ``q`` carries the tag ``{q}``: a queue's
stream, delayed set and dead stream share one slot, so each Lua script (its KEYS
are one queue's, or one result key) runs whole, atomically, on the node serving
that slot. Across queues:

- reading: one ``XREADGROUP`` per slot (queues whose tags hash to one slot share
  it). A fetch over queues on several slots blocks on each at once, each read on
  a connection of its own; as soon as one brings entries, the others are woken
  with ``CLIENT UNBLOCK``. Their connection's ``CLIENT ID`` is asked in the same
  write as the read, and Redis answers one write's commands in one go, so by the
  time the id comes back the read is blocked and can be woken. A woken read that
  brought entries after all is handled like any surplus: the oldest are kept,
  the rest given back uncounted (``RedisBroker._read``).
- sending to several queues: one script call per queue, pipelined (redis-py
  sends each node its calls, the nodes in parallel). Each queue's share is
  atomic; the batch as a whole is not: a failure can leave some queues' shares
  stored, and a producer that sends the batch again sends those twice (at least
  once, as everywhere).
- ``P:queues`` has no tag: a slot of its own; it is added to in the send's pipeline.
- results: each result key hashes to a slot of its own; a batch is one
  ``store.lua`` call per key, pipelined, as on one server. Its PUBLISH reaches
  every node of the cluster, so the waiters subscribe on any one node.
- purging dead letters: one ``purge_dead.lua`` call per queue, pipelined.

Order across queues: message ids come from each node's clock (lib.lua ``add``),
so "oldest first across queues" is as exact as the nodes' clocks agree.

Failover and resharding: redis-py refreshes its slot map on ``MOVED``;
``CLUSTERDOWN`` and an uncovered slot are retried like a lost connection
(``link.py``). A read whose slot has moved is made again through redis-py,
which follows ``MOVED``/``ASK``; that one read cannot be woken early, so while a
queue's slot migrates a fetch may wait up to ``BLOCK_CAP`` for it.

Queue names: the tag is the text between the first ``{`` and the next ``}``; a
name that begins with ``}`` would make an empty tag (the whole key hashed, the
queue's keys on three slots), so it is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import AskError, ConnectionError, SlotNotCoveredError, TimeoutError

from hurtle.brokers.base import Delivery, Message
from hurtle.brokers.redis import compat
from hurtle.brokers.redis.broker import RedisBroker
from hurtle.brokers.redis.dead import RedisDeadLetters, known_queues
from hurtle.brokers.redis.entries import parse_read
from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.url import CLUSTER_SCHEMES, GROUP
from hurtle.errors import ConfigurationError
from hurtle.urls import SecretURL


class RedisClusterBroker(RedisBroker):
    schemes = CLUSTER_SCHEMES

    def __init__(
        self, url: str | SecretURL = "redis+cluster://127.0.0.1:6379", *, visibility_timeout: float = 30.0
    ) -> None:
        if not compat.CLUSTER_READS:  # the read below takes and gives back connections
            raise ConfigurationError(f"{str(SecretURL(url))!r}: a Redis Cluster needs redis-py 6.2 or later")
        super().__init__(url, visibility_timeout=visibility_timeout)
        self._dead = ClusterDeadLetters(self.keys, self._link)

    async def enqueue(self, messages: Sequence[Message]) -> None:
        batch = list(messages)
        _check_queues(m.queue for m in batch)
        await super().enqueue(batch)

    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout: float, *, quotas: Sequence[int] | None = None
    ) -> list[Delivery]:
        _check_queues(queues)
        return await super().fetch(queues, max_count, timeout, quotas=quotas)

    async def _enqueue_many_queues(
        self, conn: RedisConn, queues: list[str], batch: list[Message], now: float
    ) -> None:
        """One script call per queue, pipelined: atomic per queue (see the module docstring)."""
        pipe = conn.client.pipeline(transaction=False)
        pipe.sadd(self.keys.queues, *queues)
        calls = [self._enqueue_call(q, [m for m in batch if m.queue == q], now) for q in queues]
        await conn.scripts_in(pipe, "enqueue", calls, before_failed=self._unrecorded)

    def _route(self, conn: RedisConn, key: str) -> dict[str, Any]:
        # Name the node: for XREADGROUP (its keys are "movable") redis-py would
        # otherwise ask a server which arguments are keys, a round trip per command.
        return {"target_nodes": _node(_cluster(conn), key)}

    async def _read_new(self, conn: RedisConn, queues: list[str], room: int, block_ms: int) -> list[Delivery]:
        """One ``XREADGROUP`` per slot, all at once; the first to bring entries wakes the rest."""
        head: list[Any] = ["XREADGROUP", "GROUP", GROUP, conn.consumer, "COUNT", room]
        if block_ms > 0:
            head += ["BLOCK", block_ms]
        sent = time.monotonic()
        replies = await self._per_slot(conn, head, [(self.keys.stream(q), b">") for q in queues])
        return [t for reply in replies for t in parse_read(self.keys, conn.consumer, queues, reply, sent)]

    async def _await_new(
        self, conn: RedisConn, queues: list[str], starts: list[bytes], block_ms: int
    ) -> None:
        """One ``XREAD`` per slot, all at once; the first to see an entry wakes the rest."""
        if block_ms > 0:
            head: list[Any] = ["XREAD", "COUNT", 1, "BLOCK", block_ms]
            streams = [(self.keys.stream(q), s) for q, s in zip(queues, starts, strict=True)]
            await self._per_slot(conn, head, streams)

    async def _per_slot(
        self, conn: RedisConn, head: list[Any], streams: list[tuple[str, bytes]]
    ) -> list[Any]:
        """``head STREAMS ...`` once per slot over its streams (with their ids), all at
        once; the first to bring entries wakes the rest. Every reply."""
        client = _cluster(conn)
        await client.initialize()  # a no-op unless an error asked for a fresh slot map
        by_slot: dict[int, list[tuple[str, bytes]]] = {}
        for stream, start in streams:
            by_slot.setdefault(client.keyslot(stream), []).append((stream, start))
        plans = []  # every node is looked up before any read starts: a failure leaves none behind
        for pairs in by_slot.values():
            command = [*head, "STREAMS", *[k for k, _ in pairs], *[i for _, i in pairs]]
            plans.append((_node(client, pairs[0][0]), command))
        return await _first_with_entries([_Read(client, node, command) for node, command in plans])



class ClusterDeadLetters(RedisDeadLetters):
    """Dead letters on a Redis Cluster: each queue's purge a script call of its own,
    since the queues' keys lie on different slots."""

    async def purge_dead(self, queue: str | None = None) -> int:
        async def purge(conn: RedisConn) -> int:
            names = [queue] if queue is not None else await known_queues(conn, self.keys)
            calls: list[tuple[list[str], list[Any]]] = [([self.keys.dead(name)], []) for name in names]
            counts = await conn.scripts_in(conn.client.pipeline(transaction=False), "purge_dead", calls)
            return sum(int(n) for n in counts)

        return await self._link.call(purge)

def _cluster(conn: RedisConn) -> RedisCluster:
    return cast(RedisCluster, conn.client)


def _node(client: RedisCluster, key: str) -> ClusterNode:
    """The primary serving ``key``'s slot (by the client's slot map)."""
    node = client.get_node_from_key(key)
    if node is None:  # only for replica=True; the type says Optional
        raise SlotNotCoveredError(f"no node serves {key!r}")
    return node


def _check_queues(queues: Iterable[str]) -> None:
    for queue in queues:
        if queue.startswith("}"):
            raise ConfigurationError(
                f"queue {queue!r}: on a Redis Cluster a queue name cannot begin with '}}' "
                "(its keys' hash tag {queue} would be empty)"
            )


class _Read:
    """One ``XREADGROUP`` on the node serving its streams' slot, on a connection of its
    own, started at once; ``wake`` ends its wait early."""

    def __init__(self, client: RedisCluster, node: ClusterNode, command: list[Any]) -> None:
        self.client = client
        self.node = node
        self.command = command
        self.client_id: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> Any:
        connection = compat.borrow(self.node)
        try:
            await connection.send_packed_command(connection.pack_commands([["CLIENT", "ID"], self.command]))
            self.client_id.set_result(await compat.reply(self.node, connection, "CLIENT ID"))
            return await compat.reply(self.node, connection, "XREADGROUP")
        except AskError:  # or MovedError, its subclass: the reply was read whole
            pass
        except (ConnectionError, TimeoutError):
            await connection.disconnect()
        except BaseException:
            # Cancelled or failed mid-reply: a reply may still be owed; never pass the connection on.
            await connection.disconnect()
            raise
        finally:
            compat.give_back(self.node, connection)
        # The node failed, or the slot is elsewhere now (failover, resharding): read
        # through redis-py, which refreshes its slot map and follows MOVED and ASK, or
        # raises (the broker's reconnect policy takes over). This read cannot be woken early.
        return await self.client.execute_command(*self.command)

    async def wake(self) -> None:
        """``CLIENT UNBLOCK``: the read returns at once with what it has (mostly nothing).
        Should the read end meanwhile and its connection block again for another
        caller, that caller wakes early too: every blocking call of the broker
        treats an early empty answer as "look again"."""
        await asyncio.wait([self.client_id, self.task], return_when=asyncio.FIRST_COMPLETED)
        if not self.task.done() and self.client_id.done():
            client_id = self.client_id.result()
            await self.client.execute_command("CLIENT UNBLOCK", client_id, target_nodes=self.node)


async def _first_with_entries(reads: list[_Read]) -> list[Any]:
    """Wait until one read brings entries (or every read ends), wake the others, and
    return every reply."""
    pending = {read.task for read in reads}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(task.result() for task in done):  # an error is raised here
                break
        await asyncio.gather(*(read.wake() for read in reads if read.task in pending))
        return [await read.task for read in reads]
    finally:
        for read in reads:
            read.task.cancel()
        await asyncio.gather(*(read.task for read in reads), return_exceptions=True)
