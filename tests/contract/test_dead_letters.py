"""The dead-letter store: list newest first, requeue (all or by id), purge."""

from __future__ import annotations

from hurtle.brokers import Broker

from .support import bodies, counts, dead_letter_each


async def test_dead_letters_are_listed_newest_first(broker: Broker) -> None:
    await dead_letter_each(broker, "q", b"1", b"2", b"3")

    letters = await broker.dead_letters()

    assert [d.body for d in letters] == [b"3", b"2", b"1"]
    assert [d.reason for d in letters] == ["bad 3", "bad 2", "bad 1"]
    assert len({d.id for d in letters}) == 3


async def test_dead_letters_of_one_queue_at_most_limit(broker: Broker) -> None:
    await dead_letter_each(broker, "q", b"q1", b"q2", b"q3")
    await dead_letter_each(broker, "r", b"r1")

    assert [d.body for d in await broker.dead_letters("q", limit=2)] == [b"q3", b"q2"]
    assert [d.body for d in await broker.dead_letters("r")] == [b"r1"]
    assert await broker.dead_letters("nothing") == []


async def test_requeue_dead_puts_every_dead_letter_back_on_its_queue(broker: Broker) -> None:
    await dead_letter_each(broker, "q", b"q1", b"q2")
    await dead_letter_each(broker, "r", b"r1")

    assert await broker.requeue_dead() == 3

    assert await broker.dead_letters() == []
    again = await broker.fetch(["q"], 10, 0)
    assert sorted(bodies(again)) == [b"q1", b"q2"]
    assert [d.deliveries for d in again] == [1, 1], "a requeued message starts afresh"
    assert bodies(await broker.fetch(["r"], 10, 0)) == [b"r1"]


async def test_requeue_dead_by_id_puts_back_only_those(broker: Broker) -> None:
    await dead_letter_each(broker, "q", b"keep", b"back")
    back = (await broker.dead_letters())[0]
    assert back.body == b"back"

    assert await broker.requeue_dead([back.id, "no-such-id"]) == 1

    assert bodies(await broker.fetch(["q"], 10, 0)) == [b"back"]
    assert [d.body for d in await broker.dead_letters()] == [b"keep"]
    assert (await counts(broker, "q")).dead == 1


async def test_purge_dead_deletes_the_dead_letters_of_a_queue_or_all(broker: Broker) -> None:
    await dead_letter_each(broker, "q", b"q1", b"q2")
    await dead_letter_each(broker, "r", b"r1")

    assert await broker.purge_dead("q") == 2
    assert [d.body for d in await broker.dead_letters()] == [b"r1"]

    assert await broker.purge_dead() == 1
    assert await broker.dead_letters() == []
    assert await broker.requeue_dead() == 0
