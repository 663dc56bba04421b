"""Huey as a peer: one consumer with worker threads for short tasks, greenlets for tasks that wait.

Huey's docs: ``huey_consumer app.huey -k thread|process|greenlet -w N``;
"process for CPU-intensive workloads, greenlet for IO-heavy workloads, thread
the safest choice". A no-op task leaves only the consumer's own work, which
is CPU, and P worker processes beat 8 threads in one (3,031 against 1,593
tasks/s in one trial here), so noop, heavyinit and io run ``-k process -w P``.
For latency, greenlets need gevent's monkey patch applied before huey is
imported, which ``huey_consumer`` does not do, so the consumer is
started the way its users do it, from a two-line script that patches then
calls ``consumer_main``: P consumers x ``-k greenlet -w min(N, GREENLETS)``
(each greenlet blocks on a Redis connection of its own, and Redis allows
10,000 clients by default). ``-q``: no log line per task.

Sending: calling the task, which enqueues it (one LPUSH each; huey has no
batch send). Huey dequeues destructively (no acknowledgement: a task taken
by a consumer that dies is gone), so ``pending`` is the queue's length.
Isolation: the run's namespace is the Huey instance's name, in all its keys.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import redis
from huey import RedisHuey
from huey.api import TaskWrapper

from benchmarks.peers import base
from benchmarks.peers.base import Peer, Plan, Run, ns_from_env, plan_of, script, url_from_env

HUEY_SPEC = "benchmarks.peers.huey.huey"
GREENLETS = 1000  # greenlets per consumer for latency
_GEVENT_CONSUMER = (
    "from gevent import monkey; monkey.patch_all()\n"
    "from huey.bin.huey_consumer import consumer_main; consumer_main()"
)
TASK_NAMES = {"noop": "hurtle_bench_noop", "latency": "hurtle_bench_sleep", "heavyinit": "hurtle_bench_work",
              "io": "hurtle_bench_io"}


TASKS = base.SYNC_TASKS


def make_huey(url: str, ns: str) -> tuple[RedisHuey, dict[str, TaskWrapper]]:
    """A Huey instance whose keys all carry ``ns``, no results stored, and the bench's tasks."""
    made = RedisHuey(name=ns, url=url, results=False)
    tasks = {workload: made.task(name=TASK_NAMES[workload])(body) for workload, body in TASKS.items()}
    return made, tasks


huey, _tasks = make_huey(url_from_env(), ns_from_env())  # the consumer's, from its environment


def kind(workload: str, requested: str) -> str:
    return "sync"


def plan(run: Run) -> Plan:
    if run.workload == "latency":
        greenlets = min(run.n, GREENLETS)
        command = [sys.executable, "-c", _GEVENT_CONSUMER, HUEY_SPEC, "-k", "greenlet",
                   "-w", str(greenlets), "-q"]
        display = (f"python -c 'monkey.patch_all(); consumer_main()' {HUEY_SPEC} -k greenlet"
                   f" -w {greenlets} -q  (x{run.processes})")
        what = f"{run.processes} consumer(s) x {greenlets:,} greenlets"
        return Plan([command] * run.processes, what, display, "sync")
    command = [script("huey_consumer"), HUEY_SPEC, "-k", "process", "-w", str(run.processes), "-q"]
    return plan_of([command], f"1 consumer x {run.processes} worker processes", "sync")


def enqueue(run: Run, calls: Sequence[Sequence[Any]]) -> float:
    sender, tasks = make_huey(run.url, run.ns)
    task = tasks[run.workload]
    try:
        started = time.perf_counter()
        for args in calls:
            task(*args)
        return time.perf_counter() - started
    finally:
        sender.storage.conn.close()


def pending(run: Run) -> int:
    """Tasks in the queue; a task taken by a worker is no longer in Redis at all."""
    client = redis.Redis.from_url(run.url)
    try:
        return int(client.llen(f"huey.redis.{run.ns}"))
    finally:
        client.close()


def dead(run: Run) -> int | None:
    return None  # Huey keeps no dead-letter queue


PEER = Peer(
    name="huey", distribution="huey", plan=plan, kind=kind, enqueue=enqueue,
    enqueue_method="calling the task (one LPUSH each)", pending=pending, dead=dead,
)
