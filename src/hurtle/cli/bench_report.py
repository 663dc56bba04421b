"""What ``hurtle bench`` prints: one line per run, the tables, the notes, the JSON summaries.

With ``--peers`` there is one table per measure: each system, its
configuration, its median and range over its verified runs, and how many
times better hurtle's median is ("hurtle vs it": hurtle / peer for rates,
peer / hurtle for times and CPU, so above 1 always means hurtle is ahead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
from rich.table import Table

from hurtle.bench.result import RunResult, Spread, summarize

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
    # ping
    "start_p50_ms": ("send -> start, p50", "ms"),
    "start_p95_ms": ("send -> start, p95", "ms"),
    "start_p99_ms": ("send -> start, p99", "ms"),
    "start_max_ms": ("send -> start, max", "ms"),
    "idle_rss_mb": ("idle worker process, RSS", "MB"),
    "idle_uss_mb": ("idle worker process, USS", "MB"),
    "supervisor_rss_mb": ("supervisor, RSS", "MB"),
}
_HIGHER_IS_BETTER = {"tasks/s"}
_NO_RATIO = {"longest_sleep_s", "setups"}  # the same for all, or a count to read, not to divide
_DIGITS = {"s": 2, "x": 3, "ms": 2, "MB": 1}


def one_line(result: RunResult) -> str:
    if not result.verified:
        return "[red]NOT VERIFIED[/red]: no speed reported (why: below)"
    rates = result.rates()
    parts = [f"{MEASURES[k][0]} {fmt(v, MEASURES[k][1])}" for k, v in rates.items()]
    return " · ".join(parts) + f" · {result.ran:,}/{result.n:,} ran"


def peer_line(result: RunResult) -> str:
    """A peer's run: its rates, or why it has none, on the same line."""
    if result.verified:
        return one_line(result)
    return "[red]NOT VERIFIED[/red], no speed: " + "; ".join(result.problems)


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "setups":
        return f"{value:.0f}"
    if unit in ("ms", "MB"):
        return f"{value:,.{_DIGITS[unit]}f} {unit}"
    return f"{value:,.0f} us/task" if unit == "us/task" else f"{value:,.0f}/s"


def _number(value: float, unit: str) -> str:
    return f"{value:,.{_DIGITS.get(unit, 0)}f}"


def table(spreads: dict[str, Spread]) -> Table:
    summary = Table("measure")
    for heading in ("median", "min", "max"):
        summary.add_column(heading, justify="right")
    summary.add_column("unit")
    for name, spread in spreads.items():
        label, unit = MEASURES[name]
        summary.add_row(label, *(_number(v, unit) for v in (spread.median, spread.low, spread.high)), unit)
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


def ping_notes(result: RunResult, runs: int) -> str:
    return (
        "send -> start: from just before send() in this process to the task's first line in the"
        " worker, by the machine's one clock; includes the send itself.\n"
        "memory: the largest worker process, idle, after one warm-up task; RSS counts the pages"
        " a fork shares with the supervisor, USS only its own.\n"
        f"verified, each of {runs} run(s): {result.n:,} results came back, 0 pending and 0"
        " dead-lettered afterwards, worker exit 0 after SIGTERM."
    )


def peer_notes() -> str:
    return (
        "hurtle vs it: how many times better hurtle's median is: hurtle / peer for rates,"
        " peer / hurtle for times and CPU (above 1: hurtle ahead).\n"
        "processing: first task start -> last task finish, by the tasks' own clocks, for every"
        " system. wall: worker start -> exit for hurtle (burst mode), worker start -> last task"
        " finish for a peer (it never exits by itself: the bench stops it once the tasks' own"
        " count reaches N).\n"
        "verified, each run: N task runs counted by the tasks themselves, nothing left queued or"
        " unacknowledged, nothing dead-lettered where the system keeps a count; a run that is not"
        " says why and has no speed. No system stores results."
    )


def report_failure(result: RunResult) -> None:
    click.echo(f"hurtle bench: run not verified, no speed reported: {'; '.join(result.problems)}",
               err=True)
    if result.worker_log:
        click.echo("--- worker log (tail) ---\n" + result.worker_log, err=True)


@dataclass(frozen=True)
class System:
    """One system in a comparison: its name, version, configuration, and runs in order."""

    name: str
    version: str
    config: str
    runs: list[RunResult]

    def spreads(self) -> dict[str, Spread]:
        return summarize([run for run in self.runs if run.verified])


def ratio(name: str, hurtle: float, peer: float) -> float | None:
    """How many times better hurtle is on ``name``; None where it means nothing."""
    if name in _NO_RATIO or hurtle <= 0 or peer <= 0:
        return None
    return hurtle / peer if MEASURES[name][1] in _HIGHER_IS_BETTER else peer / hurtle


def comparison(systems: list[System]) -> list[Table]:
    """One table per measure; ``systems[0]`` is hurtle."""
    spreads = {system.name: system.spreads() for system in systems}
    names = [name for name in MEASURES if name != "longest_sleep_s"
             and any(name in s for s in spreads.values())]
    tables = []
    for name in names:
        label, unit = MEASURES[name]
        shown = Table("system", "configuration", title=f"{label} ({unit})", title_justify="left")
        for heading in ("median", "range", "hurtle vs it"):
            shown.add_column(heading, justify="right")
        base = spreads[systems[0].name].get(name)
        for system in systems:
            spread = spreads[system.name].get(name)
            if spread is None:
                shown.add_row(system.name, system.config, "no verified run", "", "")
                continue
            times = ratio(name, base.median, spread.median) if base and system is not systems[0] else None
            shown.add_row(
                system.name, system.config, _number(spread.median, unit),
                f"{_number(spread.low, unit)} - {_number(spread.high, unit)}",
                f"{times:.2f}x" if times is not None else "",
            )
        tables.append(shown)
    return tables


def summaries(
    systems: list[System], workload: str, kind: str, n: int, processes: int
) -> list[dict[str, Any]]:
    """The JSON summary of each system, with hurtle's ratio to each peer."""
    hurtle = systems[0].spreads()
    out = []
    for system in systems:
        spreads = system.spreads()
        verified = sum(run.verified for run in system.runs)
        data: dict[str, Any] = {
            "type": "summary", "system": system.name, "version": system.version,
            "config": system.config, "workload": workload, "kind": kind, "n": n,
            "processes": processes, "runs": len(system.runs), "verified_runs": verified,
            "verified": verified == len(system.runs),
        }
        for name, spread in spreads.items():
            data[name] = {"median": spread.median, "min": spread.low, "max": spread.high}
        if system is not systems[0]:
            ratios = {name: ratio(name, hurtle[name].median, spread.median)
                      for name, spread in spreads.items() if name in hurtle}
            data["hurtle_ratio"] = {name: value for name, value in ratios.items() if value is not None}
        out.append(data)
    return out
