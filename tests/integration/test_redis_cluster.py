"""hurtle on a Redis Cluster: three ``redis-server --cluster-enabled`` nodes on free
loopback ports, joined by ``redis-cli --cluster create``, killed at the end.

Every key of a queue carries the hash tag ``{queue}``, so a queue lives on one
node; these tests use two queues whose tags are served by different nodes and
check it (``CLUSTER KEYSLOT`` and ``CLUSTER SLOTS``) before relying on it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

import hurtle
from hurtle.brokers import DeadLetter, Message, QueueStats, from_url
from hurtle.brokers.redis import RedisBroker
from hurtle.brokers.redis.cluster import RedisClusterBroker
from hurtle.errors import ConfigurationError
from tests.integration.conftest import Workers, hurtle_cli, wait_until
from tests.redis_server import RedisCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    started = RedisCluster(tmp_path_factory.mktemp("cluster"))
    started.start()
    yield started
    started.stop()


@pytest.fixture
def cluster_url(cluster: RedisCluster, worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The cluster with a key prefix of this test's own, for this process (the producer)
    and the workers started after."""
    url = f"{cluster.url}?prefix=hurtle-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("HURTLE_BROKER", url)
    worker_env["HURTLE_BROKER"] = url
    return url


def queues_on_two_nodes(cluster: RedisCluster, prefix: str) -> tuple[str, str]:
    """Two queue names whose keys are all served by one node each, not the same one."""

    def node(queue: str) -> int:
        ports = {cluster.node_of(f"{prefix}:{{{queue}}}:{kind}") for kind in ("stream", "delayed", "dead")}
        assert len(ports) == 1, f"the keys of queue {queue!r} are on several nodes: {ports}"
        return ports.pop()

    first = "mail"
    for candidate in (f"reports-{i}" for i in range(50)):
        if node(candidate) != node(first):
            return first, candidate
    raise AssertionError("no queue name among 50 hashes to another node than 'mail'")



def prefix_of(url: str) -> str:
    return url.rpartition("prefix=")[2]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _stats(url: str, queues: list[str]) -> list[QueueStats]:
    broker = from_url(url)
    try:
        return await broker.stats(queues)
    finally:
        await broker.close()


async def _dead_letters(url: str) -> list[DeadLetter]:
    broker = from_url(url)
    try:
        return await broker.dead_letters()
    finally:
        await broker.close()


# -- a real worker on the cluster -----------------------------------------------------


def test_a_worker_on_a_redis_cluster_runs_tasks_of_two_queues_on_different_nodes(
    cluster: RedisCluster, cluster_url: str, load_workerapp: Callable[..., Any], workers: Workers
) -> None:
    # Given two queues served by different nodes, with tasks sent to each: plain ones,
    # a delayed one, and one that fails every time (retried twice after a delay)
    qa, qb = queues_on_two_nodes(cluster, prefix_of(cluster_url))
    workerapp = load_workerapp()
    sums_a = workerapp.add.options(queue=qa).send_many([(i, i) for i in range(100)])
    sums_b = workerapp.add.options(queue=qb).send_many([(i, 1) for i in range(100)])
    sent_at = time.time()
    delayed = workerapp.pid.options(queue=qb, delay=1.0).send()
    failing = workerapp.always_fails.options(queue=qa).send("disk on fire")
    # When one worker serves both queues
    workers.start("-q", f"{qa},{qb}", "-p", "2")
    # Then every task ran and its result is readable
    assert [h.result(timeout=30) for h in sums_a] == [2 * i for i in range(100)]
    assert [h.result(timeout=30) for h in sums_b] == [i + 1 for i in range(100)]
    assert delayed.result(timeout=30) > 0
    assert time.time() >= sent_at + 1.0
    # And the failing task was retried after its delay, then dead-lettered on its queue's node
    with pytest.raises(hurtle.TaskFailed, match="disk on fire"):
        failing.result(timeout=30)
    assert "retry 1/2" in workers.log() and "retry 2/2" in workers.log()
    (letter,) = run(_dead_letters(cluster_url))
    assert letter.queue == qa and "ValueError: disk on fire" in letter.reason
    dead_key = f"{prefix_of(cluster_url)}:{{{qa}}}:dead"
    node = redis.Redis(host="127.0.0.1", port=cluster.node_of(dead_key))
    try:
        assert node.xlen(dead_key) == 1
    finally:
        node.close()
    wait_until(lambda: all(s.pending == 0 for s in run(_stats(cluster_url, [qa, qb]))), "empty queues", 30)
    # And the dlq commands see it across the nodes, and purge it
    listing = hurtle_cli("dlq", "list", "--broker", cluster_url)
    assert listing.returncode == 0 and "ValueError: disk on fire" in listing.stdout, listing.stderr
    purged = hurtle_cli("dlq", "purge", "--yes", "--broker", cluster_url)
    assert purged.returncode == 0 and "deleted 1" in purged.stdout, purged.stderr


