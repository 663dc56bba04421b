"""taskiq as a peer: ``taskiq worker --workers P``, async tasks on each process's event loop.

taskiq is async-first: ``async def`` tasks run on the worker's event loop, at
most ``--max-async-tasks`` at once per process (default 100), sync ones in a
thread pool. The broker is taskiq-redis's ``RedisStreamBroker``, the one its
README leads with: a Redis stream read by a consumer group, each message
acknowledged after its task (``ListQueueBroker`` pops destructively, no
acknowledgement). So: ``taskiq worker --workers P`` with async tasks for noop
and heavyinit, the requested kind for io (a sync task uses the sync client);
for latency the requested kind, with ``--max-async-tasks N`` (and
``--max-threadpool-threads N`` for sync) so every sleep can wait at once.
``--log-level WARNING``; no result backend (no result stored).

Sending: ``await task.kiq(...)``, ``GATHER`` at a time in ``asyncio.gather``
(one XADD each; taskiq has no batch send). Isolation: the run's namespace is
the stream's name, in every key the broker writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from taskiq import AsyncTaskiqDecoratedTask
from taskiq_redis import RedisStreamBroker

from benchmarks.peers import base
from benchmarks.peers.base import (
    Peer,
    Plan,
    Run,
    ns_from_env,
    plan_of,
    script,
    url_from_env,
)

BROKER_SPEC = "benchmarks.peers.taskiq:broker"
GATHER = 100  # kiq calls in flight at once
GROUP = "taskiq"  # RedisStreamBroker's default consumer group


def make_broker(url: str, ns: str) -> tuple[RedisStreamBroker, dict[str, AsyncTaskiqDecoratedTask[..., Any]]]:
    """A stream broker on the stream ``ns``, and the bench's tasks, sync and async, on it.

    The task functions are made anew for each broker: taskiq renames the
    function it decorates (``noop`` becomes ``noop__taskiq_original``)."""
    made = RedisStreamBroker(url=url, queue_name=ns)

    def noop() -> None:
        base.noop()

    async def noop_async() -> None:
        await base.noop_async()

    def sleep(seconds: float) -> None:
        base.sleep_sync(seconds)

    async def sleep_async(seconds: float) -> None:
        await base.sleep_async(seconds)

    def work() -> None:
        base.work()

    async def work_async() -> None:
        await base.work_async()

    def io() -> None:
        base.io()

    async def io_async() -> None:
        await base.io_async()

    bodies: dict[str, Callable[..., Any]] = {
        "noop-sync": noop, "noop-async": noop_async, "latency-sync": sleep,
        "latency-async": sleep_async, "heavyinit-sync": work, "heavyinit-async": work_async,
        "io-sync": io, "io-async": io_async,
    }
    tasks = {key: made.task(task_name=f"hurtle_bench_{key}")(body) for key, body in bodies.items()}
    return made, tasks


broker, _tasks = make_broker(url_from_env(), ns_from_env())  # the worker's, from its environment


def kind(workload: str, requested: str) -> str:
    return requested if workload in ("latency", "io") else "async"


def plan(run: Run) -> Plan:
    command = [script("taskiq"), "worker", BROKER_SPEC, "--workers", str(run.processes),
               "--log-level", "WARNING"]
    in_flight = 100  # its default --max-async-tasks
    if run.workload == "latency":
        in_flight = run.n
        command += ["--max-async-tasks", str(run.n)]
        if run.kind == "sync":
            command += ["--max-threadpool-threads", str(run.n)]
    what = f"{run.processes} process(es) x {in_flight:,} in flight, {run.kind}"
    return plan_of([command], what, run.kind)


def enqueue(run: Run, calls: Sequence[Sequence[Any]]) -> float:
    return asyncio.run(_enqueue(run, calls))


async def _enqueue(run: Run, calls: Sequence[Sequence[Any]]) -> float:
    sender, tasks = make_broker(run.url, run.ns)
    task = tasks[f"{run.workload}-{run.kind}"]
    await sender.startup()  # creates the stream's consumer group before the first message
    try:
        started = time.perf_counter()
        for start in range(0, len(calls), GATHER):
            await asyncio.gather(*(task.kiq(*args) for args in calls[start : start + GATHER]))
        return time.perf_counter() - started
    finally:
        await sender.shutdown()


def pending(run: Run) -> int:
    """Messages the group has not read yet (lag), plus read and not acknowledged (pending)."""
    client = redis.Redis.from_url(run.url)
    try:
        groups: list[dict[str, Any]] = client.xinfo_groups(run.ns) if client.exists(run.ns) else []
        group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        if group is None:
            return int(client.xlen(run.ns)) if client.exists(run.ns) else 0
        return int(group["pending"]) + int(group.get("lag") or 0)
    finally:
        client.close()


def dead(run: Run) -> int | None:
    return None  # taskiq keeps no dead-letter queue


PEER = Peer(
    name="taskiq", distribution="taskiq", plan=plan, kind=kind, enqueue=enqueue,
    enqueue_method=f"task.kiq, {GATHER} at a time in asyncio.gather", pending=pending, dead=dead,
)
