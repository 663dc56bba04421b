"""``Broker.added_counts``: how many messages each queue ever took in, what the task
history's rate in is read from."""

from __future__ import annotations

import pytest

from hurtle.brokers import Broker

from .support import fetch_one, messages


@pytest.mark.needs("counts_added")
async def test_a_queue_never_sent_to_took_in_nothing(broker: Broker) -> None:
    assert await broker.added_counts(["never used"]) == {"never used": 0}


@pytest.mark.needs("counts_added")
async def test_each_message_sent_counts_once_per_queue(broker: Broker) -> None:
    await broker.enqueue(messages("a", b"1", b"2", b"3"))
    await broker.enqueue([*messages("a", b"4"), *messages("b", b"5")])

    assert await broker.added_counts(["a", "b"]) == {"a": 4, "b": 1}


@pytest.mark.needs("counts_added")
async def test_the_count_only_grows_as_messages_are_taken_and_acknowledged(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"1", b"2"))
    await broker.ack([await fetch_one(broker, "q")])
    await broker.purge("q")

    assert await broker.added_counts(["q"]) == {"q": 2}


@pytest.mark.needs("counts_added")
async def test_a_retry_and_a_requeued_dead_letter_count_as_taken_in_again(broker: Broker) -> None:
    await broker.enqueue(messages("q", b"try", b"doomed"))
    first = await fetch_one(broker, "q")
    await broker.retry(first, messages("q", b"try again")[0])
    second = await fetch_one(broker, "q")
    await broker.dead_letter(second, "bad")
    await broker.requeue_dead()

    assert await broker.added_counts(["q"]) == {"q": 4}


async def test_a_broker_that_cannot_count_what_came_in_says_nothing_rather_than_zero(broker: Broker) -> None:
    if type(broker).counts_added:
        pytest.skip(f"{type(broker).__name__} counts what came in")
    await broker.enqueue(messages("q", b"1"))

    assert await broker.added_counts(["q"]) == {}
