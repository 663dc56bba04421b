"""RQ as a peer: ``rq worker-pool`` of P ``SimpleWorker`` processes.

RQ runs one job at a time per worker process; its default ``Worker`` forks a
work horse per job. Its docs ("Notes on Performance") measure
``SimpleWorker``, which runs jobs in the worker process, about 6x faster on
short jobs, and ``rq worker-pool -n P`` runs P workers under one command.
So: ``rq worker-pool -n P -w rq.worker.SimpleWorker`` for every workload. RQ
has no concurrency within a process, so latency (2.65 s a task on average)
needs about n x 2.65 / P seconds: it stops at the run's time limit and says
how many ran.

Sending: ``Queue.enqueue_many`` in one pipeline per batch of 1,000, RQ's
documented bulk enqueue; ``result_ttl=0``: no result kept. Isolation: the
run's namespace is the queue's name and the prefix of every job id, so the
queue's, registries' and jobs' keys all carry it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from benchmarks.peers import base
from benchmarks.peers.base import Peer, Plan, Run, plan_of, script

BATCH = 1000  # jobs per enqueue_many pipeline
WORKER_CLASS = "rq.worker.SimpleWorker"


TASKS = base.SYNC_TASKS


def kind(workload: str, requested: str) -> str:
    return "sync"


def plan(run: Run) -> Plan:
    command = [script("rq"), "worker-pool", "-n", str(run.processes), "-w", WORKER_CLASS,
               "-u", run.url, "-l", "WARNING", run.ns]
    return plan_of([command], f"worker-pool of {run.processes} SimpleWorker(s), 1 job at a time each", "sync")


def enqueue(run: Run, calls: Sequence[Sequence[Any]]) -> float:
    connection = redis.Redis.from_url(run.url)
    queue = Queue(run.ns, connection=connection)
    body = TASKS[run.workload]
    try:
        started = time.perf_counter()
        for start in range(0, len(calls), BATCH):
            jobs = [
                Queue.prepare_data(body, tuple(args), job_id=f"{run.ns}-{start + i}", result_ttl=0)
                for i, args in enumerate(calls[start : start + BATCH])
            ]
            with connection.pipeline() as pipe:
                queue.enqueue_many(jobs, pipeline=pipe)
                pipe.execute()
        return time.perf_counter() - started
    finally:
        connection.close()


def _count(run: Run, what: str) -> int:
    connection = redis.Redis.from_url(run.url)
    try:
        queue = Queue(run.ns, connection=connection)
        if what == "queued":
            return queue.count + StartedJobRegistry(queue=queue).count
        return FailedJobRegistry(queue=queue).count
    finally:
        connection.close()


def pending(run: Run) -> int:
    """Jobs still queued, plus jobs started and not finished."""
    return _count(run, "queued")


def dead(run: Run) -> int | None:
    return _count(run, "failed")


def forget(run: Run) -> None:
    """Drop what RQ keeps outside the namespace: the queue in its set of all queues, and the
    records of the run's dead workers (they would expire within a minute anyway)."""
    connection = redis.Redis.from_url(run.url)
    try:
        Queue(run.ns, connection=connection).delete(delete_jobs=False)
        for key in connection.scan_iter(match="rq:worker:*", count=1000):
            if connection.hget(key, "queues") == run.ns.encode():
                connection.delete(key)
    finally:
        connection.close()


PEER = Peer(
    name="rq", distribution="rq", plan=plan, kind=kind, enqueue=enqueue,
    enqueue_method=f"Queue.enqueue_many, {BATCH:,} jobs per pipeline", pending=pending, dead=dead,
    forget=forget,
)
