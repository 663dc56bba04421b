"""Sets in record stores (``RecordStore.gather``): what a chord counts its members with.

The same specification for every broker that keeps records. Each member keeps
its first value; the count moves once per member however often it is added,
and two processes adding the last two members at once see different counts.
"""

from __future__ import annotations

import asyncio

from hurtle.records import RecordStore

from .test_records import LONG_TTL, RecordStores, records, stores

__all__ = ["records", "stores"]  # the fixtures, shared with test_records


async def test_each_new_member_is_counted_once(records: RecordStore) -> None:
    assert await records.gather("set", 0, b"a", LONG_TTL) == (True, 1)
    assert await records.gather("set", 1, b"b", LONG_TTL) == (True, 2)

    assert await records.gather("set", 0, b"a again", LONG_TTL) == (False, 2)


async def test_a_member_keeps_its_first_value(stores: RecordStores) -> None:
    first, second = stores.open(), stores.open()
    await first.gather("set", 3, b"first", LONG_TTL)

    await second.gather("set", 3, b"second", LONG_TTL)

    assert await first.gathered("set") == {3: b"first"}


async def test_gathered_gives_every_member_by_index_and_nothing_of_other_sets(records: RecordStore) -> None:
    await records.gather("set", 2, b"two", LONG_TTL)
    await records.gather("set", 10, b"ten", LONG_TTL)
    await records.gather("set-b", 0, b"other", LONG_TTL)
    await records.gather("se", 0, b"prefix", LONG_TTL)

    assert await records.gathered("set") == {2: b"two", 10: b"ten"}
    assert await records.gathered("nothing") == {}


async def test_members_added_at_once_from_many_processes_see_each_count_once(stores: RecordStores) -> None:
    processes = [stores.open() for _ in range(4)]
    total = 40

    counts = await asyncio.gather(*(
        processes[i % len(processes)].gather("race", i, str(i).encode(), LONG_TTL) for i in range(total)
    ))

    assert sorted(count for _, count in counts) == list(range(1, total + 1))
    assert await processes[0].gathered("race") == {i: str(i).encode() for i in range(total)}


async def test_delete_removes_a_set_and_its_members(records: RecordStore) -> None:
    await records.gather("set", 0, b"a", LONG_TTL)
    await records.gather("set", 1, b"b", LONG_TTL)

    await records.delete(["set"])

    assert await records.gathered("set") == {}
    assert await records.gather("set", 0, b"new", LONG_TTL) == (True, 1)


async def test_gather_many_answers_each_item_as_if_it_were_alone(records: RecordStore) -> None:
    await records.gather("a", 0, b"first", LONG_TTL)

    answers = await records.gather_many([
        ("a", 1, b"a1", LONG_TTL), ("b", 0, b"b0", LONG_TTL), ("a", 0, b"again", LONG_TTL),
        ("a", 2, b"a2", LONG_TTL), ("b", 0, b"b0 again", LONG_TTL),
    ])

    assert answers == [(True, 2), (True, 1), (False, 2), (True, 3), (False, 1)]
    assert await records.gathered("a") == {0: b"first", 1: b"a1", 2: b"a2"}
    assert await records.gathered("b") == {0: b"b0"}


async def test_batches_from_many_processes_at_once_see_each_count_once(stores: RecordStores) -> None:
    processes = [stores.open() for _ in range(4)]
    total = 40
    batches = [[("race", i, b"x", LONG_TTL) for i in range(p, total, 4)] for p in range(4)]

    sent = (store.gather_many(batch) for store, batch in zip(processes, batches, strict=True))
    answers = await asyncio.gather(*sent)

    assert sorted(count for batch in answers for _, count in batch) == list(range(1, total + 1))
