"""ack, retry and dead_letter: how a leased message is settled, and why a stale
delivery (its lease expired and another worker took the message) settles nothing."""

from __future__ import annotations

import time
import uuid

import pytest

from hurtle.brokers import Broker, Delivery, Message

from .support import CLOCK_SLACK, bodies, counts, fetch_one, in_flight, messages


async def stale_and_current(short_lease: Broker, broker: Broker) -> tuple[Delivery, Delivery]:
    """Lease a message briefly, then again once that lease expired: (stale, current)."""
    await short_lease.enqueue(messages("q", b"x"))
    stale = await fetch_one(short_lease, "q")
    current = await fetch_one(broker, "q")  # waits for the first lease to expire
    assert current.deliveries == 2
    return stale, current


# -- ack --------------------------------------------------------------------------


async def test_ack_forgets_the_message_for_good(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"done", b"next"))
    done = await fetch_one(broker, "q")

    await broker.ack([done])

    stats = await counts(broker, "q")
    assert (stats.ready, stats.in_flight) == (1, in_flight(broker, 0))
    assert bodies(await broker.fetch(["q"], 10, 0)) == [b"next"]


async def test_ack_is_idempotent(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"done", b"other"))
    done = await fetch_one(broker, "q")

    await broker.ack([done])
    await broker.ack([done])
    await broker.ack([])

    assert (await counts(broker, "q")).pending == 1
    assert bodies(await broker.fetch(["q"], 10, 0)) == [b"other"]


@pytest.mark.needs("leases_expire")
async def test_a_stale_ack_leaves_the_new_lease_alone(short_lease: Broker, broker: Broker) -> None:
    stale, current = await stale_and_current(short_lease, broker)

    await short_lease.ack([stale])

    assert (await counts(broker, "q")).pending == 1, "the stale ack removed the message"
    await broker.ack([current])
    assert (await counts(broker, "q")).pending == 0


# -- retry ----------------------------------------------------------------------


async def test_retry_replaces_the_message_by_its_next_attempt_which_waits_for_its_eta(
    broker: Broker,
) -> None:
    await broker.enqueue(messages("q", b"attempt 0"))
    delivery = await fetch_one(broker, "q")
    eta = time.time() + 1.0

    await broker.retry(delivery, Message(uuid.uuid4().hex, "q", b"attempt 1", eta))

    stats = await counts(broker, "q")
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 1, in_flight(broker, 0))
    assert await broker.fetch(["q"], 10, 0) == []
    next_attempt = await fetch_one(broker, "q")
    assert next_attempt.body == b"attempt 1"
    assert time.time() >= eta - CLOCK_SLACK


@pytest.mark.needs("leases_expire")
async def test_a_retried_message_starts_a_fresh_delivery_count(short_lease: Broker, broker: Broker) -> None:
    _, current = await stale_and_current(short_lease, broker)

    await broker.retry(current, Message(uuid.uuid4().hex, "q", b"attempt 1"))

    next_attempt = await fetch_one(broker, "q")
    assert (next_attempt.body, next_attempt.deliveries) == (b"attempt 1", 1)


async def test_acking_a_delivery_after_its_retry_changes_nothing(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"attempt 0"))
    delivery = await fetch_one(broker, "q")
    await broker.retry(delivery, Message(uuid.uuid4().hex, "q", b"attempt 1"))

    await broker.ack([delivery])

    assert bodies(await broker.fetch(["q"], 10, 0)) == [b"attempt 1"]


@pytest.mark.needs("leases_expire")
async def test_a_stale_retry_adds_no_second_copy(
    short_lease: Broker, broker: Broker
) -> None:
    stale, _current = await stale_and_current(short_lease, broker)

    await short_lease.retry(stale, Message(uuid.uuid4().hex, "q", b"attempt 1"))

    stats = await counts(broker, "q")
    assert (stats.ready, stats.delayed, stats.in_flight) == (0, 0, in_flight(broker, 1))


# -- dead_letter ----------------------------------------------------------------


async def test_dead_letter_moves_the_message_with_its_reason(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"poison"))
    delivery = await fetch_one(broker, "q")
    before = time.time()

    await broker.dead_letter(delivery, "ValueError: boom\nTraceback ...")

    stats = await counts(broker, "q")
    assert (stats.pending, stats.dead) == (0, 1)
    (letter,) = await broker.dead_letters()
    assert (letter.queue, letter.body) == ("q", b"poison")
    assert letter.reason == "ValueError: boom\nTraceback ..."
    assert before <= letter.failed_at <= time.time()


async def test_acking_a_dead_lettered_delivery_changes_nothing(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"poison"))
    delivery = await fetch_one(broker, "q")
    await broker.dead_letter(delivery, "bad")

    await broker.ack([delivery])

    assert len(await broker.dead_letters()) == 1


@pytest.mark.needs("leases_expire")
async def test_a_stale_dead_letter_leaves_the_new_lease_alone(short_lease: Broker, broker: Broker) -> None:
    stale, current = await stale_and_current(short_lease, broker)

    await short_lease.dead_letter(stale, "too slow")

    assert await broker.dead_letters() == []
    assert (await counts(broker, "q")).in_flight == in_flight(broker, 1)
    await broker.ack([current])
    assert (await counts(broker, "q")).pending == 0
