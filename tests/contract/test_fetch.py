"""enqueue, fetch, leases, extend and release: how messages come out of a broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import overload

import pytest

from hurtle.brokers import Broker, Message

from .support import (
    CLOCK_SLACK,
    SHORT_LEASE,
    WAIT_LIMIT,
    Brokers,
    bodies,
    counts,
    fetch_one,
    in_flight,
    messages,
)

# -- enqueue and fetch ----------------------------------------------------------


async def test_fetch_returns_messages_oldest_first(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"1", b"2", b"3"))
    await broker.enqueue(messages("q", b"4"))

    got = await broker.fetch(["q"], 10, 0)

    assert bodies(got) == [b"1", b"2", b"3", b"4"]
    assert [(d.queue, d.deliveries) for d in got] == [("q", 1)] * 4


class Halfway(Exception):
    pass


class _BreaksAtThird(Sequence[Message]):
    """A batch whose third message cannot be read: a failure halfway through enqueue."""

    def __init__(self, batch: list[Message]) -> None:
        self._batch = batch

    def __len__(self) -> int:
        return len(self._batch)

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | Sequence[Message]:
        if isinstance(index, slice):
            return _BreaksAtThird(self._batch[index])
        if index == 2:
            raise Halfway
        return self._batch[index]

    def __iter__(self) -> Iterator[Message]:
        yield self._batch[0]
        yield self._batch[1]
        raise Halfway


async def test_an_enqueue_that_fails_halfway_stores_none_of_its_batch(
    broker: Broker
) -> None:
    batch = _BreaksAtThird(messages("q", b"1", b"2", b"3"))

    with pytest.raises(Halfway):
        await broker.enqueue(batch)

    assert (await counts(broker, "q")).pending == 0
    assert await broker.fetch(["q"], 10, 0) == []


async def test_an_empty_batch_is_a_no_op(broker: Broker) -> None:
    await broker.enqueue([])

    assert (await counts(broker, "q")).pending == 0


async def test_fetch_leases_at_most_max_count(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"1", b"2", b"3", b"4", b"5"))

    assert bodies(await broker.fetch(["q"], 2, 0)) == [b"1", b"2"]
    assert await broker.fetch(["q"], 0, 0) == []
    assert bodies(await broker.fetch(["q"], 10, 0)) == [b"3", b"4", b"5"]


async def test_fetch_on_an_empty_queue_returns_nothing_after_its_timeout(broker: Broker) -> None:
    await broker.enqueue(messages("elsewhere", b"not for q"))
    started = time.monotonic()

    got = await broker.fetch(["q"], 10, 0.2)

    assert got == []
    assert time.monotonic() - started >= 0.2 - CLOCK_SLACK


async def test_a_waiting_fetch_returns_as_soon_as_a_message_comes(broker: Broker, brokers: Brokers) -> None:
    producer = await brokers.open()
    waiting = asyncio.create_task(broker.fetch(["q"], 10, WAIT_LIMIT))
    await asyncio.sleep(0)  # let the fetch start waiting

    await producer.enqueue(messages("q", b"news"))

    assert bodies(await waiting) == [b"news"]


async def test_fetch_takes_from_several_queues_oldest_first(broker: Broker) -> None:
    for queue, body in [("a", b"a1"), ("b", b"b1"), ("c", b"c1"), ("a", b"a2")]:
        await broker.enqueue(messages(queue, body))

    got = await broker.fetch(["a", "b"], 10, 0)

    assert [(d.queue, d.body) for d in got] == [("a", b"a1"), ("b", b"b1"), ("a", b"a2")]
    assert bodies(await broker.fetch(["c"], 10, 0)) == [b"c1"]


async def test_a_message_with_an_eta_is_invisible_until_it_is_due(broker: Broker) -> None:
    eta = time.time() + 1.0
    await broker.enqueue(messages("q", b"later", eta=eta))
    await broker.enqueue(messages("q", b"now"))

    assert bodies(await broker.fetch(["q"], 10, 0)) == [b"now"]
    assert (await counts(broker, "q")).delayed == 1

    due = await fetch_one(broker, "q")
    assert due.body == b"later"
    assert time.time() >= eta - CLOCK_SLACK


# -- leases ---------------------------------------------------------------------


async def test_a_leased_message_is_invisible_to_a_second_fetch(broker: Broker, brokers: Brokers) -> None:
    other_worker = await brokers.open()
    await broker.enqueue(messages("q", b"x"))
    await fetch_one(broker, "q")

    assert await other_worker.fetch(["q"], 10, 0.1) == []
    assert await broker.fetch(["q"], 10, 0) == []
    assert (await counts(broker, "q")).in_flight == in_flight(broker, 1)


@pytest.mark.needs("leases_expire")
async def test_an_expired_lease_is_delivered_again_with_its_delivery_counted(
    short_lease: Broker, broker: Broker
) -> None:
    await short_lease.enqueue(messages("q", b"x"))
    leased_at = time.time()
    first = await fetch_one(short_lease, "q")

    again = await fetch_one(broker, "q")  # waits for the first lease to expire

    assert time.time() - leased_at >= SHORT_LEASE - CLOCK_SLACK
    assert (first.body, first.deliveries) == (b"x", 1)
    assert (again.body, again.deliveries) == (b"x", 2)


@pytest.mark.needs("leases_expire")
async def test_extend_keeps_a_lease_alive_past_the_visibility_timeout(
    short_lease: Broker, broker: Broker
) -> None:
    await short_lease.enqueue(messages("q", b"x"))
    delivery = await fetch_one(short_lease, "q")
    leased_at = time.monotonic()

    while time.monotonic() - leased_at < 2 * SHORT_LEASE:
        await short_lease.extend([delivery])
        assert await broker.fetch(["q"], 1, 0.05) == [], "the extended lease expired"

    # Without heartbeats the lease runs out and the message comes back.
    again = await fetch_one(broker, "q")
    assert (again.body, again.deliveries) == (b"x", 2)


async def test_release_makes_a_message_visible_at_once_without_counting_the_delivery(
    broker: Broker,
) -> None:
    await broker.enqueue(messages("q", b"x", b"y"))
    taken = await broker.fetch(["q"], 2, 0)

    await broker.release(taken)

    again = await broker.fetch(["q"], 10, 0)
    assert [(d.body, d.deliveries) for d in again] == [(b"x", 1), (b"y", 1)]


async def test_connect_and_close_are_idempotent(brokers: Brokers) -> None:
    broker = await brokers.open()
    await broker.connect()
    await broker.enqueue(messages("q", b"x"))

    await broker.close()
    await broker.close()

    reopened = await brokers.open()
    assert bodies(await reopened.fetch(["q"], 10, 0)) == [b"x"]
