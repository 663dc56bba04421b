"""``hurtle bench WORKLOAD``: time hurtle end to end and verify every task ran.

The workloads are in ``hurtle.bench.workloads``; what is printed is in
``hurtle.bench.report``, the progress bar in ``hurtle.bench.progress``. The
comparison with other task queues is not part of the library: it runs from a
checkout (``python -m benchmarks.peers``), and ``--peers`` says so.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType

import click
from rich.console import Console

from hurtle.bench import report as bench_report
from hurtle.bench.io_target import DEFAULT_REDIS, check_reachable
from hurtle.bench.progress import run_progress
from hurtle.bench.report import EXIT_UNVERIFIED
from hurtle.bench.result import RunResult, summarize
from hurtle.bench.runner import Options
from hurtle.bench.workloads import DEFAULT_KIND, WORKLOADS, Workload, describe, load
from hurtle.cli.common import fail
from hurtle.cli.common import run as run_async
from hurtle.errors import HurtleError
from hurtle.urls import display_url

PEERS_POINTER = (
    "the peers comparison runs from a checkout: python -m benchmarks.peers WORKLOAD"
    " --broker redis://HOST:PORT/DB --peers celery,dramatiq,rq,arq,huey,taskiq"
)


@click.command()
@click.argument("workload", type=click.Choice(WORKLOADS))
@click.option("-n", "count", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Tasks per run.")
@click.option("--broker", "broker_url",
              help="Broker URL. Default: SQLite in a fresh temp dir for each run. On Redis and"
                   " RabbitMQ each run uses a prefix of its own (PREFIX-bench-TOKEN), deleted"
                   " after the run; with --profile, the URL's own, so the profiles stay.")
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
@click.option("-t", "--threads", metavar="N|auto",
              help="The worker's -t (sync tasks: threads per process, or auto). Default: the worker's.")
@click.option("--io", "io_kind", type=click.Choice(["redis", "http"]),
              help="io: each task's round trip: an INCR on Redis, or a GET to an HTTP server the bench"
              " starts on 127.0.0.1. Default: redis.")
@click.option("--io-redis", metavar="URL",
              help="io --io redis: the Redis the tasks INCR. Default: redis://127.0.0.1:6379/0.")
@click.option("--batch", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Calls per send_many.")
@click.option("--profile", is_flag=True,
              help="Run the worker with profiling on for every task (`hurtle worker --profile all`).")
@click.option("--profile-hz", type=click.FloatRange(min=1, max=1000),
              help="With --profile: samples per second of each execution. Default: the worker's.")
@click.option("--profile-sample", type=click.FloatRange(min=0, max=1, min_open=True),
              help="With --profile: the fraction of executions profiled. Default: every one.")
@click.option("--metrics", is_flag=True,
              help="Run the worker with Prometheus metrics on (`hurtle worker --metrics-port`, a free port).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: each run, then a summary.")
@click.option("--peers", "peer_list", metavar="NAMES", hidden=True,
              help="Moved: the comparison with other task queues runs from a checkout.")
def bench(
    workload: str, count: int, broker_url: str | None, processes: int | None, repeat: int,
    kind: str | None, preload: bool, scale: float, in_flight: int | None, threads: str | None,
    io_kind: str | None,
    io_redis: str | None, batch: int, profile: bool, profile_hz: float | None,
    profile_sample: float | None, metrics: bool, as_json: bool, peer_list: str | None,
) -> None:
    """Run WORKLOAD and report enqueue and processing rates, only for verified runs."""
    if peer_list is not None:
        fail(f"--peers: {PEERS_POINTER}")
    if broker_url and broker_url.startswith("memory:"):
        fail("--broker: a memory:// broker lives in one process; the worker runs in another")
    if preload and workload != "heavyinit":
        fail("--preload: only the heavyinit workload has a setup to preload")
    kind = kind or DEFAULT_KIND.get(workload, "sync")
    if in_flight and workload != "latency":
        fail("--in-flight: only the latency workload sets the worker's -c or -t")
    if threads is not None and in_flight is not None:
        fail("--threads: latency sets the worker's -t from --in-flight")
    if workload == "cpu" and kind == "async":
        fail("--kind async: the cpu workload's tasks compute, which an async def task must not do")
    if threads is not None and threads.strip().lower() != "auto" and not (
        threads.strip().isdigit() and int(threads) >= 1
    ):
        fail(f"--threads: expected auto or a whole number >= 1, not {threads!r}")
    io_kind, io_redis = _io_options(workload, io_kind, io_redis)
    if workload == "ping" and broker_url and broker_url.startswith(("amqp:", "amqps:")):
        fail("--broker: ping reads each task's result, and RabbitMQ keeps none: use redis:// or sqlite://")
    if not profile and (profile_hz is not None or profile_sample is not None):
        fail(f"--profile-{'hz' if profile_hz is not None else 'sample'} needs --profile")
    if profile and broker_url:
        _check_keeps_profiles(broker_url)
    if metrics:
        try:
            import prometheus_client  # noqa: F401 - checked here, not in every run's worker
        except ImportError:
            fail("--metrics needs prometheus-client: pip install 'hurtle[metrics]'")
    options = Options(
        count, broker_url, processes or os.cpu_count() or 1, batch, kind, scale, preload, in_flight,
        profile, profile_hz, profile_sample, io_kind, io_redis, metrics, threads,
    )
    try:
        run = load(workload)
        if workload == "io":
            check_reachable(io_kind, io_redis)
    except HurtleError as exc:  # the workload's App read a bad $HURTLE_BROKER; no I/O target
        fail(str(exc))
    signal.signal(signal.SIGTERM, _interrupted)  # as Ctrl-C: the worker stops, the namespace goes
    _hurtle_alone(workload, run, options, repeat, as_json)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _io_options(workload: str, io_kind: str | None, io_redis: str | None) -> tuple[str, str]:
    """The io workload's target and Redis, defaulted; either given to another workload is an error."""
    if workload != "io" and (io_kind or io_redis):
        fail(f"--{'io' if io_kind else 'io-redis'}: only the io workload makes round trips")
    if io_kind == "http" and io_redis:
        fail("--io-redis: the tasks make HTTP requests with --io http, not Redis ones")
    return io_kind or "redis", io_redis or DEFAULT_REDIS


