"""hurtle and other task queues through the same workload (``python -m benchmarks.peers``).

Each repeat runs hurtle, then each peer in turn, so drift of the machine (other
work on a shared VM) falls on every system alike. Every run is verified the
same way; a peer run that is not (lost tasks, too slow for the time limit, a
crash) is reported on its line, without a speed, and the bench goes on; it
exits 1 at the end. A hurtle run that is not verified stops the bench at once,
as ``hurtle bench`` does: that is a bug in hurtle.
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import replace
from importlib.metadata import version
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import click
from rich.console import Console

from benchmarks import peers as peer_modules
from benchmarks.peers import rabbit, report
from benchmarks.peers import runner as peer_runner
from benchmarks.peers.base import Peer, Run
from benchmarks.peers.report import System
from hurtle.bench import latency
from hurtle.bench import report as bench_report
from hurtle.bench.progress import run_progress
from hurtle.bench.report import EXIT_UNVERIFIED
from hurtle.bench.result import RunResult
from hurtle.bench.runner import OnProgress, Options
from hurtle.bench.workloads import Workload
from hurtle.cli.common import fail
from hurtle.errors import HurtleError
from hurtle.urls import display_url
from hurtle.worker.cpu_pin import cpu_plan

PROG = "python -m benchmarks.peers"
AMQP_PREFIX = "hurtlebench"  # hurtle's names on RabbitMQ in a comparison
_HURTLE_PARAMS = ("prefix", "reconnect_timeout")  # hurtle's own Redis URL parameters (brokers/redis/url.py)


def compare(
    workload: str, run_hurtle: Workload, options: Options, names: list[str], repeat: int,
    as_json: bool, described: str | None,
) -> None:
    """Run the workload ``repeat`` times on hurtle and each peer, alternating; print the tables."""
    assert options.broker is not None
    plain = _url_with(options.broker)
    _check_reachable(plain)
    peers = [peer_modules.load(name) for name in names]
    hurtle = System("hurtle", version("hurtle"), _hurtle_config(workload, options), [])
    systems = [hurtle, *(System(p.name, peer_modules.peer_version(p), "", []) for p in peers)]
    console = Console(stderr=as_json)
    _header(console, workload, options, repeat, described, peers, systems)
    for index in range(repeat):
        for system, peer in zip(systems, [None, *peers], strict=True):
            with run_progress(f"run {index + 1}/{repeat} {system.name}", options.n) as tick:
                if peer is None:
                    result = _hurtle_run(run_hurtle, options, tick)
                else:
                    result = _peer_run(peer, workload, replace(options, broker=plain), tick)
            system.runs.append(result)
            _print_run(console, as_json, system, index, repeat, result)
            if peer is None and not result.verified:
                bench_report.report_failure(result)
                sys.exit(EXIT_UNVERIFIED)
    if as_json:
        for summary in report.summaries(systems, workload, options.kind, options.n, options.processes):
            click.echo(json.dumps(summary))
    else:
        for table in report.comparison(systems):
            console.print(table)
        console.print(report.peer_notes(workload))
        if workload == "io":
            console.print(bench_report.io_notes(options.io, options.n))
    if not all(run.verified for system in systems for run in system.runs):
        sys.exit(EXIT_UNVERIFIED)


def _check_reachable(url: str) -> None:
    if rabbit.is_amqp(url):
        problem = rabbit.check_reachable(url)
        if problem is not None:
            fail(f"--broker: no RabbitMQ answers at {display_url(url)} ({problem})")
        return
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        fail(f"--broker: no Redis answers at {display_url(url)} ({exc})")


def _hurtle_run(run_hurtle: Workload, options: Options, tick: OnProgress | None) -> RunResult:
    """hurtle's run under a key prefix of its own, like the peers' namespaces; its keys deleted after.
    On RabbitMQ under one prefix for every run (``AMQP_PREFIX``): its queues, empty after a
    verified run, are reused rather than left behind by each run."""
    assert options.broker is not None
    if rabbit.is_amqp(options.broker):
        result = run_hurtle(replace(options, broker=_url_with(options.broker, prefix=AMQP_PREFIX)), tick)
        result.broker = options.broker
        return result
    prefix = f"hurtlebenchhurtle{secrets.token_hex(5)}"
    try:
        result = run_hurtle(replace(options, broker=_url_with(options.broker, prefix=prefix)), tick)
    finally:
        peer_runner.delete_namespace(_url_with(options.broker), prefix)
    result.broker = options.broker
    return result


def _url_with(url: str, prefix: str | None = None) -> str:
    """``url`` without hurtle's own parameters (other clients reject them), plus ``prefix``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _HURTLE_PARAMS]
    if prefix is not None:
        query.append(("prefix", prefix))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _peer_run(peer: Peer, workload: str, options: Options, tick: OnProgress | None) -> RunResult:
    """A peer's run; a peer that raises makes an unverified run that says what it raised."""
    try:
        return peer_runner.run(peer, workload, options, tick).result
    except HurtleError as exc:
        fail(str(exc))
    except Exception as exc:  # a peer's own failure must not end the comparison
        result = RunResult(workload, options.kind, options.n, options.processes, options.broker or "")
        result.problems.append(f"{type(exc).__name__}: {exc}")
        return result


