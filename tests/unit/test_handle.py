"""``app.handle(task_id)``: a task sent by another process, its result and its status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hurtle
import hurtle.testing

WAIT = 10.0  # seconds: a bound on every wait, never reached when hurtle is right

Apps = Callable[[], hurtle.App]


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    """``apps()``: another App on one SQLite file, as separate processes would have."""
    made: list[hurtle.App] = []

    def make() -> hurtle.App:
        made.append(hurtle.App(f"sqlite:///{tmp_path}/tasks.db"))
        return made[-1]

    yield make
    for app in made:
        app.close()


def test_another_app_reads_the_result_and_status_of_a_task_by_its_id(apps: Apps) -> None:
    sender, web = apps(), apps()  # the web app registers no task: the id is enough

    @sender.task
    def add(x: int, y: int) -> int:
        return x + y

    @sender.task(retries=0)
    def boom() -> None:
        raise ValueError("no")

    ok, bad = add.send(1, 2), boom.send()
    assert web.handle(ok.id).status() == "queued"

    hurtle.testing.drain(sender)

    assert web.handle(ok.id).result(timeout=WAIT) == 3
    assert web.handle(ok.id).status() == "succeeded"
    assert web.handle(bad.id).status() == "failed"
    with pytest.raises(hurtle.TaskFailed, match="ValueError: no"):
        web.handle(bad.id).result(timeout=WAIT)
    assert web.handle("never-sent").status() == "unknown"


async def test_status_reads_running_while_a_worker_runs_the_task(apps: Apps) -> None:
    sender, web = apps(), apps()
    started, finish = asyncio.Event(), asyncio.Event()

    @sender.task
    async def slow() -> str:
        started.set()
        await finish.wait()
        return "done"

    handle = await asyncio.to_thread(slow.send)
    status = web.handle(handle.id, slow.name).status  # the sync form, off the test's loop
    assert await asyncio.to_thread(status) == "queued"

    worker = asyncio.create_task(hurtle.testing.drain_async(sender))
    await asyncio.wait_for(started.wait(), WAIT)
    assert await asyncio.to_thread(status) == "running"

    finish.set()
    await asyncio.wait_for(worker, WAIT)
    assert await asyncio.to_thread(status) == "succeeded"
    assert await web.handle(handle.id).status_async() == "succeeded"


def test_a_handle_is_made_from_a_task_id_only(apps: Apps) -> None:
    app = apps()

    assert repr(app.handle("abc", "tasks.add")) == "<Handle tasks.add abc>"
    with pytest.raises(TypeError, match="a non-empty str"):
        app.handle(b"abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a non-empty str"):
        app.handle("")
