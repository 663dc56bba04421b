"""Stopping a worker's duties: a task that swallows a cancel is cancelled again until it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from hurtle.loops import cancel_all


async def test_a_task_that_swallows_its_first_cancel_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0

    async def duty() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as a client library that turns a cancel into an error a loop catches

    task = asyncio.create_task(duty())
    await asyncio.sleep(0)
    await cancel_all([task], patience=30.0)

    assert task.cancelled() and swallowed == 1


async def test_a_task_that_never_ends_is_named_and_left_after_the_patience(
    caplog: pytest.LogCaptureFixture,
) -> None:
    give_up = asyncio.Event()

    async def stubborn() -> None:
        while not give_up.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn(), name="stubborn-duty")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="hurtle.worker"):
        await cancel_all([task], patience=0.05)

    assert not task.done()
    assert "would not end when cancelled: stubborn-duty" in caplog.text
    give_up.set()
    task.cancel()
    await task
