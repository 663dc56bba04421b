"""Workflows while worker processes are SIGKILLed, on SQLite and Redis.

A chord of 1,000 no-op members and a chain of 50 steps run under a supervisor
with two processes; the test kills one of its processes at several points of
the run (the supervisor forks a new one). Whatever a dead process held runs
again: a member counted before the kill is counted once, a step sent twice
runs once, and the chord's callback runs exactly once, with all 1,000 results.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hurtle
from hurtle.record_source import open_records
from hurtle.workflows.advance import gather_key
from hurtle.workflows.wire import ChainNode, GroupNode
from tests.integration.conftest import Workers, dead_letters, lines, stats, wait_until
from tests.redis_server import unique_redis_url

MEMBERS = 1000
STEPS = 50
BROKERS: dict[str, Callable[[Path], str]] = {
    "sqlite": lambda tmp: f"sqlite:///{tmp}/broker.db",
    "redis": lambda tmp: unique_redis_url(),
}


@pytest.fixture(params=sorted(BROKERS))
def flowapp(
    request: pytest.FixtureRequest, tmp_path: Path, worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    url = BROKERS[request.param](tmp_path)
    monkeypatch.setenv("HURTLE_BROKER", url)
    worker_env["HURTLE_BROKER"] = url
    sys.modules.pop("flowapp", None)
    import flowapp

    yield flowapp
    flowapp.app.close()
    sys.modules.pop("flowapp", None)


def kill_at(
    workers: Workers, supervisor: Any, reached: Callable[[int], bool], marks: list[int],
    finished: Callable[[], bool],
) -> int:
    """SIGKILL one of the supervisor's processes each time the work has ``reached``
    a mark; how many of the kills came before the work was ``finished``."""
    mid_run = 0
    for number, mark in enumerate(marks):
        wait_until(lambda m=mark: reached(m), f"progress to {mark}")  # type: ignore[misc]
        children = wait_until(lambda: workers.children(supervisor), "worker processes")
        before = not finished()
        os.kill(children[number % len(children)], signal.SIGKILL)
        mid_run += before
    return mid_run


def gathered(url: str, group: str) -> int:
    async def count() -> int:
        store = open_records(url, None)
        assert store is not None
        try:
            return len(await store.gathered(gather_key(group)))
        finally:
            await store.close()

    return asyncio.run(count())


def test_a_chord_of_1000_members_calls_back_once_with_every_result_while_workers_are_killed(
    flowapp: Any, workers: Workers, marks: Path
) -> None:
    members = hurtle.group(flowapp.member.s(i) for i in range(MEMBERS))
    handle = hurtle.chord(members, flowapp.collect.s()).send()
    assert isinstance(handle.node, ChainNode) and isinstance(handle.node.nodes[0], GroupNode)
    group = handle.node.nodes[0].id
    url = str(flowapp.app.broker_url.reveal())
    supervisor = workers.start("-p", "2", "-c", "20", app="flowapp")

    def called_back() -> bool:
        return bool(lines(marks / "callback"))

    mid_run = kill_at(workers, supervisor, lambda m: gathered(url, group) >= m, [100, 400, 700], called_back)

    assert handle.result(timeout=120.0) == MEMBERS
    wait_until(lambda: stats(url).pending == 0, "nothing left pending")
    assert lines(marks / "callback") == [f"{MEMBERS} True"]
    assert dead_letters(url) == []
    assert workers.log().count("was killed by signal 9") == 3
    assert mid_run >= 2, "the members ran faster than the kills: nothing was tested"


def test_a_chain_of_50_steps_reaches_its_end_while_workers_are_killed(
    flowapp: Any, workers: Workers, marks: Path
) -> None:
    handle = hurtle.chain(flowapp.step.si(0), *(flowapp.step.s() for _ in range(STEPS - 1))).send()
    steps = handle.children
    supervisor = workers.start("-p", "2", "-c", "20", app="flowapp")

    def done(count: int) -> bool:  # the first ``count`` steps finished (they finish in order)
        return steps[count - 1].status() == "succeeded"

    def finished() -> bool:
        return handle.status() == "succeeded"

    mid_run = kill_at(workers, supervisor, done, [10, 25, 40], finished)

    assert handle.result(timeout=120.0) == STEPS
    assert [s.result() for s in steps] == list(range(1, STEPS + 1))
    assert dead_letters(str(flowapp.app.broker_url.reveal())) == []
    assert workers.log().count("was killed by signal 9") == 3
    assert mid_run >= 2, "the chain ran faster than the kills: nothing was tested"