def _hurtle_config(workload: str, options: Options) -> str:
    if workload == "latency":
        return f"-p {options.processes} {' '.join(latency.worker_args(options))}, {options.kind}"
    model = "async, on the event loop" if options.kind == "async" else "sync, in threads"
    # The worker's default --cpu-pin auto, as it will decide on this machine.
    pinned = ", a CPU each" if cpu_plan("auto", options.processes) is not None else ""
    return f"-p {options.processes}, {model}{pinned}"


def _header(
    console: Console, workload: str, options: Options, repeat: int, described: str | None,
    peers: list[Peer], systems: list[System],
) -> None:
    """Who runs how; fills each peer's ``config`` from its plan for this workload."""
    lines = [
        f"{PROG} {workload}: {options.n:,} tasks, {options.processes} worker"
        f" process(es) per system, {display_url(options.broker or '')}, {repeat} run(s) each,"
        " alternating: hurtle, then each peer in turn",
    ]
    if described:
        lines.append(f"hurtle: {described}")
    hurtle = systems[0]
    sends = ("hurtle.chord(...).send(), the members in one batch" if workload == "chord"
             else f"send_many, {options.batch:,} a batch")
    lines.append(f"  hurtle {hurtle.version}: {hurtle.config}; sends with {sends}")
    lines.append(f"    $ hurtle worker hurtle.bench.{workload}:app --burst -p {options.processes}")
    for index, peer in enumerate(peers, start=1):
        preview = Run(options.broker or "", "NS", workload, peer.kind(workload, options.kind),
                      options.n, options.processes)
        plan = peer.plan(preview)
        release = systems[index].version
        systems[index] = System(peer.name, release, plan.summary, [])
        lines.append(f"  {peer.name} {release}: {plan.summary}; sends with {peer.enqueue_method}")
        lines.append(f"    $ {plan.display}")
    if not console.stderr:
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True)


def _print_run(
    console: Console, as_json: bool, system: System, index: int, repeat: int, result: RunResult
) -> None:
    if as_json:
        data = {**result.as_json(), "system": system.name, "version": system.version,
                "config": system.config}
        click.echo(json.dumps(data))
        return
    line = bench_report.one_line(result) if system.name == "hurtle" else report.peer_line(result)
    console.print(f"run {index + 1}/{repeat} {system.name}: {line}", soft_wrap=True)
    if system.name != "hurtle" and not result.verified and result.worker_log:
        click.echo(f"--- {system.name} worker log (tail) ---\n{result.worker_log}", err=True)
