"""Celery as a peer: prefork processes for short tasks, gevent for tasks that wait.

Celery's docs ("Concurrency") recommend the prefork pool, one child per core,
for CPU-bound and short tasks, and gevent (or eventlet) for I/O-bound ones,
with a concurrency in the thousands. So: ``-P prefork -c P`` for noop,
heavyinit and io (a round trip on loopback is a short task); for latency, P
``-P gevent -c N`` workers (sync tasks only: Celery has no async task model).
Every run: ``--without-gossip --without-mingle --without-heartbeat`` (the
docs' advice for a worker that needs no cluster events), results not stored
(``task_ignore_result``), remote control off (no pidbox keys). Celery
acknowledges a message when a worker takes it, before the task runs (its
default, ``acks_late=False``); hurtle acknowledges after.

Sending: ``apply_async`` in a loop, as users send; Celery has no batch send
(``group`` sends each message alone too, and adds a group id to each).
Isolation: the run's namespace is the queue's name and kombu's
``global_keyprefix``, so every key Celery writes carries it. On RabbitMQ
(``--broker amqp://``, Celery's default broker) the namespace names the queue
and its exchange, both deleted after the run.

chord (on Redis only: it needs a result backend): ``chord(member.s() for
...)(callback.s())``, as Celery's docs write it. A chord needs its members' results: the
Redis result backend (the same Redis, its keys under the namespace too) and members that
store them; the callback is given them, in order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery, chord

from benchmarks.peers import base, rabbit
from benchmarks.peers.base import Peer, Plan, Run, ns_from_env, plan_of, script, url_from_env

APP_SPEC = "benchmarks.peers.celery:app"
TASK_NAMES = {"noop": "hurtle_bench.noop", "latency": "hurtle_bench.sleep", "heavyinit": "hurtle_bench.work",
              "io": "hurtle_bench.io"}


TASKS = base.SYNC_TASKS
CHORD_MEMBER, CHORD_CALLBACK = "hurtle_bench.chord_member", "hurtle_bench.chord_callback"


def make_app(url: str, ns: str) -> Celery:
    """A Celery app whose queue and keys all carry ``ns``."""
    app = Celery("hurtle-bench", broker=url, set_as_current=False)
    app.conf.update(
        task_default_queue=ns,
        task_ignore_result=True,  # no result stored: as hurtle's bench tasks and Dramatiq
        # Only a chord's members store results (a chord needs them); every other task ignores its own.
        broker_connection_retry_on_startup=True,
        worker_enable_remote_control=False,
    )
    if not rabbit.is_amqp(url):
        app.conf.broker_transport_options = {"global_keyprefix": f"{ns}:"}
        app.conf.result_backend = url
        app.conf.result_backend_transport_options = {"global_keyprefix": f"{ns}:"}
    for workload, body in TASKS.items():
        app.task(name=TASK_NAMES[workload], acks_late=False)(body)
    app.task(name=CHORD_MEMBER, acks_late=False, ignore_result=False)(base.noop)
    app.task(name=CHORD_CALLBACK, acks_late=False)(base.chord_callback)
    return app


app = make_app(url_from_env(), ns_from_env())  # the worker's, built from its environment


def kind(workload: str, requested: str) -> str:
    return "sync"  # Celery tasks are plain functions


def plan(run: Run) -> Plan:
    common = [
        script("celery"), "-A", APP_SPEC, "worker", "-Q", run.ns, "-l", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]
    if run.workload == "latency":
        commands = [
            [*common, "-P", "gevent", "-c", str(run.n), "-n", f"w{i}.{run.ns}@%h"]
            for i in range(run.processes)
        ]
        what = f"{run.processes} worker(s) x gevent pool of {run.n:,}"
    else:
        commands = [[*common, "-P", "prefork", "-c", str(run.processes), "-n", f"{run.ns}@%h"]]
        what = f"prefork pool of {run.processes}"
    return plan_of(commands, f"{what}, acks on receipt", "sync")


def enqueue(run: Run, calls: Sequence[Sequence[Any]]) -> float:
    sender = make_app(run.url, run.ns)
    if run.workload == "chord":
        return _send_chord(sender, len(calls))
    task = sender.tasks[TASK_NAMES[run.workload]]
    try:
        started = time.perf_counter()
        for args in calls:
            task.apply_async(args)
        return time.perf_counter() - started
    finally:
        sender.close()


def _send_chord(sender: Celery, n: int) -> float:
    member, callback = sender.tasks[CHORD_MEMBER], sender.tasks[CHORD_CALLBACK]
    try:
        started = time.perf_counter()
        chord(member.s() for _ in range(n))(callback.s())
        return time.perf_counter() - started
    finally:
        sender.close()


def pending(run: Run) -> int:
    """Queued messages, plus taken ones not acknowledged yet (none with acks on receipt)."""
    if rabbit.is_amqp(run.url):
        return rabbit.ready(run.url, [run.ns])
    client = redis.Redis.from_url(run.url)
    try:
        return int(client.llen(f"{run.ns}:{run.ns}")) + int(client.hlen(f"{run.ns}:unacked"))
    finally:
        client.close()


def dead(run: Run) -> int | None:
    return None  # Celery keeps no dead-letter queue on Redis


def forget(run: Run) -> None:
    """On RabbitMQ: the run's queue and exchange (on Redis its keys carry the namespace)."""
    if rabbit.is_amqp(run.url):
        rabbit.delete(run.url, [run.ns], [run.ns])


PEER = Peer(
    name="celery", distribution="celery", plan=plan, kind=kind, enqueue=enqueue,
    enqueue_method="apply_async in a loop (chord: chord(...)(callback))", pending=pending, dead=dead,
    chord_results=True, forget=forget,
)
