"""fetch with quotas: strict priority and weighted shares between queues."""

from __future__ import annotations

import asyncio
import collections

import pytest

from hurtle.brokers import Broker
from hurtle.worker.priorities import Dealer, QueueSpec

from .support import WAIT_LIMIT, bodies, counts, eventually, fetch_one, messages

QUEUES = ["high", "default", "low"]


async def fill(broker: Broker, per_queue: int) -> None:
    """``per_queue`` messages in each queue, the lowest queue's sent first, so that
    oldest-first would take them from the bottom up."""
    for queue in reversed(QUEUES):
        await broker.enqueue(messages(queue, *(f"{queue}-{i}".encode() for i in range(per_queue))))


async def test_strict_quotas_never_take_a_lower_queue_while_a_higher_one_has_messages(broker: Broker) -> None:
    # Given three queues of 7 messages each, the lowest sent first
    await fill(broker, 7)
    strict = [5] * len(QUEUES)
    taken: list[str] = []

    # When a worker with 5 free slots fetches strictly, over and over, until all are taken
    while len(taken) < 21:
        got = await broker.fetch(QUEUES, 5, WAIT_LIMIT, quotas=strict)
        assert got, f"only {len(taken)} of 21 messages came"
        await broker.ack(got)
        taken += [d.queue for d in got]

    # Then every message of a queue came before any of the queues below it, and each
    # fetch that emptied a queue filled its free slots from the next
    assert taken == ["high"] * 7 + ["default"] * 7 + ["low"] * 7


async def test_a_strict_fetch_fills_its_room_from_the_next_queues_in_order(broker: Broker) -> None:
    await broker.enqueue(messages("low", b"l1", b"l2"))
    await broker.enqueue(messages("default", b"d1"))
    await broker.enqueue(messages("high", b"h1"))

    got = await broker.fetch(QUEUES, 3, WAIT_LIMIT, quotas=[3, 3, 3])

    assert bodies(got) == [b"h1", b"d1", b"l1"]


async def test_a_strict_fetch_that_waits_wakes_for_a_message_in_any_queue(broker: Broker) -> None:
    # Given a strict fetch waiting on three empty queues
    waiting = asyncio.ensure_future(broker.fetch(QUEUES, 3, WAIT_LIMIT, quotas=[3, 3, 3]))
    await asyncio.sleep(0.2)  # let the fetch start waiting (it would take the message anyway)

    # When a message comes to the lowest queue
    await broker.enqueue(messages("low", b"late"))

    # Then the waiting fetch takes it
    got = await asyncio.wait_for(waiting, WAIT_LIMIT)
    assert [(d.queue, d.body) for d in got] == [("low", b"late")]


async def test_weighted_quotas_share_fetches_by_weight_and_starve_no_queue(broker: Broker) -> None:
    # Given three full queues and a worker weighting them 5:2:1
    await fill(broker, 60)
    dealer = Dealer(QueueSpec(tuple(QUEUES), (5, 2, 1)))
    taken: list[str] = []

    # When it takes 80 messages, 3 free slots a fetch
    while len(taken) < 80:
        free = min(3, 80 - len(taken))
        got = await broker.fetch(QUEUES, free, WAIT_LIMIT, quotas=dealer.quotas(free))
        assert len(got) == free, f"a fetch of {free} brought {len(got)} with every queue full"
        await broker.ack(got)
        taken += [d.queue for d in got]

    # Then each queue's share is its weight's (50, 20, 10 of 80), within one message
    shares = collections.Counter(taken)
    assert abs(shares["high"] - 50) <= 1
    assert abs(shares["default"] - 20) <= 1
    assert abs(shares["low"] - 10) <= 1
    # and the lowest weight got a turn in every stretch of 8 messages (the first 72)
    assert all("low" in taken[start : start + 8] for start in range(0, 72, 8))


async def test_weighted_quotas_give_an_empty_queues_share_to_the_others(broker: Broker) -> None:
    # Given weights 1:1:1 and only the lowest queue holding messages
    await broker.enqueue(messages("low", *(b"%d" % i for i in range(6))))
    dealer = Dealer(QueueSpec(tuple(QUEUES), (1, 1, 1)))

    # When a worker with 6 free slots fetches
    got = await broker.fetch(QUEUES, 6, WAIT_LIMIT, quotas=dealer.quotas(6))

    # Then it fills every slot from the one queue that has work, oldest first
    assert [d.queue for d in got] == ["low"] * 6
    assert bodies(got) == [b"%d" % i for i in range(6)]


@pytest.mark.needs("leases_expire")
async def test_a_lower_queues_expired_lease_waits_its_turn_behind_a_higher_queue(
    short_lease: Broker, broker: Broker
) -> None:
    # Given a message of the lowest queue whose holder's lease ran out
    await broker.enqueue(messages("low", b"orphan"))
    await fetch_one(short_lease, "low")
    await eventually(lambda: _ready(broker, "low"), "the lease of the low message to expire")
    # and then a message in the highest queue
    await broker.enqueue(messages("high", b"urgent"))

    # When a strict worker with one free slot fetches, twice
    first = await broker.fetch(QUEUES, 1, WAIT_LIMIT, quotas=[1, 1, 1])
    await broker.ack(first)
    second = await broker.fetch(QUEUES, 1, WAIT_LIMIT, quotas=[1, 1, 1])

    # Then the high message comes first, and the orphan next, its one lost delivery counted
    assert [(d.queue, d.body) for d in first] == [("high", b"urgent")]
    assert [(d.queue, d.body, d.deliveries) for d in second] == [("low", b"orphan", 2)]


async def _ready(broker: Broker, queue: str) -> bool:
    return (await counts(broker, queue)).ready == 1


async def test_a_queue_named_twice_keeps_its_first_place_and_leases_each_message_once(broker: Broker) -> None:
    await broker.enqueue(messages("low", b"l1", b"l2"))
    await broker.enqueue(messages("high", b"h1"))

    got = await broker.fetch(["high", "low", "high"], 5, WAIT_LIMIT, quotas=[5, 5, 5])

    assert bodies(got) == [b"h1", b"l1", b"l2"]
