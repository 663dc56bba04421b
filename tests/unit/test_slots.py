"""Slots: capacity with high and low water marks."""

from __future__ import annotations

import asyncio

import pytest

from hurtle.worker.slots import Slots


async def settle() -> None:
    """Let every ready callback run, so a waiter that can wake has woken."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_capacity_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Slots(0)


@pytest.mark.parametrize(
    ("capacity", "refill", "expected"),
    [(100, None, 10), (5, None, 1), (10, 4, 4), (10, 50, 10), (10, 0, 1)],
)
def test_the_refill_mark_defaults_to_a_tenth_and_stays_within_one_and_capacity(
    capacity: int, refill: int | None, expected: int
) -> None:
    assert Slots(capacity, refill).refill == expected


async def test_free_slots_go_down_as_tasks_start_and_up_as_they_finish() -> None:
    slots = Slots(10)

    slots.take(3)
    assert (slots.busy, slots.free) == (3, 7)
    slots.give(2)
    assert (slots.busy, slots.free) == (1, 9)


async def test_a_fetcher_waits_until_refill_slots_are_free_then_learns_how_many() -> None:
    slots = Slots(10, refill=4)
    slots.take(7)  # 3 free: below the low water mark
    waiter = asyncio.create_task(slots.wait_for_room())

    await settle()
    assert not waiter.done()

    slots.give(1)  # 4 free: at the mark
    assert await waiter == 4


async def test_room_stays_open_until_free_slots_drop_below_the_mark() -> None:
    slots = Slots(10, refill=4)

    slots.take(6)
    assert await slots.wait_for_room() == 4
    slots.take(1)
    waiter = asyncio.create_task(slots.wait_for_room())
    await settle()
    assert not waiter.done()

    slots.give(7)
    assert await waiter == 10


async def test_wait_idle_returns_once_every_slot_is_given_back() -> None:
    slots = Slots(4)
    slots.take(2)
    idle = asyncio.create_task(slots.wait_idle())

    slots.give(1)
    await settle()
    assert not idle.done()

    slots.give(1)
    await asyncio.wait_for(idle, 1.0)


async def test_wake_releases_a_waiting_fetcher_so_it_can_see_the_worker_stop() -> None:
    slots = Slots(2, refill=1)
    slots.take(2)
    waiter = asyncio.create_task(slots.wait_for_room())
    await settle()
    assert not waiter.done()

    slots.wake()

    assert await waiter == 0


async def test_a_resized_capacity_is_what_fetching_waits_for() -> None:
    slots = Slots(8, refill=1)
    slots.take(8)
    slots.resize(4)  # shrunk below what runs: nothing more starts until they are under 4
    slots.give(4)
    assert slots.free == 0
    waiter = asyncio.ensure_future(slots.wait_for_room())
    await settle()
    assert not waiter.done()

    slots.resize(16)  # grown: room at once
    await settle()

    assert waiter.done() and waiter.result() == 12


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Slots(4).resize(0)
