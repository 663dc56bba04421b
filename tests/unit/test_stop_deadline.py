"""A stop that hangs ends the process at its deadline, saying what was still awaited."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hurtle.worker import process


class Ended(Exception):
    pass


class Stopped:
    """A consumer asked to stop at once."""

    async def stop_requested(self) -> None:
        return None


async def test_a_stop_past_its_deadline_names_what_hangs_and_ends_the_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    codes: list[int] = []

    def end(code: int) -> None:
        codes.append(code)
        raise Ended

    monkeypatch.setattr(process.os, "_exit", end)
    monkeypatch.setattr(process.logging, "shutdown", lambda: None)

    async def closes_for_ever() -> None:
        await asyncio.Event().wait()

    hung = asyncio.create_task(closes_for_ever(), name="store-close")
    with caplog.at_level(logging.ERROR, logger="hurtle.worker"), pytest.raises(Ended):
        await process.stop_deadline(Stopped(), 0.01)  # type: ignore[arg-type]
    hung.cancel()

    assert codes == [process.EXIT_STOP_HUNG]
    (record,) = caplog.records
    assert "stopping took more than 0.01s" in record.getMessage()
    assert "store-close at" in record.getMessage() and "closes_for_ever" in record.getMessage()


async def test_no_deadline_runs_before_a_stop_is_asked_for() -> None:
    class Running:
        async def stop_requested(self) -> None:
            await asyncio.Event().wait()

    deadline = asyncio.create_task(process.stop_deadline(Running(), 0.0))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not deadline.done()
    deadline.cancel()
