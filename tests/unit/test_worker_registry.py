"""The worker registry from inside a worker process: what its heartbeat record
says, that it holds no credentials, that a clean stop removes it, and that a
store that fails never touches the tasks."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from hurtle import App
from hurtle.observe.heartbeat import Heartbeat, hurtle_version, rss_bytes
from hurtle.observe.registry import (
    KEY_PREFIX,
    RECORD_VERSION,
    RunningTask,
    WorkerRecord,
    decode_record,
    encode_record,
    read_workers,
)
from hurtle.record_source import open_records
from hurtle.records import MemoryRecords, RecordStore
from hurtle.worker.consumer import Consumer, WorkerConfig
from hurtle.worker.process import registry, worker_connection

from .support import MakeApp

WAIT_LIMIT = 30.0  # seconds: a bound on every wait, never expected to be reached


async def eventually_true(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it returns True; fail after ``WAIT_LIMIT``."""
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class RunningWorker:
    """A consumer of ``app`` running on this loop inside the registry, until stopped."""

    def __init__(self, consumer: Consumer, run: asyncio.Task[int]) -> None:
        self.consumer = consumer
        self.run = run

    async def stop(self) -> None:
        self.consumer.stop()
        await asyncio.wait_for(self.run, WAIT_LIMIT)


@pytest.fixture
async def running(app: App) -> AsyncIterator[list[RunningWorker]]:  # stopped before the app closes
    started: list[RunningWorker] = []
    yield started
    for worker in started:
        if not worker.run.done():
            await worker.stop()


async def start_worker(app: App, running: list[RunningWorker], **config: object) -> RunningWorker:
    ready: asyncio.Future[Consumer] = asyncio.get_running_loop().create_future()

    async def serve() -> int:
        settings = {"fetch_timeout": 0.05, "registry_interval": 0.05, **config}
        async with worker_connection(app) as connection:
            consumer = Consumer(app, connection, WorkerConfig(**settings))  # type: ignore[arg-type]
            ready.set_result(consumer)
            async with registry(app, consumer, supervised=False):
                return await consumer.run()

    run = asyncio.create_task(serve())
    worker = RunningWorker(await ready, run)
    running.append(worker)
    return worker


async def workers_of(app: App) -> list[WorkerRecord]:
    store = open_records(app.broker_url, app.results_url)
    assert store is not None
    try:
        return await read_workers(store)
    finally:
        await store.close()


async def test_a_running_worker_lists_itself_with_its_slots_and_running_tasks(
    app: App, running: list[RunningWorker]
) -> None:
    # Each task's elapsed time is found where running.py looks for it, or never:
    # the wait below then times out.
    go_async, go_sync = asyncio.Event(), threading.Event()
    started: list[str] = []

    @app.task
    async def wait_on_loop() -> None:
        started.append("async")
        await go_async.wait()

    @app.task
    def wait_on_thread() -> None:
        started.append("sync")
        go_sync.wait(WAIT_LIMIT)

    on_loop, on_thread = await wait_on_loop.send_async(), await wait_on_thread.send_async()
    await start_worker(app, running, concurrency=7, threads=3)

    async def both_listed_as_started() -> bool:
        # A beat may list a task fetched but not yet begun (elapsed None): wait for one after.
        workers = await workers_of(app)
        running = workers[0].running if len(workers) == 1 else []
        return len(running) == 2 and all(task.elapsed is not None for task in running)

    try:
        await eventually_true(both_listed_as_started, "both tasks, started, in the worker's record")
        (record,) = await workers_of(app)
    finally:
        go_async.set()
        go_sync.set()

    assert (record.host, record.pid, record.supervisor_pid) == (socket.gethostname(), os.getpid(), None)
    assert record.queues == ["default"]
    assert (record.concurrency, record.threads) == (7, 3)
    assert (record.busy_async, record.busy_threads) == (1, 1)
    assert record.hurtle_version == hurtle_version()
    assert record.rss_bytes > 0
    assert record.beat_at >= record.started_at
    by_kind = {task.kind: task for task in record.running}
    assert (by_kind["async"].id, by_kind["async"].name) == (on_loop.id, wait_on_loop.name)
    assert (by_kind["sync"].id, by_kind["sync"].name) == (on_thread.id, wait_on_thread.name)
    assert sorted(started) == ["async", "sync"]


