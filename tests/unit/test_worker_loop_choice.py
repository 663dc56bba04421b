"""Which event loop a worker process runs (``loops.worker_loop``), from the tasks of its queues."""

from __future__ import annotations

import sys

import pytest

import hurtle
from hurtle.loops import new_event_loop, worker_loop
from hurtle.worker.fetch_groups import runs_async_tasks

app = hurtle.App("memory://loop-choice")


@app.task(queue="sync")
def add(x: int, y: int) -> int:
    return x + y


@app.task(queue="async")
async def fetch(url: str) -> int:
    return 200


@app.task(queue="both")
def both_sync() -> None: ...


@app.task(queue="both")
async def both_async() -> None: ...


@pytest.mark.parametrize(
    ("queues", "runs_async"),
    [(["sync"], False), (["async"], True), (["sync", "async"], True), (["both"], True),
     (["nobody-s"], True), (["sync", "nobody-s"], True)],
)
def test_a_worker_may_run_async_tasks_when_a_queue_holds_them_or_is_unknown(
    queues: list[str], runs_async: bool
) -> None:
    assert runs_async_tasks(app.tasks.values(), queues) is runs_async


def test_an_app_of_sync_tasks_alone_runs_no_async_task_on_any_queue() -> None:
    synced = hurtle.App("memory://loop-choice-sync")

    @synced.task(queue="s")
    def only() -> None: ...

    assert runs_async_tasks(synced.tasks.values(), ["s", "default", "nobody-s"]) is False


def test_auto_is_uvloop_where_async_tasks_run_and_asyncio_where_all_are_sync() -> None:
    assert worker_loop("auto", runs_async=True) == "uvloop"
    assert worker_loop("auto", runs_async=False) == "asyncio"


@pytest.mark.parametrize("runs_async", [True, False])
def test_a_named_loop_is_the_loop(runs_async: bool) -> None:
    assert worker_loop("asyncio", runs_async) == "asyncio"
    assert worker_loop("uvloop", runs_async) == "uvloop"


def test_without_uvloop_auto_is_asyncio_and_a_new_loop_is_asyncio_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert worker_loop("auto", runs_async=True) == "asyncio"
    loop = new_event_loop("uvloop")
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()


def test_loop_uvloop_without_uvloop_is_one_line_and_exit_code_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from hurtle.cli import cli
    from hurtle.cli import worker as worker_cli

    monkeypatch.setattr(worker_cli, "uvloop_installed", lambda: False)
    result = CliRunner().invoke(cli, ["worker", "tasks", "--loop", "uvloop"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.endswith("--loop uvloop: uvloop is not installed: pip install 'hurtle[uvloop]'")
