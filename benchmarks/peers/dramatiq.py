"""Dramatiq as a peer: processes x threads for short tasks, ``dramatiq-gevent`` for tasks that wait.

Dramatiq's docs: ``dramatiq --processes P --threads T``, 8 threads by default;
and for I/O-bound work ``dramatiq-gevent``, greenlets in place of threads, "with
a much larger number of threads" (its own example: 1 process x 1,024). So:
``--processes P --threads 8`` for noop, heavyinit and io; ``dramatiq-gevent
--processes P --threads N`` for latency (Dramatiq with threads took
408 s for 10,000 sleeping tasks, with gevent 23.47 s). Actors are sync:
Dramatiq's async actors (the ``AsyncIO`` middleware) hold a worker thread each
while they wait, so they are no faster than threads here.

Sending: ``actor.send`` in a loop, as users send (``group(...).run()`` sends
each message alone too). Actors with ``max_retries=0``, so a failure is
dead-lettered and counted. Isolation: the run's namespace is the broker's
``namespace``, the prefix of every key it writes. On RabbitMQ (``--broker
amqp://``, ``RabbitmqBroker``) the namespace is the queue's name; the queue,
its delay queue (``.DQ``) and its dead letters (``.XQ``) are deleted after the run.

chord (on Redis only: its barrier lives there): a ``group`` with a completion callback
(``add_completion_callback``, the ``GroupCallbacks`` middleware counting completions on
a Redis barrier), as Dramatiq's docs write it. Its callback is given no results:
collecting them would need the ``Results`` middleware and a ``get_results`` wait, which
Dramatiq leaves to the caller. The barrier's keys are not under the namespace: they live
``BARRIER_TTL_MS`` and Redis drops them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import GroupCallbacks
from dramatiq.rate_limits.backends import RedisBackend as RateLimitBackend

from benchmarks.peers import base, rabbit
from benchmarks.peers.base import Peer, Plan, Run, ns_from_env, plan_of, script, url_from_env

BROKER_SPEC = "benchmarks.peers.dramatiq:broker"
QUEUE = "bench"
THREADS = 8  # dramatiq's default --threads
#: Greenlets for latency, over all processes: each may hold a Redis connection, and
#: Redis accepts 10,000 clients by default (20,000 greenlets could not ack: "Too many
#: connections", and 95 of 10,000 messages stayed unacknowledged).
GREENLETS_TOTAL = 8000
ACTOR_NAMES = {"noop": "hurtle_bench_noop", "latency": "hurtle_bench_sleep", "heavyinit": "hurtle_bench_work",
               "io": "hurtle_bench_io"}


TASKS = base.SYNC_TASKS
CHORD_MEMBER, CHORD_CALLBACK = "hurtle_bench_chord_member", "hurtle_bench_chord_callback"
BARRIER_TTL_MS = 600_000  # a chord's barrier keys: outside the namespace, gone after 10 minutes


def make_broker(url: str, ns: str) -> tuple[dramatiq.Broker, dict[str, dramatiq.Actor[..., Any]]]:
    """A broker whose keys all start with ``ns`` (on RabbitMQ: whose queue is ``ns``), and the bench's
    actors on it."""
    made: dramatiq.Broker
    if rabbit.is_amqp(url):
        made, queue = RabbitmqBroker(url=url), ns
    else:
        made, queue = RedisBroker(url=url, namespace=ns), QUEUE  # type: ignore[no-untyped-call]
        made.add_middleware(GroupCallbacks(RateLimitBackend(url=url), barrier_ttl=BARRIER_TTL_MS))
    actors = {
        workload: dramatiq.actor(
            broker=made, actor_name=ACTOR_NAMES[workload], queue_name=queue, max_retries=0
        )(body)
        for workload, body in TASKS.items()
    }
    actors[CHORD_MEMBER] = dramatiq.actor(
        broker=made, actor_name=CHORD_MEMBER, queue_name=queue, max_retries=0
    )(base.noop)
    actors[CHORD_CALLBACK] = dramatiq.actor(
        broker=made, actor_name=CHORD_CALLBACK, queue_name=queue, max_retries=0
    )(base.chord_callback)
    return made, actors


broker, _actors = make_broker(url_from_env(), ns_from_env())  # the worker's, from its environment


def kind(workload: str, requested: str) -> str:
    return "sync"


def plan(run: Run) -> Plan:
    if run.workload == "latency":
        greenlets = max(1, min(run.n, GREENLETS_TOTAL // run.processes))
        command = [script("dramatiq-gevent"), "--processes", str(run.processes),
                   "--threads", str(greenlets), BROKER_SPEC]
        what = f"dramatiq-gevent, {run.processes} process(es) x {greenlets:,} greenlets"
    else:
        command = [script("dramatiq"), "--processes", str(run.processes),
                   "--threads", str(THREADS), BROKER_SPEC]
        what = f"{run.processes} process(es) x {THREADS} threads"
    return plan_of([command], what, "sync")


def enqueue(run: Run, calls: Sequence[Sequence[Any]]) -> float:
    sender, actors = make_broker(run.url, run.ns)
    if run.workload == "chord":
        return _send_group(sender, actors, len(calls))
    actor = actors[run.workload]
    try:
        started = time.perf_counter()
        for args in calls:
            actor.send(*args)
        return time.perf_counter() - started
    finally:
        sender.close()


def _send_group(sender: dramatiq.Broker, actors: dict[str, dramatiq.Actor[..., Any]], n: int) -> float:
    try:
        started = time.perf_counter()
        members = dramatiq.group(  # type: ignore[no-untyped-call]
            (actors[CHORD_MEMBER].message() for _ in range(n)), broker=sender
        )
        members.add_completion_callback(actors[CHORD_CALLBACK].message())  # type: ignore[no-untyped-call]
        members.run()  # type: ignore[no-untyped-call]
        return time.perf_counter() - started
    finally:
        sender.close()


def _hlen(url: str, key: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.hlen(key))
    finally:
        client.close()


def pending(run: Run) -> int:
    """Messages not acknowledged yet: Dramatiq keeps each in ``QUEUE.msgs`` until its ack
    (on RabbitMQ: ready in the queue or its delay queue)."""
    if rabbit.is_amqp(run.url):
        return rabbit.ready(run.url, [run.ns, f"{run.ns}.DQ"])
    return _hlen(run.url, f"{run.ns}:{QUEUE}.msgs")


def dead(run: Run) -> int | None:
    if rabbit.is_amqp(run.url):
        return rabbit.ready(run.url, [f"{run.ns}.XQ"])
    return _hlen(run.url, f"{run.ns}:{QUEUE}.XQ.msgs")


def forget(run: Run) -> None:
    """On RabbitMQ: the run's queues (on Redis its keys carry the namespace)."""
    if rabbit.is_amqp(run.url):
        rabbit.delete(run.url, [run.ns, f"{run.ns}.DQ", f"{run.ns}.XQ"])


PEER = Peer(
    name="dramatiq", distribution="dramatiq", plan=plan, kind=kind, enqueue=enqueue,
    enqueue_method="actor.send in a loop (chord: group(...).run())", pending=pending, dead=dead,
    chord_results=False, forget=forget,
)