async def test_a_clean_stop_removes_the_record_at_once(app: App, running: list[RunningWorker]) -> None:
    worker = await start_worker(app, running, registry_interval=3600.0)  # the record would outlive the test

    async def listed() -> bool:
        return len(await workers_of(app)) == 1

    await eventually_true(listed, "the worker's record")

    await worker.stop()

    assert await workers_of(app) == []


async def test_an_interval_of_zero_writes_no_record(app: App, running: list[RunningWorker]) -> None:
    worker = await start_worker(app, running, registry_interval=0.0)
    ran = asyncio.Event()

    @app.task
    async def mark() -> None:
        ran.set()

    await mark.send_async()
    await asyncio.wait_for(ran.wait(), WAIT_LIMIT)  # the worker is up and consuming

    assert await workers_of(app) == []
    await worker.stop()


def test_the_record_holds_no_credentials_of_the_broker_or_the_result_store() -> None:
    password, results_password = "hunter2-broker-secret", "s3cret-results-pw"
    app = App(f"redis://admin:{password}@127.0.0.1:6379/0?prefix=registry-secrets",
              results=f"redis://keeper:{results_password}@127.0.0.1:6379/1")
    try:
        connection = app.client.new_connection()  # makes no connection
        consumer = Consumer(app, connection, WorkerConfig(queues=["default"]))
        data = encode_record(Heartbeat(MemoryRecords(), consumer, 5.0, 1).record())
    finally:
        app.close()

    for secret in (password, results_password, "admin", "keeper", "redis://", "6379"):
        assert secret.encode() not in data
    assert decode_record(data) is not None


class FailingStore(RecordStore):
    def __init__(self) -> None:
        self.puts = 0

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        self.puts += 1
        raise OSError("disk full")

    async def get_all(self, prefix: str) -> dict[str, bytes]:
        raise OSError("disk full")

    async def get(self, key: str) -> bytes | None:
        raise OSError("disk full")

    async def put_if(self, key: str, value: bytes, ttl: float, *, current: bytes | None) -> bool:
        raise OSError("disk full")

    async def delete(self, keys: Sequence[str]) -> None:
        raise OSError("disk full")

    async def close(self) -> None:
        pass


async def test_a_store_that_fails_is_logged_once_and_tasks_run_on(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()

    @app.task
    async def double(x: int) -> int:
        return 2 * x

    handles = [await double.send_async(i) for i in range(5)]
    async with worker_connection(app) as connection:
        consumer = Consumer(app, connection, WorkerConfig(burst=True, fetch_timeout=0.05))
        store = FailingStore()
        heartbeat = Heartbeat(store, consumer, 0.01, None)
        with caplog.at_level(logging.WARNING, logger="hurtle.registry"):
            beating = asyncio.create_task(heartbeat.keep_beating())
            await asyncio.wait_for(consumer.run(), WAIT_LIMIT)
            await eventually_true(_more_than(store, 3), "several failed beats")
            beating.cancel()
            await heartbeat.leave()

    assert [await h.result_async(timeout=5.0) for h in handles] == [0, 2, 4, 6, 8]
    written = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
    assert written == ["could not write this worker's registry record (OSError: disk full); tasks run on"]


def _more_than(store: FailingStore, puts: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return store.puts > puts

    return check


async def test_records_another_program_wrote_or_another_version_are_skipped() -> None:
    store = MemoryRecords()
    good = WorkerRecord(
        host="h", pid=1, supervisor_pid=None, queues=["q"], concurrency=1, threads=1, busy_async=0,
        busy_threads=0, rss_bytes=1, started_at=1.0, beat_at=2.0, hurtle_version="x",
        running=[RunningTask(id="t", name="n", kind="sync", elapsed=None)],
    )
    await store.put(f"{KEY_PREFIX}good", encode_record(good), 60.0)
    await store.put(f"{KEY_PREFIX}junk", b"\xff not json", 60.0)
    newer = encode_record(good).replace(f'"version":{RECORD_VERSION}'.encode(), b'"version":99')
    await store.put(f"{KEY_PREFIX}newer", newer, 60.0)
    await store.put("other:thing", b"{}", 60.0)

    assert await read_workers(store) == [good]


def test_rss_is_this_processs_resident_memory() -> None:
    assert rss_bytes() > 1024 * 1024  # a Python process holds megabytes
