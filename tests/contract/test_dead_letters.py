"""The dead-letter store: list newest first, requeue (all or by id), purge."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hurtle.brokers import Broker, Requeued
from hurtle.errors import BrokerError

from .support import bodies, counts, dead_letter_each, fetch_one, take_bodies


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


async def test_a_dead_letter_carries_the_id_its_message_was_sent_with(broker: Broker) -> None:
    sent = await dead_letter_each(broker, "q", b"first", b"second")

    letters = await broker.dead_letters()

    assert [d.message_id for d in letters] == sent[::-1]


async def test_requeue_dead_by_id_takes_task_ids_as_well_as_dead_letter_ids(broker: Broker) -> None:
    keep, by_task_id, _ = await dead_letter_each(broker, "q", b"keep", b"by task id", b"by dead id")
    by_dead_id = (await broker.dead_letters())[0]
    assert by_dead_id.body == b"by dead id"

    requeued = await broker.requeue_dead_by_id([by_task_id, by_dead_id.id])

    assert requeued == Requeued(2, (), requeued.task_ids)
    assert sorted(requeued.task_ids) == sorted([by_task_id, by_dead_id.message_id])
    assert await take_bodies(broker, "q", 2) == [b"by dead id", b"by task id"]
    assert [d.message_id for d in await broker.dead_letters()] == [keep]


async def test_requeue_dead_by_id_tells_each_task_id_before_its_dead_letter_goes_back(broker: Broker) -> None:
    keep, by_task_id, by_dead_id = await dead_letter_each(broker, "q", b"keep", b"by task id", b"by dead id")
    letter = (await broker.dead_letters())[0]
    told: list[str] = []
    back_before_told: list[int] = []

    async def before_move(task_ids: Sequence[str]) -> None:
        (queue,) = await broker.stats(["q"])
        back_before_told.append(queue.ready - len(told))  # only those told before may be back
        told.extend(task_ids)

    requeued = await broker.requeue_dead_by_id([by_task_id, letter.id, "no-such-id"], before_move)

    assert requeued.count == 2 and requeued.unknown == ("no-such-id",)
    assert sorted(told) == sorted([by_task_id, by_dead_id])
    assert set(back_before_told) == {0}, "a dead letter went back before its task id was told"
    assert await take_bodies(broker, "q", 2) == [b"by dead id", b"by task id"]
    assert [d.message_id for d in await broker.dead_letters()] == [keep]


async def test_requeue_dead_tells_every_task_id_before_its_dead_letter_goes_back(broker: Broker) -> None:
    sent = await dead_letter_each(broker, "q", b"q1", b"q2") + await dead_letter_each(broker, "r", b"r1")
    told: list[str] = []
    back_before_told: list[int] = []

    async def before_move(task_ids: Sequence[str]) -> None:
        back = sum(queue.ready for queue in await broker.stats(["q", "r"]))
        back_before_told.append(back - len(told))
        told.extend(task_ids)

    assert await broker.requeue_dead(None, before_move) == 3

    assert sorted(told) == sorted(sent)
    assert set(back_before_told) == {0}, "a dead letter went back before its task id was told"
    assert await broker.dead_letters() == []


async def test_requeue_dead_moves_only_what_was_dead_when_it_began(broker: Broker) -> None:
    await dead_letter_each(broker, "q", b"dead before")
    later: list[str] = []

    async def a_worker_dead_letters_another_meanwhile(task_ids: Sequence[str]) -> None:
        if not later:
            later.extend(await dead_letter_each(broker, "q", b"dead meanwhile"))

    assert await broker.requeue_dead(None, a_worker_dead_letters_another_meanwhile) == 1

    assert [d.message_id for d in await broker.dead_letters()] == later
    assert await take_bodies(broker, "q", 1) == [b"dead before"]


async def test_a_requeue_whose_before_move_fails_moves_nothing(broker: Broker) -> None:
    (sent,) = await dead_letter_each(broker, "q", b"stays dead")

    async def result_store_down(task_ids: Sequence[str]) -> None:
        raise BrokerError("the result store is unreachable")

    with pytest.raises(BrokerError):
        await broker.requeue_dead_by_id([sent], result_store_down)

    assert [d.message_id for d in await broker.dead_letters()] == [sent]
    assert bodies(await broker.fetch(["q"], 10, 0)) == []


async def test_requeue_dead_by_id_names_the_ids_that_matched_no_dead_letter(broker: Broker) -> None:
    (sent,) = await dead_letter_each(broker, "q", b"back")
    (letter,) = await broker.dead_letters()
    # Ids shaped like each broker's own dead-letter ids, but naming nothing.
    strangers = ["no-such-id", "12345", "q:0-1", "q:0123456789abcdef0123", "nosuchqueue:1-1"]

    requeued = await broker.requeue_dead_by_id([strangers[0], sent, *strangers[1:]])

    assert requeued == Requeued(1, tuple(strangers), (sent,))
    assert bodies(await broker.fetch(["q"], 10, 0)) == [b"back"]
    assert await broker.dead_letters() == []
    assert (await broker.requeue_dead_by_id([sent, letter.id])).unknown == (sent, letter.id)


async def test_a_dead_letter_named_twice_goes_back_once(broker: Broker) -> None:
    (sent,) = await dead_letter_each(broker, "q", b"once")
    (letter,) = await broker.dead_letters()

    assert await broker.requeue_dead_by_id([letter.id, sent, sent]) == Requeued(1, (), (sent,))

    assert bodies(await broker.fetch(["q"], 10, 0)) == [b"once"]
    assert await broker.dead_letters() == []


async def test_a_requeued_message_keeps_the_id_it_was_sent_with(broker: Broker) -> None:
    (sent,) = await dead_letter_each(broker, "q", b"again")
    await broker.requeue_dead_by_id([sent])

    await broker.dead_letter(await fetch_one(broker, "q"), "bad again")

    assert [d.message_id for d in await broker.dead_letters()] == [sent]
    assert (await broker.requeue_dead_by_id([sent])).count == 1
