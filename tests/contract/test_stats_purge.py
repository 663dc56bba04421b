"""stats and purge: what an operator sees and clears."""

from __future__ import annotations

import time

import pytest

from hurtle.brokers import Broker, QueueStats

from .support import bodies, counts, eventually, fetch_one, in_flight, messages, queue_age


async def test_stats_count_ready_delayed_in_flight_and_dead(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"leased", b"dead", b"ready 1", b"ready 2"))
    await broker.enqueue(messages("q", b"delayed", eta=time.time() + 60))
    _leased, dead = await broker.fetch(["q"], 2, 0)
    await broker.dead_letter(dead, "bad")

    stats = await counts(broker, "q")

    assert stats == QueueStats("q", ready=2, delayed=1, in_flight=in_flight(broker, 1), dead=1,
                               oldest_ready_age=stats.oldest_ready_age)  # the age has tests of its own
    assert stats.pending == (4 if broker.counts_all_in_flight else 3)  # unknown: not counted


async def test_stats_of_a_queue_never_used_are_zeros(broker: Broker) -> None:
    assert await broker.stats(["nothing"]) == [
        QueueStats("nothing", 0, 0, in_flight(broker, 0), 0, oldest_ready_age=queue_age(broker, 0.0))
    ]


async def test_stats_without_queues_list_every_queue_in_use(broker: Broker) -> None:
    await broker.enqueue(messages("a", b"1", b"2"))
    await broker.enqueue(messages("b", b"3"))

    by_name = {s.name: s for s in await broker.stats()}

    assert by_name["a"].ready == 2
    assert by_name["b"].ready == 1


async def test_purge_deletes_the_waiting_messages_of_a_queue_and_says_how_many(
    broker: Broker,
) -> None:
    await broker.enqueue(messages("q", b"leased", b"ready 1", b"ready 2"))
    await broker.enqueue(messages("q", b"delayed", eta=time.time() + 60))
    await broker.enqueue(messages("other", b"untouched"))
    leased = await fetch_one(broker, "q")

    assert await broker.purge("q") == 3

    stats = await counts(broker, "q")
    assert stats == QueueStats("q", ready=0, delayed=0, in_flight=in_flight(broker, 1), dead=0,
                               oldest_ready_age=queue_age(broker, 0.0))
    assert bodies(await broker.fetch(["other"], 10, 0)) == [b"untouched"]
    assert await broker.purge("q") == 0
    await broker.ack([leased])


@pytest.mark.needs("leases_expire")
async def test_purge_deletes_a_message_whose_lease_expired(
    short_lease: Broker
) -> None:
    await short_lease.enqueue(messages("q", b"abandoned"))
    await fetch_one(short_lease, "q")

    async def lease_expired() -> bool:
        return (await counts(short_lease, "q")).ready == 1

    await eventually(lease_expired, "the lease to expire")

    assert await short_lease.purge("q") == 1
    assert (await counts(short_lease, "q")).pending == 0
