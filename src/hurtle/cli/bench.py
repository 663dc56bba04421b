"""``hurtle bench WORKLOAD``: time hurtle end to end and verify every task ran.

With ``--peers``, the same workload runs on other task queues too, alternating
with hurtle (``bench_peers.py``); what is printed is in ``bench_report.py``,
the progress bar in ``bench_progress.py``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable

import click
from rich.console import Console

from hurtle.bench.result import RunResult, summarize
from hurtle.bench.runner import OnProgress, Options
from hurtle.cli import bench_report
from hurtle.cli.bench_progress import run_progress
from hurtle.cli.common import fail
from hurtle.errors import HurtleError
from hurtle.urls import display_url

EXIT_UNVERIFIED = 1
WORKLOADS = ("noop", "latency", "heavyinit", "ping")  # each a module of hurtle.bench with run()
_DEFAULT_KIND = {"latency": "async"}  # else sync
Workload = Callable[[Options, OnProgress | None], RunResult]


def _workload(name: str) -> Workload:
    """``hurtle.bench.<name>.run``. Imported here: a workload module makes its App at
    import, which every other hurtle command should not pay for."""
    if name not in WORKLOADS:
        raise click.BadParameter(f"unknown workload {name!r}")
    run: Workload = importlib.import_module(f"hurtle.bench.{name}").run
    return run


def _describe(name: str, options: Options) -> str | None:
    """What a workload sets on the worker, for the header."""
    if name == "latency":
        from hurtle.bench import latency

        counts = ", ".join(
            f"{k:,} x {seconds * options.scale:g} s"
            for (seconds, _), k in zip(latency.DISTRIBUTION, latency.counts(options.n), strict=True)
        )
        return f"sleeps: {counts}; worker {' '.join(latency.worker_args(options))} per process"
    if name == "heavyinit":
        from hurtle.bench import heavyinit

        where = ("in an on_preload hook, once, before fork" if options.preload
                 else "lazily, on first use in each process")
        return f"setup: {heavyinit.SETUP_CPU_S * 1000:.0f} ms of CPU, {where}"
    if name == "ping":
        from hurtle.bench import ping

        return (f"one task every {ping.INTERVAL_S * 1000:g} ms to a running worker (light load);"
                " memory read once it answered a warm-up task, idle")
    return None


@click.command()
@click.argument("workload", type=click.Choice(WORKLOADS))
@click.option("-n", "count", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Tasks per run.")
@click.option("--broker", "broker_url",
              help="Broker URL. Default: SQLite in a fresh temp dir for each run.")
@click.option("-p", "--processes", type=click.IntRange(min=1),
              help="Worker processes. Default: CPU count.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs; the median and range are reported.")
@click.option("--kind", type=click.Choice(["sync", "async"]),
              help="sync: `def` tasks in the thread pool; async: `async def` on the event loop."
              " Default: async for latency, sync otherwise.")
@click.option("--preload", is_flag=True,
              help="heavyinit: do the setup in an on_preload hook, once, before the worker forks.")
@click.option("--scale", type=click.FloatRange(min=0), default=1.0, hidden=True,
              help="latency: multiply every sleep by this (tests).")
@click.option("--in-flight", type=click.IntRange(min=1),
              help="latency: the worker's -c (async) or -t (sync) per process."
              " Default: N for async, min(N, 10,000) for sync.")
@click.option("--batch", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Calls per send_many.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: each run, then a summary.")
@click.option("--peers", "peer_list", metavar="NAMES",
              help="Also run these task queues, alternating with hurtle, on the --broker Redis:"
              " a comma list of celery,dramatiq,rq,arq,huey,taskiq (pip install 'hurtle[bench]').")
def bench(
    workload: str, count: int, broker_url: str | None, processes: int | None, repeat: int,
    kind: str | None, preload: bool, scale: float, in_flight: int | None, batch: int, as_json: bool,
    peer_list: str | None,
) -> None:
    """Run WORKLOAD and report enqueue and processing rates, only for verified runs."""
    if broker_url and broker_url.startswith("memory:"):
        fail("--broker: a memory:// broker lives in one process; the worker runs in another")
    if preload and workload != "heavyinit":
        fail("--preload: only the heavyinit workload has a setup to preload")
    kind = kind or _DEFAULT_KIND.get(workload, "sync")
    if in_flight and workload != "latency":
        fail("--in-flight: only the latency workload sets the worker's -c or -t")
    if peer_list is not None and workload == "ping":
        fail("--peers: the ping workload runs hurtle alone")
    if workload == "ping" and broker_url and broker_url.startswith(("amqp:", "amqps:")):
        fail("--broker: ping reads each task's result, and RabbitMQ keeps none: use redis:// or sqlite://")
    peers = _peer_names(peer_list, broker_url, preload, in_flight) if peer_list is not None else []
    options = Options(
        count, broker_url, processes or os.cpu_count() or 1, batch, kind, scale, preload, in_flight
    )
    try:
        run = _workload(workload)
    except HurtleError as exc:  # the workload's App read a bad $HURTLE_BROKER
        fail(str(exc))
    if peers:
        from hurtle.cli.bench_peers import compare  # imports nothing of a peer until asked

        compare(workload, run, options, peers, repeat, as_json, _describe(workload, options))
        return
    _hurtle_alone(workload, run, options, repeat, as_json)


def _peer_names(
    peer_list: str, broker_url: str | None, preload: bool, in_flight: int | None
) -> list[str]:
    """The --peers names, checked: known, installed, on a Redis broker; else one line, exit 2."""
    from hurtle.bench import peers

    names = list(dict.fromkeys(name.strip().lower() for name in peer_list.split(",") if name.strip()))
    if not names:
        fail(f"--peers: name one or more of {','.join(peers.NAMES)}")
    unknown = [name for name in names if name not in peers.NAMES]
    if unknown:
        fail(f"--peers: unknown peer {unknown[0]!r}; known: {','.join(peers.NAMES)}")
    if not broker_url or not broker_url.startswith(("redis://", "rediss://")):
        fail("--peers: the peers run on Redis; give --broker redis://HOST:PORT/DB")
    if preload or in_flight:
        fail(f"--{'preload' if preload else 'in-flight'}: sets hurtle's worker only; not with --peers")
    for name in names:
        absent = peers.missing(name)
        if absent:
            fail(f"--peers: {name} needs {', '.join(absent)}, not installed: pip install 'hurtle[bench]'")
    return names


def _hurtle_alone(workload: str, run: Workload, options: Options, repeat: int, as_json: bool) -> None:
    console = Console(stderr=as_json)
    if not as_json:
        where = display_url(options.broker) if options.broker else "SQLite in a fresh temp dir per run"
        console.print(
            f"hurtle bench {workload}: {options.n:,} tasks ({options.kind}), {options.processes} worker"
            f" process(es), {where}, {repeat} run(s)",
            markup=False,  # a URL's brackets are not markup
        )
        described = _describe(workload, options)
        if described:
            console.print(described)
    runs: list[RunResult] = []
    for index in range(repeat):
        with run_progress(f"run {index + 1}/{repeat}", options.n) as tick:
            try:
                result = run(options, tick)
            except HurtleError as exc:
                fail(str(exc))
        if as_json:
            click.echo(json.dumps(result.as_json()))
        else:
            console.print(f"run {index + 1}/{repeat}: {bench_report.one_line(result)}")
        if not result.verified:
            bench_report.report_failure(result)
            sys.exit(EXIT_UNVERIFIED)
        runs.append(result)
    spreads = summarize(runs)
    if as_json:
        summary = {"type": "summary", "system": "hurtle", "workload": workload, "kind": options.kind,
                   "n": options.n, "processes": options.processes, "runs": len(runs), "verified": True}
        for name, spread in spreads.items():
            summary[name] = {"median": spread.median, "min": spread.low, "max": spread.high}
        click.echo(json.dumps(summary))
    else:
        console.print(bench_report.table(spreads))
        if workload == "ping":
            console.print(bench_report.ping_notes(runs[0], len(runs)))
        else:
            console.print(bench_report.notes(runs[0], len(runs), options.batch))
