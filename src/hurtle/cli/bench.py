"""``hurtle bench WORKLOAD``: time hurtle end to end and verify every task ran."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

import click
from rich.console import Console
from rich.table import Table

from hurtle.bench.result import RunResult, Spread, summarize
from hurtle.bench.runner import Options
from hurtle.cli.common import fail
from hurtle.errors import HurtleError

EXIT_UNVERIFIED = 1

_MEASURES = {  # name: (label, unit)
    "enqueue_rate": ("enqueue", "tasks/s"),
    "processing_rate": ("processing", "tasks/s"),
    "wall_rate": ("wall", "tasks/s"),
    "startup_s": ("start-up", "s"),
    "worker_cpu_us_per_task": ("worker CPU", "us/task"),
    # latency
    "longest_sleep_s": ("longest sleep", "s"),
    "wall_s": ("wall time", "s"),
    "wall_over_longest": ("wall / longest sleep", "x"),
    "processing_s": ("processing time", "s"),
    "processing_over_longest": ("processing / longest sleep", "x"),
    "start_spread_s": ("first start -> last start", "s"),
    # heavyinit
    "setups": ("setups paid", "setups"),
}
_DEFAULT_KIND = {"latency": "async"}  # else sync


def _workload(name: str) -> Callable[[Options], RunResult]:
    # Imported here: a workload module makes its App at import, which every
    # other hurtle command should not pay for.
    if name == "noop":
        from hurtle.bench import noop

        return noop.run
    if name == "latency":
        from hurtle.bench import latency

        return latency.run
    if name == "heavyinit":
        from hurtle.bench import heavyinit

        return heavyinit.run
    raise click.BadParameter(f"unknown workload {name!r}")


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
    return None


@click.command()
@click.argument("workload", type=click.Choice(["noop", "latency", "heavyinit"]))
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
def bench(
    workload: str, count: int, broker_url: str | None, processes: int | None, repeat: int,
    kind: str | None, preload: bool, scale: float, in_flight: int | None, batch: int, as_json: bool,
) -> None:
    """Run WORKLOAD and report enqueue and processing rates, only for verified runs."""
    if broker_url and broker_url.startswith("memory:"):
        fail("--broker: a memory:// broker lives in one process; the worker runs in another")
    if preload and workload != "heavyinit":
        fail("--preload: only the heavyinit workload has a setup to preload")
    kind = kind or _DEFAULT_KIND.get(workload, "sync")
    if in_flight and workload != "latency":
        fail("--in-flight: only the latency workload sets the worker's -c or -t")
    options = Options(
        count, broker_url, processes or os.cpu_count() or 1, batch, kind, scale, preload, in_flight
    )
    try:
        run = _workload(workload)
    except HurtleError as exc:  # the workload's App read a bad $HURTLE_BROKER
        fail(str(exc))
    console = Console(stderr=as_json)
    if not as_json:
        where = broker_url or "SQLite in a fresh temp dir per run"
        console.print(
            f"hurtle bench {workload}: {count:,} tasks ({kind}), {options.processes} worker"
            f" process(es), {where}, {repeat} run(s)"
        )
        described = _describe(workload, options)
        if described:
            console.print(described)
    runs: list[RunResult] = []
    for index in range(repeat):
        try:
            result = run(options)
        except HurtleError as exc:
            fail(str(exc))
        if as_json:
            click.echo(json.dumps(result.as_json()))
        else:
            console.print(f"run {index + 1}/{repeat}: {_one_line(result)}")
        if not result.verified:
            _report_failure(result)
            sys.exit(EXIT_UNVERIFIED)
        runs.append(result)
    spreads = summarize(runs)
    if as_json:
        summary = {"type": "summary", "workload": workload, "kind": kind, "n": count,
                   "processes": options.processes, "runs": len(runs), "verified": True}
        for name, spread in spreads.items():
            summary[name] = {"median": spread.median, "min": spread.low, "max": spread.high}
        click.echo(json.dumps(summary))
    else:
        console.print(_table(spreads))
        console.print(_notes(runs[0], len(runs), batch))


def _one_line(result: RunResult) -> str:
    if not result.verified:
        return "[red]NOT VERIFIED[/red]: no speed reported (why: below)"
    rates = result.rates()
    parts = [f"{_MEASURES[k][0]} {_fmt(v, _MEASURES[k][1])}" for k, v in rates.items()]
    return " · ".join(parts) + f" · {result.ran:,}/{result.n:,} ran"


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "setups":
        return f"{value:.0f}"
    return f"{value:,.0f} us/task" if unit == "us/task" else f"{value:,.0f}/s"


def _table(spreads: dict[str, Spread]) -> Table:
    table = Table("measure")
    for heading in ("median", "min", "max"):
        table.add_column(heading, justify="right")
    table.add_column("unit")
    for name, spread in spreads.items():
        label, unit = _MEASURES[name]
        digits = {"s": 2, "x": 3}.get(unit, 0)
        values = (f"{v:,.{digits}f}" for v in (spread.median, spread.low, spread.high))
        table.add_row(label, *values, unit)
    return table


def _notes(result: RunResult, runs: int, batch: int) -> str:
    return (
        f"enqueue: send_many in batches of {batch:,}, timed alone, in this process.\n"
        "processing: first task start -> last task finish, by the tasks' own clocks;"
        " excludes worker start-up and the burst-mode exit check (the last acks are"
        " written one flush after the last finish; wall covers them).\n"
        "wall: worker subprocess start -> exit; includes interpreter start, app import,"
        " fork, connect and the burst-mode exit check.\n"
        "worker CPU: user + system time of the worker and its forked processes, start-up"
        " included, per task.\n"
        f"verified, each of {runs} run(s): {result.n:,} task runs counted by the tasks"
        " themselves, 0 pending and 0 dead-lettered in the broker afterwards, worker exit 0.\n"
        "Results are not stored (store_result=False), as Dramatiq stores none by default."
    )


def _report_failure(result: RunResult) -> None:
    click.echo(f"hurtle bench: run not verified, no speed reported: {'; '.join(result.problems)}",
               err=True)
    if result.worker_log:
        click.echo("--- worker log (tail) ---\n" + result.worker_log, err=True)