def _check_keeps_profiles(url: str) -> None:
    """A broker that keeps no profiles fails here in one line, not in every worker."""
    from hurtle.tally_source import open_tallies

    try:
        store = open_tallies(url, None, None)
    except HurtleError as exc:
        fail(f"--profile: {exc}")
    run_async(store.close())


def _profile_rate(options: Options) -> tuple[float, float] | None:
    """The worker's sampling rate (Hz) and share of executions profiled; None when off."""
    if not options.profile:
        return None
    from hurtle.profiling.profiler import ProfileConfig

    default = ProfileConfig()
    return (options.profile_hz or default.hz,
            default.sample if options.profile_sample is None else options.profile_sample)


def profiling_line(options: Options) -> str | None:
    """The header's word on profiling: a profiled run is not comparable with one that is not."""
    rate = _profile_rate(options)
    if rate is None:
        return None
    hz, sample = rate
    executions = "every execution" if sample >= 1.0 else f"{sample:.0%} of executions"
    return f"profiling on: every task at {hz:g} Hz, {executions} (the worker runs with --profile all)"


def _hurtle_alone(workload: str, run: Workload, options: Options, repeat: int, as_json: bool) -> None:
    console = Console(stderr=as_json)
    if not as_json:
        where = display_url(options.broker) if options.broker else "SQLite in a fresh temp dir per run"
        console.print(
            f"hurtle bench {workload}: {options.n:,} tasks ({options.kind}), {options.processes} worker"
            f" process(es), {where}, {repeat} run(s)",
            markup=False,  # a URL's brackets are not markup
        )
        metrics_line = "metrics on: the worker serves /metrics (--metrics-port)" if options.metrics else None
        for line in (describe(workload, options), profiling_line(options), metrics_line):
            if line:
                console.print(line)
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
                   "n": options.n, "processes": options.processes, "runs": len(runs), "verified": True,
                   "profile": _profile_json(options), "metrics": options.metrics}
        for name, spread in spreads.items():
            summary[name] = {"median": spread.median, "min": spread.low, "max": spread.high}
        click.echo(json.dumps(summary))
    else:
        console.print(bench_report.table(spreads))
        if workload == "ping":
            console.print(bench_report.ping_notes(runs[0], len(runs)))
        else:
            console.print(bench_report.notes(runs[0], len(runs), options.batch))
        if workload == "io":
            console.print(bench_report.io_notes(options.io, options.n))


def _profile_json(options: Options) -> dict[str, float] | None:
    rate = _profile_rate(options)
    return None if rate is None else {"hz": rate[0], "sample": rate[1]}
