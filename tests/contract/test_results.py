"""The broker's own result store (``result_store()``): keyed by task id, kept for a ttl."""

from __future__ import annotations

import asyncio
import time

from hurtle.results import ResultStore

from .support import CLOCK_SLACK, Brokers, eventually

LONG_TTL = 3600.0


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