# -- the broker across nodes ------------------------------------------------------------


def blocked_clients(cluster: RedisCluster, port: int) -> int:
    node = redis.Redis(host="127.0.0.1", port=port)
    try:
        return int(node.info("clients")["blocked_clients"])
    finally:
        node.close()


async def test_a_fetch_blocked_on_two_nodes_wakes_for_either_and_leaves_nothing_blocked(
    cluster: RedisCluster,
) -> None:
    url = f"{cluster.url}?prefix=hurtle-test-{uuid.uuid4().hex}"
    qa, qb = queues_on_two_nodes(cluster, prefix_of(url))
    worker, producer = from_url(url), from_url(url)
    try:
        await producer.enqueue([Message("0", qa, b"first")])
        assert [d.body for d in await worker.fetch([qa, qb], 10, 0)] == [b"first"]
        # Given a fetch over both queues, blocked on both nodes (BLOCK is 5 s at most)
        started = time.monotonic()
        waiting = asyncio.create_task(worker.fetch([qa, qb], 10, 10.0))
        port_a = cluster.node_of(f"{prefix_of(url)}:{{{qa}}}:stream")
        port_b = cluster.node_of(f"{prefix_of(url)}:{{{qb}}}:stream")
        for port in (port_a, port_b):
            while blocked_clients(cluster, port) == 0:  # bounded by the test's timeout
                assert time.monotonic() - started < 5.0, f"the fetch never blocked on node {port}"
                await asyncio.sleep(0.01)
        # When a message comes to the second queue, on the second node
        await producer.enqueue([Message("1", qb, b"news")])
        # Then the fetch returns it at once, and its read on the first node was woken
        got = await asyncio.wait_for(waiting, 2.0)
        assert [(d.queue, d.body) for d in got] == [(qb, b"news")]
        assert time.monotonic() - started < 4.0
        assert blocked_clients(cluster, port_a) == 0
        # And one batch over both queues (two nodes) is stored whole and fetched oldest first
        await producer.enqueue([Message("2", qa, b"a"), Message("3", qb, b"b")])
        assert sorted(d.body for d in await worker.fetch([qa, qb], 10, 0)) == [b"a", b"b"]
    finally:
        await worker.close()
        await producer.close()


# -- URLs and names ---------------------------------------------------------------------


def test_a_cluster_url_makes_a_cluster_broker_without_connecting() -> None:
    broker = from_url("rediss+cluster://user:secret@node1.example.com:7000?prefix=app1")
    assert isinstance(broker, RedisClusterBroker)
    assert broker._link.url.where == "rediss+cluster://node1.example.com:7000"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://localhost:7000/1", "database 0 only"),
        ("redis+cluster://localhost:7000?db=2", "database 0 only"),
        ("redis+cluster://:7000", "name a node"),
        ("redis+cluster://localhost:7000?timeout=1", "unknown option 'timeout' in the Redis Cluster URL"),
        ("redis+cluster://localhost:7000?prefix={x}", "without braces"),
    ],
)
def test_a_bad_cluster_url_is_a_configuration_error(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        from_url(url)


def test_a_single_server_broker_refuses_a_cluster_url() -> None:
    with pytest.raises(ConfigurationError, match="RedisBroker serves redis, rediss, unix"):
        RedisBroker("redis+cluster://localhost:7000")


async def test_a_queue_name_that_would_empty_the_hash_tag_is_refused() -> None:
    broker = from_url("redis+cluster://127.0.0.1:1")  # never reached: refused first
    with pytest.raises(ConfigurationError, match="cannot begin with '}'"):
        await broker.enqueue([Message("1", "}odd", b"x")])
    with pytest.raises(ConfigurationError, match="cannot begin with '}'"):
        await broker.fetch(["}odd"], 1, 0)
    await broker.close()
