"""The record-store steps unique tasks, cancel and progress are made of, on every
store that keeps records (RabbitMQ keeps none: skipped, saying so). Each test
opens several stores on one backing store, as separate processes would."""

from __future__ import annotations

import asyncio

import msgspec

from hurtle.progress import PREFIX, Progress, decode_progress, make_progress, read_progress
from hurtle.schedule.cancel import CancelWatch, cancel_requested, request_cancel
from hurtle.schedule.unique import claim, release

from .test_records import LONG_TTL, RecordStores, stores  # noqa: F401 - the fixture


async def test_of_many_claims_of_one_key_at_once_exactly_one_wins(stores: RecordStores) -> None:  # noqa: F811
    senders = [stores.open() for _ in range(4)]
    ids = [f"task-{n}" for n in range(40)]

    holders = await asyncio.gather(
        *(claim(senders[n % 4], "key:user:42", task_id, LONG_TTL) for n, task_id in enumerate(ids))
    )

    winners = [task_id for task_id, holder in zip(ids, holders, strict=True) if holder is None]
    assert len(winners) == 1
    assert set(holders) == {None, winners[0]}


async def test_a_released_key_is_claimed_again_and_a_stale_release_frees_nothing(
    stores: RecordStores,  # noqa: F811
) -> None:
    sender, worker = stores.open(), stores.open()
    assert await claim(sender, "id:report", "first", LONG_TTL) is None

    await release(worker, "id:report", "first")
    assert await claim(sender, "id:report", "second", LONG_TTL) is None

    await release(worker, "id:report", "first")  # an old holder's give-back, late
    assert await claim(sender, "id:report", "third", LONG_TTL) == "second"


async def test_a_key_whose_holder_never_finishes_is_free_after_unique_for(
    stores: RecordStores,  # noqa: F811
) -> None:
    sender = stores.open()
    assert await claim(sender, "key:k", "lost", 0.3) is None
    while await claim(sender, "key:k", "next", LONG_TTL) == "lost":
        await asyncio.sleep(0.05)  # waiting for the store to expire the claim, bounded by pytest's timeout
    assert await claim(sender, "key:k", "later", LONG_TTL) == "next"


async def test_cancels_at_once_from_many_processes_all_land_and_a_watch_sees_them_once(
    stores: RecordStores,  # noqa: F811
) -> None:
    worker = CancelWatch(stores.open)
    assert await worker.look() == set()
    ids = [f"task-{n}" for n in range(12)]

    await asyncio.gather(*(request_cancel(stores.open(), [task_id], LONG_TTL) for task_id in ids))

    assert await worker.look() == set(ids)
    assert await worker.look() == set()  # nothing new
    assert worker.ids == set(ids)
    assert await cancel_requested(stores.open(), "task-3")
    assert not await cancel_requested(stores.open(), "task-99")


async def test_a_cancel_mark_expires(stores: RecordStores) -> None:  # noqa: F811
    store = stores.open()
    await request_cancel(store, ["short"], 0.2)
    while await cancel_requested(store, "short"):
        await asyncio.sleep(0.05)
    assert not await cancel_requested(stores.open(), "short")


async def test_a_progress_record_reads_back_as_it_was_reported(stores: RecordStores) -> None:  # noqa: F811
    writer, reader = stores.open(), stores.open()
    report = make_progress(250, 500, "rows ✓")

    await writer.put(PREFIX + "t", msgspec.json.encode(report), LONG_TTL)

    assert await read_progress(reader, "t") == report
    assert await read_progress(reader, "other") is None
    assert decode_progress(b"not json") is None
    assert Progress(done=1).fraction is None
