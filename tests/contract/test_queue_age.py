"""stats' oldest_ready_age: how long the oldest message that could run now has waited."""

from __future__ import annotations

import time

import pytest

from hurtle.brokers import Broker

from .support import CLOCK_SLACK, SHORT_LEASE, WAIT_LIMIT, counts, eventually, fetch_one, messages

WAITED = 0.3  # seconds: long enough to tell from a message sent just now
# Seconds: far above any age a test here can see (its waits end at WAIT_LIMIT), far
# below the age of a message dated from the epoch or a wrong unit.
UPPER_BOUND = 10 * WAIT_LIMIT


@pytest.mark.needs("knows_queue_age")
async def test_the_age_of_an_empty_queue_is_zero(broker: Broker) -> None:
    assert (await counts(broker, "never used")).oldest_ready_age == 0.0


@pytest.mark.needs("knows_queue_age")
async def test_the_age_is_of_the_oldest_ready_message_not_the_newest(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"first"))

    async def waited() -> bool:
        age = (await counts(broker, "q")).oldest_ready_age
        return age is not None and age >= WAITED

    await eventually(waited, f"the first message to wait {WAITED}s")
    await broker.enqueue(messages("q", b"second"))

    stats = await counts(broker, "q")
    assert stats.ready == 2
    assert stats.oldest_ready_age is not None
    assert WAITED <= stats.oldest_ready_age < UPPER_BOUND


@pytest.mark.needs("knows_queue_age")
async def test_delayed_and_leased_messages_add_no_age(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"leased"))
    await fetch_one(broker, "q")
    await broker.enqueue(messages("q", b"not due", eta=time.time() + 60))

    stats = await counts(broker, "q")

    assert (stats.ready, stats.delayed) == (0, 1)
    assert stats.oldest_ready_age == 0.0


@pytest.mark.needs("knows_queue_age", "leases_expire")
async def test_a_message_whose_lease_ran_out_is_aged_from_the_end_of_the_lease(
    short_lease: Broker,
) -> None:
    sent = time.time()
    await short_lease.enqueue(messages("q", b"abandoned"))
    await fetch_one(short_lease, "q")

    async def lease_ran_out() -> bool:
        return (await counts(short_lease, "q")).ready == 1

    await eventually(lease_ran_out, "the lease to run out")
    age = (await counts(short_lease, "q")).oldest_ready_age
    since_sent = time.time() - sent

    # The lease began after the send and lasted SHORT_LEASE: the wait began after both.
    assert age is not None
    assert 0.0 <= age <= since_sent - SHORT_LEASE + CLOCK_SLACK


@pytest.mark.needs("knows_queue_age")
async def test_a_message_given_back_unstarted_is_not_aged_from_the_epoch(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"given back"))
    await broker.release([await fetch_one(broker, "q")])

    stats = await counts(broker, "q")

    assert stats.ready == 1
    assert stats.oldest_ready_age is not None
    assert 0.0 <= stats.oldest_ready_age < UPPER_BOUND


async def test_a_broker_that_cannot_know_the_age_says_none_rather_than_zero(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"waiting"))

    age = (await counts(broker, "q")).oldest_ready_age

    assert (age is None) == (not broker.knows_queue_age)
