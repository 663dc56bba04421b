"""What ``hurtle bench`` prints: one line per run, the table, the notes.

Public, so the comparison with other task queues (``benchmarks/peers`` in a
checkout) prints its runs with the same names, units and digits.
"""

from __future__ import annotations

import click
from rich.table import Table

from hurtle.bench.result import RunResult, Spread

EXIT_UNVERIFIED = 1  # the exit code of a bench with a run that was not verified

MEASURES = {  # name: (label, unit)
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
    # io
    "clients": ("clients made", "clients"),
    # ping
    "start_p50_ms": ("send -> start, p50", "ms"),
    "start_p95_ms": ("send -> start, p95", "ms"),
    "start_p99_ms": ("send -> start, p99", "ms"),
    "start_max_ms": ("send -> start, max", "ms"),
    "idle_rss_mb": ("idle worker process, RSS", "MB"),
    "idle_uss_mb": ("idle worker process, USS", "MB"),
    "supervisor_rss_mb": ("supervisor, RSS", "MB"),
}
_DIGITS = {"s": 2, "x": 3, "ms": 2, "MB": 1}


def one_line(result: RunResult) -> str:
    if not result.verified:
        return "[red]NOT VERIFIED[/red]: no speed reported (why: below)"
    rates = result.rates()
    parts = [f"{MEASURES[k][0]} {fmt(v, MEASURES[k][1])}" for k, v in rates.items()]
    return " · ".join(parts) + f" · {result.ran:,}/{result.n:,} ran"


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "x":
        return f"{value:.3f}x"
    if unit in ("setups", "clients"):
        return f"{value:.0f}"
    if unit in ("ms", "MB"):
        return f"{value:,.{_DIGITS[unit]}f} {unit}"
    return f"{value:,.0f} us/task" if unit == "us/task" else f"{value:,.0f}/s"


def number(value: float, unit: str) -> str:
    return f"{value:,.{_DIGITS.get(unit, 0)}f}"


def table(spreads: dict[str, Spread]) -> Table:
    summary = Table("measure")
    for heading in ("median", "min", "max"):
        summary.add_column(heading, justify="right")
    summary.add_column("unit")
    for name, spread in spreads.items():
        label, unit = MEASURES[name]
        summary.add_row(label, *(number(v, unit) for v in (spread.median, spread.low, spread.high)), unit)
    return summary


def notes(result: RunResult, runs: int, batch: int) -> str:
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


def io_notes(target: str, n: int) -> str:
    what = "requests the HTTP server answered" if target == "http" else "the Redis key's value"
    return (f"io: each run also verified by its target ({what} = {n:,}) and by its clients:"
            " at most one made per worker process, on its first task.")


def ping_notes(result: RunResult, runs: int) -> str:
    return (
        "send -> start: from just before send() in this process to the task's first line in the"
        " worker, by the machine's one clock; includes the send itself.\n"
        "memory: the largest worker process, idle, after one warm-up task; RSS counts the pages"
        " a fork shares with the supervisor, USS only its own.\n"
        f"verified, each of {runs} run(s): {result.n:,} results came back, 0 pending and 0"
        " dead-lettered afterwards, worker exit 0 after SIGTERM."
    )


def report_failure(result: RunResult) -> None:
    click.echo(f"hurtle bench: run not verified, no speed reported: {'; '.join(result.problems)}",
               err=True)
    if result.worker_log:
        click.echo("--- worker log (tail) ---\n" + result.worker_log, err=True)
