"""arq as a peer: P ``arq`` worker processes, async jobs on each one's event loop.

arq is asyncio-only (its functions must be coroutines) and has no process
supervisor: its docs run one ``arq module.WorkerSettings`` per process, so the
bench starts P of them. ``max_jobs`` (jobs in flight per process, default 10)
is raised to ``NOOP_MAX_JOBS`` for short jobs (noop, heavyinit, io) and to N for latency, so every
sleep can wait at once; ``poll_delay`` stays at its default 0.5 s.
``keep_result=0`` (no result stored), ``max_tries=1`` (a failure is not
retried), and arq's log at WARNING (at INFO it writes two lines per job).

Sending: ``ArqRedis.enqueue_job``, ``GATHER`` at a time in ``asyncio.gather``
(each job is a WATCH/MULTI transaction of its own, so concurrency is what
speeds it up). Isolation: the run's namespace is the queue's name and the
prefix of every job id, so the job, in-progress, retry and health-check keys
all carry it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import redis
from arq.connections import RedisSettings, create_pool
from arq.logs import default_log_config
from arq.worker import Function, func

from benchmarks.peers import base
from benchmarks.peers.base import Peer, Plan, Run, ns_from_env, plan_of, script, tune_from_env, url_from_env

SETTINGS_SPEC = "benchmarks.peers.arq.WorkerSettings"
LOG_SPEC = "benchmarks.peers.arq.LOG_CONFIG"
#: arq's own default logging at WARNING: at INFO it writes two lines per job, the others none.
LOG_CONFIG: dict[str, Any] = {
    **default_log_config(verbose=False),
    "loggers": {"arq": {"handlers": ["arq.standard"], "level": "WARNING"}},
}
NOOP_MAX_JOBS = 100
GATHER = 100  # enqueue_job calls in flight at once: each holds a connection
FUNCTION_NAMES = {"noop": "noop", "latency": "sleep", "heavyinit": "work", "io": "io"}


async def noop(ctx: dict[str, Any]) -> None:
    await base.noop_async()


async def sleep(ctx: dict[str, Any], seconds: float) -> None:
    await base.sleep_async(seconds)


async def work(ctx: dict[str, Any]) -> None:
    await base.work_async()


async def io(ctx: dict[str, Any]) -> None:
    await base.io_async()


class WorkerSettings:
    """What ``arq`` reads; the queue and ``max_jobs`` come from the run, via the environment."""

    functions: ClassVar[list[Function]] = [
        func(noop, name="noop", keep_result=0, max_tries=1),
        func(sleep, name="sleep", keep_result=0, max_tries=1),
        func(work, name="work", keep_result=0, max_tries=1),
        func(io, name="io", keep_result=0, max_tries=1),
    ]
    redis_settings = RedisSettings.from_dsn(url_from_env())
    queue_name = ns_from_env()
    max_jobs = tune_from_env(NOOP_MAX_JOBS)
    keep_result = 0


def kind(workload: str, requested: str) -> str:
    return "async"  # arq runs coroutines only


def plan(run: Run) -> Plan:
    max_jobs = run.n if run.workload == "latency" else NOOP_MAX_JOBS
    command = [script("arq"), SETTINGS_SPEC, "--custom-log-dict", LOG_SPEC]
    what = f"{run.processes} process(es) x max_jobs {max_jobs:,}, async"
    return plan_of([command] * run.processes, what, "async", env={base.TUNE_ENV: str(max_jobs)})


def enqueue(run: Run, calls: Sequence[Sequence[Any]]) -> float:
    return asyncio.run(_enqueue(run, calls))


async def _enqueue(run: Run, calls: Sequence[Sequence[Any]]) -> float:
    pool = await create_pool(RedisSettings.from_dsn(run.url), default_queue_name=run.ns)
    name = FUNCTION_NAMES[run.workload]
    try:
        started = time.perf_counter()
        for start in range(0, len(calls), GATHER):
            await asyncio.gather(*(
                pool.enqueue_job(name, *args, _job_id=f"{run.ns}-{start + i}")
                for i, args in enumerate(calls[start : start + GATHER])
            ))
        return time.perf_counter() - started
    finally:
        await pool.aclose()


def pending(run: Run) -> int:
    """Jobs in the queue: arq removes a job from it only when the job is finished."""
    client = redis.Redis.from_url(run.url)
    try:
        return int(client.zcard(run.ns))
    finally:
        client.close()


def dead(run: Run) -> int | None:
    return None  # with keep_result=0 arq keeps no trace of a failed job


PEER = Peer(
    name="arq", distribution="arq", plan=plan, kind=kind, enqueue=enqueue,
    enqueue_method=f"enqueue_job, {GATHER} at a time in asyncio.gather", pending=pending, dead=dead,
)
