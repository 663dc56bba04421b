"""What the comparison prints: one table per measure, the notes, the JSON summaries.

Each table: each system, its configuration, its median and range over its
verified runs, and how many times better hurtle's median is ("hurtle vs it":
hurtle / peer for rates, peer / hurtle for times and CPU, so above 1 always
means hurtle is ahead). A run's line and the measures' names and units are
hurtle's own (``hurtle.bench.report``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table

from hurtle.bench.report import MEASURES, number, one_line
from hurtle.bench.result import RunResult, Spread, summarize

_HIGHER_IS_BETTER = {"tasks/s"}
_NO_RATIO = {"longest_sleep_s", "setups", "clients"}  # the same for all, or a count to read, not to divide


def peer_line(result: RunResult) -> str:
    """A peer's run: its rates, or why it has none, on the same line."""
    if result.verified:
        return one_line(result)
    return "[red]NOT VERIFIED[/red], no speed: " + "; ".join(result.problems)


def peer_notes(workload: str = "") -> str:
    if workload == "chord":
        stored = (" chord: N + 1 runs, the callback once; hurtle's and Celery's callbacks are given the N"
                  " results (Celery's members store them in its result backend, hurtle's members keep"
                  " them in the workflow's state), Dramatiq's completion callback is given none.")
    else:
        stored = " No system stores results."
    return (
        "hurtle vs it: how many times better hurtle's median is: hurtle / peer for rates,"
        " peer / hurtle for times and CPU (above 1: hurtle ahead).\n"
        "processing: first task start -> last task finish, by the tasks' own clocks, for every"
        " system. wall: worker start -> exit for hurtle (burst mode), worker start -> last task"
        " finish for a peer (it never exits by itself: the bench stops it once the tasks' own"
        " count reaches N).\n"
        "verified, each run: N task runs counted by the tasks themselves, nothing left queued or"
        " unacknowledged, nothing dead-lettered where the system keeps a count; a run that is not"
        " says why and has no speed." + stored
    )


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
                system.name, system.config, number(spread.median, unit),
                f"{number(spread.low, unit)} - {number(spread.high, unit)}",
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
