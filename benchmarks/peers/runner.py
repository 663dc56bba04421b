"""One verified peer run, checked by the same rules as hurtle's own runs.

A run: a fresh namespace (queue names and key prefixes no other run or test
uses), the workload's N calls sent the peer's own way (timed alone), a check
that the broker holds N, the peer's worker command(s) drained (``drain.py``),
then the checks: the tasks counted exactly N runs, nothing is left queued or
unacknowledged, nothing dead-lettered where the peer keeps a count. Only then
does the run carry timings. Last, every key of the namespace is deleted
(``SCAN MATCH`` on the namespace; never ``FLUSHDB``: the Redis may be shared).

Timings, by the tasks' own clocks as for hurtle: processing is first task
start -> last task finish; wall is worker start -> last task finish (a peer
never exits by itself, so unlike hurtle's it has no exit to wait for);
start-up is worker start -> first task start.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.peers import rabbit
from benchmarks.peers.base import NS_ENV, URL_ENV, Peer, Plan, Run
from benchmarks.peers.drain import drain, limits
from hurtle.bench import io_target, latency
from hurtle.bench.chord import check_callback
from hurtle.bench.heavyinit import count_setups
from hurtle.bench.result import RunResult, Timings
from hurtle.bench.runner import RECORDS_ENV, OnProgress, Options, check_counts, read_records

_SCAN_COUNT = 1000
CHECKOUT = Path(__file__).resolve().parents[2]  # the directory that holds ``benchmarks/``


@dataclass(frozen=True)
class PeerRun:
    result: RunResult
    plan: Plan


_AMQP_COUNT_S = 10.0  # seconds RabbitMQ's count of a peer's sent messages may take to catch up


def calls_for(workload: str, options: Options) -> list[tuple[Any, ...]]:
    """The workload's calls: the same for every system (latency: the same sleeps, same order)."""
    if workload == "latency":
        return [(seconds,) for seconds in latency.sleeps(options.n, options.scale)]
    return [()] * options.n


def run(peer: Peer, workload: str, options: Options, progress: OnProgress | None = None) -> PeerRun:
    """Run ``workload`` on ``peer`` once against ``options.broker`` (redis://, or amqp:// for
    the peers in ``rabbit.PEERS``)."""
    assert options.broker is not None, "peers run on the --broker given"
    spec = Run(
        url=options.broker, ns=f"hurtlebench{peer.name}{secrets.token_hex(5)}", workload=workload,
        kind=peer.kind(workload, options.kind), n=options.n, processes=options.processes,
    )
    plan = peer.plan(spec)
    calls = calls_for(workload, options)
    result = RunResult(workload, spec.kind, runs_expected(spec), spec.processes, spec.url)
    try:
        with tempfile.TemporaryDirectory(prefix="hurtle-bench-") as folder, \
                _target(workload, options) as target:
            _run(peer, spec, plan, calls, Path(folder), result, progress, target)
    finally:
        if peer.forget is not None:
            peer.forget(spec)
        if not rabbit.is_amqp(spec.url):
            delete_namespace(spec.url, spec.ns)
    return PeerRun(result, plan)


@contextmanager
def _target(workload: str, options: Options) -> Iterator[io_target.Target | None]:
    """io's target, fresh for the run (as for hurtle's runs); None for the other workloads."""
    if workload != "io":
        yield None
        return
    with io_target.open_target(options.io, options.io_redis) as target:
        yield target


def _run(
    peer: Peer, spec: Run, plan: Plan, calls: Sequence[Sequence[Any]], folder: Path,
    result: RunResult, progress: OnProgress | None, target: io_target.Target | None,
) -> None:
    enqueue_s = peer.enqueue(spec, calls)
    sent = _count_sent(peer, spec)
    if sent != spec.n:
        result.problems.append(f"sent {spec.n} task(s) but the queue holds {sent}")
        return
    env = {**os.environ, **plan.env, **(target.env if target else {}),
           RECORDS_ENV: str(folder), URL_ENV: spec.url, NS_ENV: spec.ns,
           "PYTHONPATH": _checkout_on_path(os.environ.get("PYTHONPATH"))}
    longest = max((call[0] for call in calls if call), default=0.0)
    runs = runs_expected(spec)
    bounds = limits(runs, longest)
    drained = drain(plan.commands, env, folder, runs, bounds, progress, lambda: peer.pending(spec) == 0)
    records = read_records(folder)
    result.ran, result.pending, result.dead = records.runs, peer.pending(spec), peer.dead(spec)
    result.worker_exit = drained.exit_codes[0]
    problem = drained.problem(bounds, records.runs, runs)
    if drained.ended == "time limit" and problem:
        result.problems.append(problem)  # slow, not proven lost: the count says how far it got
    else:
        result.problems += ([problem] if problem else []) + check_counts(result)
    _inspect(peer, spec, folder, result)
    if target is not None:  # the same check as hurtle's runs: N round trips, a client per process
        target.inspect(folder, result, spec.processes)
    if result.problems:
        if drained.ended != "time limit":  # a slow peer's log tells nothing new
            result.worker_log = drained.log
        return
    result.timings = Timings(
        enqueue_s=enqueue_s,
        processing_s=records.last - records.first,
        wall_s=records.last - drained.started_at,
        startup_s=records.first - drained.started_at,
        worker_cpu_s=drained.cpu_s,
    )
    if spec.workload == "latency":
        latency.add_measures(result, [call[0] for call in calls])
    elif spec.workload == "heavyinit":
        result.extra["wall_s"] = result.timings.wall_s


def _count_sent(peer: Peer, spec: Run) -> int:
    """The messages queued once sending returned. RabbitMQ counts a publish when it has
    routed it, and Celery and Dramatiq publish without waiting for that: their last
    messages are counted a moment later (20,000 sent, 19,974 counted at once)."""
    count = peer.pending(spec)
    if not rabbit.is_amqp(spec.url):
        return count
    deadline = time.monotonic() + _AMQP_COUNT_S
    while count < spec.n and time.monotonic() < deadline:
        time.sleep(0.05)
        count = peer.pending(spec)
    return count


def _checkout_on_path(python_path: str | None) -> str:
    """``PYTHONPATH`` with the checkout first: a peer's worker imports its app from
    ``benchmarks.peers``, which is not installed, from whatever directory it starts in."""
    return os.pathsep.join([str(CHECKOUT), *([python_path] if python_path else [])])


def runs_expected(spec: Run) -> int:
    """The task runs a verified run counts: N, and a chord's callback."""
    return spec.n + 1 if spec.workload == "chord" else spec.n


def _inspect(peer: Peer, spec: Run, folder: Path, result: RunResult) -> None:
    """The workload's own measures; a peer's setup count is reported, never a failure.
    A chord's callback must have run once (given every result, where the peer gives them)."""
    if spec.workload == "chord":
        result.problems += check_callback(folder, spec.n if peer.chord_results else -1)
    elif spec.workload == "latency":
        latency.start_spread(folder, result)
    elif spec.workload == "heavyinit":
        result.extra["setups"] = count_setups(folder)


def delete_namespace(url: str, ns: str) -> int:
    """Delete every key whose name holds ``ns``; how many. Each peer puts it in all its keys."""
    import redis

    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"*{ns}*", count=_SCAN_COUNT):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted
