"""What the Redis broker promises beyond the contract suite: URLs, leases, key schema."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from hurtle.brokers import Broker, Delivery, Message, from_url
from hurtle.brokers.redis import RedisBroker
from hurtle.brokers.redis.url import GROUP, RedisURL
from hurtle.errors import BrokerError, ConfigurationError
from tests.integration.conftest import APPS
from tests.redis_server import RedisServer, free_port, unique_redis_url


@pytest.fixture
async def opened() -> AsyncIterator[Callable[..., Any]]:
    """``await opened(visibility_timeout=...)``: brokers on one fresh key prefix, closed after."""
    url = unique_redis_url()
    brokers: list[Broker] = []

    async def open_one(visibility_timeout: float = 30.0) -> Broker:
        broker = from_url(url, visibility_timeout=visibility_timeout)
        brokers.append(broker)
        await broker.connect()
        return broker

    yield open_one
    for broker in brokers:
        await broker.close()


def one(queue: str, body: bytes) -> list[Message]:
    return [Message(body.decode(), queue, body)]


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "rediss://user:secret@example.com:6380/2", "unix:///run/redis.sock?db=1",
     "redis://localhost?prefix=app1&reconnect_timeout=5"],
)
def test_from_url_makes_a_redis_broker_without_connecting(url: str) -> None:
    broker = from_url(url)
    assert isinstance(broker, RedisBroker)
    assert "secret" not in broker._link.url.where


def test_a_unix_url_reaches_redis_py_with_its_three_slashes() -> None:
    # Newer redis-py refuses "unix:/run/redis.sock", which urlunsplit makes of an empty host.
    parsed = RedisURL.parse("unix:///run/redis.sock?db=1&prefix=app1")
    assert parsed.client_url == "unix:///run/redis.sock?db=1"
    assert parsed.where == "unix:///run/redis.sock/1"


async def test_a_broker_on_a_unix_socket_sends_and_receives(tmp_path: Path) -> None:
    # A socket's path has at most 107 bytes: a short directory of its own, not tmp_path.
    with tempfile.TemporaryDirectory(prefix="hurtle-") as short:
        socket_path = Path(short) / "redis.sock"
        server = RedisServer(tmp_path / "redis", unix_socket=socket_path)
        server.start()
        try:
            broker = from_url(f"unix://{socket_path}?db=1&prefix=over-a-socket")
            try:
                await broker.enqueue(one("q", b"hello"))
                (delivery,) = await broker.fetch(["q"], 1, timeout=5.0)
                assert delivery.body == b"hello"
                await broker.ack([delivery])
                assert [s.pending for s in await broker.stats(["q"])] == [0]
            finally:
                await broker.close()
        finally:
            server.stop()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://localhost/zero", "database number"),
        ("redis://localhost:99999/0", "Port out of range"),
        ("redis://localhost/0?prefix={app}", "without braces"),
        ("redis://localhost/0?reconnect_timeout=soon", "bad Redis URL"),
    ],
)
def test_a_bad_redis_url_is_a_configuration_error(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        from_url(url)


def test_without_the_redis_package_the_error_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from hurtle.brokers import from_url\n"
        "from hurtle.errors import ConfigurationError\n"
        "try:\n    from_url('redis://localhost/0')\nexcept ConfigurationError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'hurtle[redis]'" in out.stdout


async def test_connecting_to_a_redis_nobody_serves_is_a_broker_error() -> None:
    broker = from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerError, match="unreachable"):
        await broker.connect()
    await broker.close()


def test_a_worker_pointed_at_a_dead_redis_says_so_in_one_line_and_exits_2() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    out = subprocess.run(
        [sys.executable, "-m", "hurtle", "worker", "workerapp", "--broker", url],
        capture_output=True, text=True, timeout=60, check=False,
        cwd=APPS,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "unreachable" in out.stderr


def test_a_worker_given_a_misspelt_url_option_names_it_in_one_line_and_exits_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hurtle", "worker", "workerapp", "--broker", "redis://127.0.0.1:6379/0?prefx=app1"],
        capture_output=True, text=True, timeout=60, check=False,
        cwd=APPS,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "unknown option 'prefx'" in out.stderr


async def test_fetching_from_several_queues_leases_only_max_count_the_oldest(
    opened: Callable[..., Any],
) -> None:
    broker = await opened()
    for queue, body in [("a", b"a1"), ("b", b"b1"), ("a", b"a2"), ("b", b"b2"), ("a", b"a3")]:
        await broker.enqueue(one(queue, body))

    first = await broker.fetch(["a", "b"], 2, 0)
    rest = await broker.fetch(["a", "b"], 10, 0)

    assert [d.body for d in first] == [b"a1", b"b1"]
    assert [(d.body, d.deliveries) for d in rest] == [(b"a2", 1), (b"b2", 1), (b"a3", 1)]


async def test_a_blocked_fetch_woken_by_several_queues_at_once_leases_only_max_count(
    opened: Callable[..., Any],
) -> None:
    worker, producer = await opened(), await opened()
    waiting = asyncio.create_task(worker.fetch(["a", "b"], 1, 5.0))
    await asyncio.sleep(0.1)  # let the fetch block (if not, it is a plain read: the test still holds)

    await producer.enqueue([Message("1", "a", b"a1"), Message("2", "b", b"b1")])  # one MULTI/EXEC

    assert [d.body for d in await waiting] == [b"a1"]
    assert [(d.body, d.deliveries) for d in await worker.fetch(["a", "b"], 10, 0)] == [(b"b1", 1)]


async def test_entries_one_read_over_several_streams_leased_too_many_are_given_back_uncounted(
    opened: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a read over two streams that both hold entries (no peeking first), COUNT 1
    worker = await opened()
    await worker.enqueue([Message("1", "a", b"a1"), Message("2", "b", b"b1")])

    async def no_shares(*args: Any) -> dict[int, int]:
        return {}

    monkeypatch.setattr(worker, "_shares", no_shares)
    # When it answers from both
    first = await worker.fetch(["a", "b"], 1, 1.0)
    # Then only the oldest is leased; the other is given back, its delivery uncounted
    assert [d.body for d in first] == [b"a1"]
    assert [(d.body, d.deliveries) for d in await worker.fetch(["a", "b"], 10, 0)] == [(b"b1", 1)]
    assert (await worker.stats(["b"]))[0].in_flight == 1


async def test_a_short_lease_reclaimer_leaves_a_long_lease_alone(opened: Callable[..., Any]) -> None:
    # Given a worker holding a message on a 30 s lease
    holder = await opened(visibility_timeout=30.0)
    await holder.enqueue(one("q", b"x"))
    (held,) = await holder.fetch(["q"], 1, 0)
    # When a worker whose own leases last 0.2 s looks for expired leases for 1 s
    hasty = await opened(visibility_timeout=0.2)
    taken = await hasty.fetch(["q"], 10, 1.0)
    # Then it takes nothing: the lease is the holder's, not the reclaimer's (why not XAUTOCLAIM)
    assert taken == []
    await holder.ack([held])
    assert (await holder.stats(["q"]))[0].pending == 0


async def held_then_taken_over(opened: Callable[..., Any], leased_ago: float) -> tuple[Broker, Delivery]:
    """A worker and its delivery of a message leased on a 30 s lease ``leased_ago``
    seconds ago by the worker's clock, then handed to another consumer behind the
    worker's back, as a reclaimer would once Redis's clock had jumped past the lease."""
    worker = await opened(visibility_timeout=30.0)
    assert isinstance(worker, RedisBroker)
    await worker.enqueue(one("q", b"x"))
    (held,) = await worker.fetch(["q"], 1, 0)
    held.receipt.leased_at -= leased_ago
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        stream = worker.keys.stream(held.queue)
        await client.xclaim(stream, GROUP, "elsewhere/1/abc/30000", 0, [held.receipt.entry_id])
    finally:
        await client.aclose()
    return worker, held


async def test_an_ack_past_half_its_lease_is_checked_and_leaves_a_taken_over_entry_alone(
    opened: Callable[..., Any],
) -> None:
    worker, held = await held_then_taken_over(opened, leased_ago=16.0)

    await worker.ack([held])

    # The ack checked who holds it, and changed nothing
    assert (await worker.stats(["q"]))[0].pending == 1


async def test_an_ack_within_half_its_lease_trusts_the_lease_without_a_check(
    opened: Callable[..., Any],
) -> None:
    # Nobody else can hold an entry leased just now on a 30 s lease: only a jump of
    # Redis's clock would let another worker take it, as this one was
    worker, held = await held_then_taken_over(opened, leased_ago=0.0)

    await worker.ack([held])

    # The ack skipped the check (settling.py): the task ran and succeeded here
    assert (await worker.stats(["q"]))[0].pending == 0


async def test_a_given_back_delivery_is_no_longer_trusted_by_its_ack(opened: Callable[..., Any]) -> None:
    # Given a message leased just now, given back, and leased by another worker
    worker = await opened(visibility_timeout=30.0)
    other = await opened(visibility_timeout=30.0)
    await worker.enqueue(one("q", b"x"))
    (held,) = await worker.fetch(["q"], 1, 0)
    await worker.release([held])
    (theirs,) = await other.fetch(["q"], 1, 0)
    # When the first worker acks its old delivery
    await worker.ack([held])
    # Then the other's lease stands
    assert (await worker.stats(["q"]))[0].pending == 1
    await other.ack([theirs])
    assert (await worker.stats(["q"]))[0].pending == 0


async def test_a_server_that_lost_its_scripts_still_takes_sends_and_acks(tmp_path: Path) -> None:
    # A server of its own: flushing the shared one's scripts would make every other test's reload them.
    server = RedisServer(tmp_path / "redis")
    server.start()
    broker = from_url(server.url, visibility_timeout=30.0)
    try:
        # Given a broker that has sent once (its scripts are loaded), and a server that then forgets them
        assert isinstance(broker, RedisBroker)
        await broker.enqueue(one("q", b"first"))
        await broker._link.conn().client.script_flush()
        # When it sends again (NOSCRIPT on its own connection), fetches, and acks after another flush
        await broker.enqueue(one("q", b"second"))
        taken = await broker.fetch(["q"], 10, 0)
        await broker._link.conn().client.script_flush()
        await broker.ack(taken)
        # Then both were sent, leased once and acknowledged
        assert sorted(d.body for d in taken) == [b"first", b"second"]
        assert [(s.name, s.pending) for s in await broker.stats()] == [("q", 0)]  # its name recorded too
    finally:
        await broker.close()
        server.stop(kill=True)


async def test_sends_at_the_same_time_all_arrive(opened: Callable[..., Any]) -> None:
    # Given one broker, when 50 coroutines send at once (one has its connection, the rest share the pool)
    broker = await opened()
    await asyncio.gather(*(broker.enqueue(one("q", b"%d" % i)) for i in range(50)))
    # Then every message is there, once
    taken = await broker.fetch(["q"], 100, 0)
    assert sorted(int(d.body) for d in taken) == list(range(50))


async def test_keys_of_a_queue_share_its_hash_tag(opened: Callable[..., Any]) -> None:
    broker = await opened()
    await broker.enqueue([*one("mail", b"now"), Message("later", "mail", b"later", eta=4e9)])
    (delivery,) = await broker.fetch(["mail"], 1, 0)
    await broker.dead_letter(delivery, "bad")
    assert isinstance(broker, RedisBroker)
    await broker.result_store().store([("t1", b"r")], ttl=60)

    client = broker._link.conn().client
    prefix = broker.keys.prefix
    keys = sorted(k.decode() if isinstance(k, bytes) else k for k in await client.keys(f"{prefix}:*"))
    assert keys == [f"{prefix}:queues", f"{prefix}:result:t1", f"{prefix}:{{mail}}:dead",
                    f"{prefix}:{{mail}}:delayed", f"{prefix}:{{mail}}:stream"]
