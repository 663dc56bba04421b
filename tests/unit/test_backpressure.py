"""Backpressure: a worker whose results cannot be written stops fetching at a bound,
holds its leases, and loses nothing (memory broker, a result store that refuses)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hurtle import App
from hurtle.brokers.memory import MemoryBroker
from hurtle.client import Connection
from hurtle.errors import BrokerError
from hurtle.results import ResultStore
from hurtle.worker import settle_buffer
from hurtle.worker.consumer import EXIT_BROKER_LOST, EXIT_OK, Consumer, WorkerConfig
from hurtle.worker.settle_buffer import held_limit

from .support import MakeApp, counts

WAIT_LIMIT = 20.0  # seconds: a bound on every wait, never expected to be reached
STOPPED = "results cannot be written: stopped fetching"
RESUMED = "results written again: fetching resumed"


class RefusingStore(ResultStore):
    """Refuses every write until ``open``; reads, and writes once open, go to ``inner``."""

    def __init__(self, inner: ResultStore, *, delay: float = 0.0) -> None:
        self.inner = inner
        self.open = False
        self.delay = delay
        self.refused = 0

    async def store(self, results: Sequence[tuple[str, bytes]], ttl: float) -> None:
        await asyncio.sleep(self.delay)
        if not self.open:
            self.refused += 1
            raise BrokerError("the result store is down")
        await self.inner.store(results, ttl)

    async def get(self, task_id: str) -> bytes | None:
        return await self.inner.get(task_id)

    async def forget(self, task_ids: Sequence[str]) -> None:
        await self.inner.forget(task_ids)

    async def close(self) -> None:
        await self.inner.close()


async def until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_LIMIT
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {WAIT_LIMIT:.0f}s waiting for {what}"
        await asyncio.sleep(0.01)  # the polling interval, not a wait for the condition
    return value


def start(
    app: App, store: ResultStore, broker: MemoryBroker | None = None, **config: Any
) -> tuple[Consumer, asyncio.Task[int]]:
    """A burst-mode consumer on the app's memory broker, with ``store`` for results."""
    broker = broker or MemoryBroker(app.broker_url, visibility_timeout=app.visibility_timeout)
    settings = WorkerConfig(burst=True, fetch_timeout=0.05, **config)
    consumer = Consumer(app, Connection(broker, store), settings)
    return consumer, asyncio.create_task(consumer.run())


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes tried again every 0.1 s, not every second: the same steps, sooner."""
    monkeypatch.setattr(settle_buffer, "RETRY_EVERY", 0.1)


def said(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_worker_whose_results_cannot_be_written_runs_exactly_its_bound_then_waits_and_loses_nothing(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level("INFO", logger="hurtle.worker")
    # Given 400 tasks, leases of 1 s (renewed every 0.33 s, so a loaded machine's slow
    # loop cannot let one expire), and a result store that refuses every write
    app = make_app(visibility_timeout=1.0)
    runs: Counter[int] = Counter()

    if kind == "async":
        @app.task(name="note")
        async def note(i: int) -> int:
            runs[i] += 1
            return i
    else:
        @app.task(name="note")
        def note(i: int) -> int:
            runs[i] += 1
            return i

    handles = note.send_many([(i,) for i in range(400)])
    store = RefusingStore(MemoryBroker(app.broker_url).result_store())
    # When a worker of 10 slots, allowed 25 finished tasks unwritten, runs
    consumer, run = start(app, store, concurrency=10, threads=10, max_unsettled=25)
    # Then it runs 10 + 25 tasks, says once that it stopped fetching, and fetches nothing more
    await until(lambda: said(caplog, STOPPED), "the worker to say it stopped fetching")
    # (a sync task counted as running may not have reached its first line yet)
    await until(lambda: sum(runs.values()) >= 35, "the 35 tasks it holds to run")
    assert sum(runs.values()) == 35
    (finished, running), = re.findall(r"with (\d+) finished tasks unsettled and (\d+) running", caplog.text)
    assert int(finished) + int(running) == 35
    refused = store.refused
    await until(lambda: store.refused >= refused + 12, "twelve more tries to write (1.2 s)")
    assert sum(runs.values()) == 35 and said(caplog, STOPPED) == 1
    # And it holds its 35 leases past their 1 s (the heartbeat extends them): none came back
    stats = await counts(app)
    assert (stats.ready, stats.in_flight) == (365, 35)
    # When the store comes back, every task runs, once, and every result is there
    store.open = True
    assert await asyncio.wait_for(run, WAIT_LIMIT) == EXIT_OK
    assert runs == Counter(range(400))
    assert [await h.result_async(timeout=5.0) for h in handles] == list(range(400))
    assert said(caplog, RESUMED) == 1 and said(caplog, STOPPED) == 1
    assert said(caplog, "writing acks and results failed") == 1, "one line for the outage, not one per try"
    assert consumer.counters.succeeded == 400


async def test_a_slow_result_store_holds_fetching_back_without_calling_it_a_failure(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="hurtle.worker")
    # Given a result store that takes 20 ms a write, and a worker allowed 5 finished tasks unwritten
    app = make_app()

    held: list[int] = []

    @app.task
    async def noop(i: int) -> int:
        held.append(len(consumer._in_flight))
        return i

    handles = noop.send_many([(i,) for i in range(200)])
    store = RefusingStore(MemoryBroker(app.broker_url).result_store(), delay=0.02)
    store.open = True
    consumer, run = start(app, store, concurrency=10, max_unsettled=5)
    # Then it never holds more than 15 messages, finishes everything, and warns of nothing
    assert await asyncio.wait_for(run, WAIT_LIMIT) == EXIT_OK
    assert max(held) <= 15
    assert [await h.result_async(timeout=5.0) for h in handles] == list(range(200))
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


async def test_a_broker_lost_while_fetching_is_held_back_ends_the_worker_as_an_outage(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="hurtle.worker")
    # Given a worker held back by a result store that refuses every write
    app = make_app()

    @app.task
    async def noop(i: int) -> int:
        return i

    noop.send_many([(i,) for i in range(50)])
    broker = MemoryBroker(app.broker_url)
    store = RefusingStore(MemoryBroker(app.broker_url).result_store())
    _, run = start(app, store, broker, concurrency=5, max_unsettled=5, max_disconnect=0.3)
    await until(lambda: said(caplog, STOPPED), "the worker to say it stopped fetching")

    # When its broker goes away too
    async def unreachable(queues: Sequence[str] | None = None) -> Any:
        raise BrokerError("the broker is down")

    broker.stats = unreachable  # type: ignore[method-assign]
    # Then it notices without fetching, and past --max-disconnect exits 69 as any outage does
    assert await asyncio.wait_for(run, WAIT_LIMIT) == EXIT_BROKER_LOST
    assert "the broker is down" in caplog.text


async def test_a_worker_held_back_stops_at_once_when_asked(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="hurtle.worker")
    # Given a worker held back by a result store that refuses writes, tried every 5 s
    monkeypatch.setattr(settle_buffer, "RETRY_EVERY", 5.0)
    app = make_app()
    runs: list[int] = []

    @app.task
    async def noop(i: int) -> int:
        runs.append(i)
        return i

    noop.send_many([(i,) for i in range(50)])
    store = RefusingStore(MemoryBroker(app.broker_url).result_store())
    consumer, run = start(app, store, concurrency=5, max_unsettled=5)
    await until(lambda: len(runs) == 10 and store.refused, "10 tasks to run and a write to fail")
    # When it is asked to stop
    asked = time.monotonic()
    consumer.stop()
    # Then it stops without waiting for the next try, and loses nothing: what it
    # held stays leased (it comes back when the leases expire), the rest is ready
    assert await asyncio.wait_for(run, WAIT_LIMIT) == EXIT_OK
    assert time.monotonic() - asked < 2.5, "stopping waited for the next try to write"
    stats = await counts(app)
    assert (stats.ready, stats.in_flight) == (40, 10)
    assert not said(caplog, RESUMED), "stopping is not resuming"


def test_a_process_may_hold_its_slots_and_four_finished_tasks_a_slot_at_least_256() -> None:
    assert held_limit(8, None) == 8 + 256
    assert held_limit(100, None) == 100 + 400
    assert held_limit(10, 25) == 35
