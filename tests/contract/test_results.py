"""The broker's own result store (``result_store()``): keyed by task id, kept for a ttl."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import pytest

from hurtle.results import ResultStore

from .support import CLOCK_SLACK, WAIT_LIMIT, Brokers, eventually

LONG_TTL = 3600.0
MANY = 1000  # waiters at once: ten times redis-py's default pool


async def test_a_stored_result_is_read_back_by_task_id(results: ResultStore) -> None:
    await results.store([("t1", b'{"value":1}'), ("t2", b'{"value":2}')], LONG_TTL)

    assert await results.get("t1") == b'{"value":1}'
    assert await results.get("t2") == b'{"value":2}'
    assert await results.get("never-stored") is None


async def test_storing_a_result_again_overwrites_it(results: ResultStore) -> None:
    await results.store([("t1", b"first run")], LONG_TTL)

    await results.store([("t1", b"rerun")], LONG_TTL)

    assert await results.get("t1") == b"rerun"


async def test_a_result_is_gone_once_its_ttl_passed(results: ResultStore) -> None:
    await results.store([("short", b"brief")], 0.3)
    await results.store([("long", b"kept")], LONG_TTL)

    async def expired() -> bool:
        return await results.get("short") is None

    await eventually(expired, "the short-lived result to expire")

    assert await results.get("long") == b"kept"


async def test_forget_deletes_results_at_once(results: ResultStore) -> None:
    await results.store([("t1", b"1"), ("t2", b"2"), ("t3", b"3")], LONG_TTL)

    await results.forget(["t1", "t2", "never-stored"])

    assert [await results.get(t) for t in ("t1", "t2", "t3")] == [None, None, b"3"]


async def test_wait_returns_a_result_stored_meanwhile_by_another_task(
    results: ResultStore, brokers: Brokers
) -> None:
    writer = (await brokers.open()).result_store()
    assert writer is not None
    waiting = asyncio.create_task(results.wait("t1", 10.0))
    await asyncio.sleep(0)  # let the wait start

    await asyncio.create_task(writer.store([("t1", b"done")], LONG_TTL))

    assert await waiting == b"done"


async def test_wait_gives_up_with_none_after_its_timeout(results: ResultStore) -> None:
    started = time.monotonic()

    assert await results.wait("never-stored", 0.2) is None
    assert time.monotonic() - started >= 0.2 - CLOCK_SLACK


async def test_a_thousand_waiters_gathered_at_once_all_get_their_results_with_no_warning(
    results: ResultStore, brokers: Brokers, caplog: pytest.LogCaptureFixture
) -> None:
    writer = (await brokers.open()).result_store()
    assert writer is not None
    ids = [f"t{i}" for i in range(MANY)]
    await writer.store([(i, i.encode()) for i in ids[:100]], LONG_TTL)  # finished before anyone waits
    caplog.set_level(logging.WARNING)

    waiting = asyncio.gather(*(results.wait(i, WAIT_LIMIT) for i in ids))
    for start in range(100, MANY, 100):  # the rest while they wait, in batches, as a worker flushes
        await writer.store([(i, i.encode()) for i in ids[start : start + 100]], LONG_TTL)

    assert await waiting == [i.encode() for i in ids]
    assert [record.getMessage() for record in caplog.records] == []


async def test_many_waiters_are_looked_up_together_not_each_on_its_own(
    results: ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = 0
    get, get_many = results.get, results.get_many

    async def counted_get(task_id: str) -> bytes | None:
        nonlocal lookups
        lookups += 1
        return await get(task_id)

    async def counted_get_many(task_ids: Sequence[str]) -> dict[str, bytes]:
        nonlocal lookups
        lookups += 1
        return await get_many(task_ids)

    monkeypatch.setattr(results, "get", counted_get)
    monkeypatch.setattr(results, "get_many", counted_get_many)

    assert await asyncio.gather(*(results.wait(f"never-{i}", 0.3) for i in range(MANY))) == [None] * MANY
    # A poller looks every 1 ms doubling to 50 ms: about 10 lookups in 0.3 s for
    # all of them (a store that notifies needs none), never one per waiter.
    assert lookups < 50


async def test_waiters_that_time_out_or_are_cancelled_leave_nothing_behind_and_the_rest_get_theirs(
    results: ResultStore, brokers: Brokers
) -> None:
    writer = (await brokers.open()).result_store()
    assert writer is not None
    running_before = asyncio.all_tasks()
    cancelled = [asyncio.create_task(results.wait(f"c{i}", WAIT_LIMIT)) for i in range(10)]
    impatient = [asyncio.create_task(results.wait(f"i{i}", 0.1)) for i in range(10)]
    patient = [asyncio.create_task(results.wait(f"p{i}", WAIT_LIMIT)) for i in range(10)]

    assert await asyncio.gather(*impatient) == [None] * 10
    for task in cancelled:
        task.cancel()
    outcomes = await asyncio.gather(*cancelled, return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    await writer.store([(f"p{i}", b"done") for i in range(10)], LONG_TTL)

    assert await asyncio.gather(*patient) == [b"done"] * 10
    assert asyncio.all_tasks() == running_before  # no one waits: nothing of the store's runs
