"""Never delete before the replacement is safe: a move that fails half-way leaves
the message where it was, to be delivered (or moved) again.

Redis does not undo a script that fails half-way, so each script that moves a
message adds it to its next home first and deletes it last; SQLite runs each
move in one transaction. Each test makes the add fail (SQLite: a trigger that
aborts the insert, as a full disk would; Redis: the destination key holds another
type, so XADD or ZADD answers WRONGTYPE) and checks that nothing was lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hurtle.brokers import Broker, Message
from hurtle.errors import BrokerDataError
from tests.contract.support import SHORT_LEASE, Brokers, counts, eventually, fetch_one, messages
from tests.redis_server import redis_cluster_url, redis_url

from .raw_records import RawRedis, RawSQLite

QUEUE = "default"


class Breaker:
    """Makes the add of a move fail: to the dead letters, the delayed messages, or
    the stream (the queue itself)."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.sqlite = RawSQLite(tmp_path / "broker.db") if url.startswith("sqlite") else None
        self.redis = None if self.sqlite else RawRedis(url)

    @contextmanager
    def failing(self, destination: str) -> Iterator[None]:
        if self.sqlite is not None:
            table = "hurtle_dead" if destination == "dead" else "hurtle_messages"
            with self.sqlite.failing_inserts(table):
                yield
            return
        assert self.redis is not None
        key = {"dead": self.redis.keys.dead, "delayed": self.redis.keys.delayed,
               "stream": self.redis.keys.stream}[destination](QUEUE)
        # (an empty stream may be overwritten: it holds no message, only its consumer group)
        assert not self.redis.client.exists(key) or self.redis.client.xlen(key) == 0, f"{key} holds messages"
        self.redis.client.set(key, b"another program's value")
        try:
            yield
        finally:
            self.redis.client.delete(key)

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()


def sqlite_url(tmp_path: Path, unique: str) -> str:
    return f"sqlite:///{tmp_path}/broker.db"


@pytest.fixture(params=[sqlite_url, redis_url, redis_cluster_url], ids=["sqlite", "redis", "redis_cluster"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.param(tmp_path, uuid.uuid4().hex))


@pytest.fixture
async def brokers(url: str) -> AsyncIterator[Brokers]:
    opened = Brokers(url)
    yield opened
    await opened.close_all()


@pytest.fixture
async def broker(brokers: Brokers) -> Broker:
    """Its leases expire after ``SHORT_LEASE``: a message whose move failed comes back soon."""
    return await brokers.open(visibility_timeout=SHORT_LEASE)


@pytest.fixture
def breaker(url: str, tmp_path: Path, broker: Broker) -> Iterator[Breaker]:
    made = Breaker(url, tmp_path)
    yield made
    made.close()


async def test_a_dead_letter_that_cannot_be_stored_leaves_the_message_to_be_delivered_again(
    broker: Broker, breaker: Breaker
) -> None:
    await broker.enqueue(messages(QUEUE, b"poison"))
    first = await fetch_one(broker, QUEUE)

    with breaker.failing("dead"), pytest.raises(BrokerDataError):
        await broker.dead_letter(first, "it failed")

    assert ((await counts(broker, QUEUE)).pending, await broker.dead_letters()) == (1, [])
    (again,) = await eventually(lambda: broker.fetch([QUEUE], 1, 0.05), "the message to come back")
    assert (again.body, again.deliveries) == (b"poison", 2)
    await broker.dead_letter(again, "it failed")
    (letter,) = await broker.dead_letters()
    assert (letter.body, letter.reason) == (b"poison", "it failed")
    assert (await counts(broker, QUEUE)).pending == 0


async def test_a_retry_that_cannot_be_stored_leaves_the_message_to_be_delivered_again(
    broker: Broker, breaker: Breaker
) -> None:
    (message,) = messages(QUEUE, b"attempt 1")
    await broker.enqueue([message])
    first = await fetch_one(broker, QUEUE)
    next_attempt = Message(message.id, QUEUE, b"attempt 2", eta=time.time() + 60)

    with breaker.failing("delayed"), pytest.raises(BrokerDataError):
        await broker.retry(first, next_attempt)

    assert (await counts(broker, QUEUE)).delayed == 0
    (again,) = await eventually(lambda: broker.fetch([QUEUE], 1, 0.05), "the message to come back")
    assert (again.body, again.deliveries) == (b"attempt 1", 2)
    await broker.retry(again, next_attempt)
    stats = await counts(broker, QUEUE)
    assert (stats.delayed, stats.pending) == (1, 1)


async def test_a_requeue_that_cannot_be_stored_leaves_the_dead_letter(
    broker: Broker, breaker: Breaker
) -> None:
    await broker.enqueue(messages(QUEUE, b"dead"))
    await broker.dead_letter(await fetch_one(broker, QUEUE), "it failed")

    with breaker.failing("stream"), pytest.raises(BrokerDataError):
        await broker.requeue_dead()

    (letter,) = await broker.dead_letters()
    assert letter.body == b"dead"
    assert await broker.requeue_dead() == 1
    assert (await fetch_one(broker, QUEUE)).body == b"dead"


async def test_a_due_message_that_cannot_be_promoted_stays_delayed_and_runs_once_it_can(
    url: str, brokers: Brokers, breaker: Breaker
) -> None:
    if breaker.redis is None:
        pytest.skip("SQLite has no delayed set: a delayed message is a row that comes due")
    broker = await brokers.open()
    await broker.enqueue(messages(QUEUE, b"later", eta=time.time() + 0.05))

    with breaker.failing("stream"):
        time.sleep(0.1)  # past its eta, so a fetch tries to promote it
        assert await broker.fetch([QUEUE], 1, 0.2) == []  # the queue is skipped, no error
        assert breaker.redis.client.zcard(breaker.redis.keys.delayed(QUEUE)) == 1

    # (this broker object skips the queue for a while; a new one, as a restarted worker, reads it)
    other = await brokers.open()
    assert (await fetch_one(other, QUEUE)).body == b"later"
