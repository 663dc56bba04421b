"""The demo's summary: read every stored ``Result`` back and show where the time went.

Both figures are exact and come from the worker: run time is ``finished_at -
started_at`` of a task's last attempt, queue wait is ``started_at - ready_at``
of that attempt (``ready_at`` is its eta, or when it was sent).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hurtle.brokers import Broker
from hurtle.demo.tasks import QUEUE
from hurtle.demo.workload import Kind, Plan, Sent
from hurtle.envelope import DecodeError, Result, decode, decode_result
from hurtle.errors import ConfigurationError

PERCENTILES = (50, 95, 99)
MAX_WIDTH = 88  # columns: the tables line up, and fit an 80-column terminal or log


@dataclass
class KindReport:
    """The stored results of one kind of task."""

    kind: Kind
    succeeded: int = 0
    failed: int = 0
    missing: int = 0
    retries: int = 0
    first_error: str = ""
    waits: list[float] = field(default_factory=list)  # seconds, of each task's last attempt
    runs: list[float] = field(default_factory=list)  # seconds, last attempt


@dataclass
class Summary:
    """A demo run as measured, beside its plan, so any difference can be named."""

    plan: Plan
    sent: Sent
    processes: int
    kinds: list[KindReport]
    wall: float  # seconds from the worker's start to the last task's end
    startup: float  # seconds from the worker's start to the first task's start
    dead_letters: int
    reasons: list[tuple[int, str, str]]  # (count, task, first line of the reason)

    @property
    def succeeded(self) -> int:
        return sum(k.succeeded for k in self.kinds)

    @property
    def waits(self) -> list[float]:
        return [wait for report in self.kinds for wait in report.waits]

    @property
    def runs(self) -> list[float]:
        return [run for report in self.kinds for run in report.runs]

    @property
    def retries(self) -> int:
        return sum(k.retries for k in self.kinds)

    @property
    def problems(self) -> list[str]:
        """What went against the plan, one phrase each; empty when all went to plan."""
        found = []
        missing = sum(k.missing for k in self.kinds)
        if missing:
            found.append(f"{missing:,} task(s) left no result")
        for report in self.kinds:
            if report.kind.succeeds and report.failed:
                found.append(f"{report.failed:,} {report.kind.name} task(s) failed: {report.first_error}")
        if self.dead_letters != self.plan.expected_dead:
            found.append(f"{self.dead_letters:,} dead letters where {self.plan.expected_dead:,} were planned")
        return found


async def collect(
    broker: Broker, plan: Plan, sent: Sent, *, processes: int, worker_started: float, dead_before: int
) -> Summary:
    """Read the results and dead letters of the tasks in ``sent``."""
    store = broker.result_store()
    if store is None:
        raise ConfigurationError(f"broker {broker.url} keeps no results: the demo cannot measure")
    ids = [task_id for kind_ids in sent.ids.values() for task_id in kind_ids]
    bodies = await asyncio.gather(*(store.get(task_id) for task_id in ids))
    records = {
        task_id: decode_result(body) for task_id, body in zip(ids, bodies, strict=True) if body is not None
    }
    kinds = [_kind_report(kind, sent, records) for kind in plan.kinds]
    finished = [r.finished_at for r in records.values()]
    started = [r.started_at for r in records.values()]
    (stats,) = await broker.stats([QUEUE])
    dead = stats.dead - dead_before
    letters = await broker.dead_letters(QUEUE, limit=dead + 100)
    return Summary(
        plan=plan,
        sent=sent,
        processes=processes,
        kinds=kinds,
        wall=max(finished, default=worker_started) - worker_started,
        startup=min(started, default=worker_started) - worker_started,
        dead_letters=dead,
        reasons=_reasons([(letter.body, letter.reason) for letter in letters], set(ids)),
    )


def _kind_report(kind: Kind, sent: Sent, records: dict[str, Result]) -> KindReport:
    report = KindReport(kind)
    for task_id in sent.ids.get(kind.name, []):
        result = records.get(task_id)
        if result is None:
            report.missing += 1
            continue
        report.retries += result.attempt
        if result.status == "succeeded":
            report.succeeded += 1
        else:
            report.failed += 1
            report.first_error = report.first_error or result.error.partition("\n")[0]
        if kind.ran:
            report.runs.append(result.finished_at - result.started_at)
            report.waits.append(result.started_at - result.ready_at)
    return report


def _reasons(letters: Sequence[tuple[bytes, str]], ours: set[str]) -> list[tuple[int, str, str]]:
    """Dead letters of this run, grouped by task and the first line of their reason."""
    groups: Counter[tuple[str, str]] = Counter()
    for body, reason in letters:
        try:
            envelope = decode(body)
        except DecodeError:
            continue
        if envelope.id in ours:
            groups[(envelope.task.rsplit(".", 1)[-1], reason.partition("\n")[0])] += 1
    return [(count, task, line) for (task, line), count in groups.most_common()]


# -- numbers ------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> list[float]:
    """p50, p95 and p99 by the nearest-rank method; [] for no values."""
    if not values:
        return []
    ordered = sorted(values)
    return [ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in PERCENTILES]


def _unit(largest: float) -> tuple[float, str, str]:
    """Scale, unit and format that show ``largest`` (seconds) with about 3 digits."""
    if largest >= 1.0:
        return 1.0, "s", ".2f"
    millis = largest * 1000
    return 1000.0, "ms", ".0f" if millis >= 100 else ".1f" if millis >= 10 else ".2f"


def labelled(values: Sequence[float]) -> str:
    """``p50 12.3 ms · p95 40.1 ms · p99 52.0 ms``: one unit per number."""
    points = percentiles(values)
    if not points:
        return "n/a"
    parts = []
    for p, value in zip(PERCENTILES, points, strict=True):
        scale, unit, fmt = _unit(value)
        parts.append(f"p{p} {value * scale:{fmt}} {unit}")
    return " · ".join(parts)


def compact(values: Sequence[float]) -> str:
    """``12.3/40.1/52.0 ms``: one unit, chosen by the largest (p99)."""
    points = percentiles(values)
    if not points:
        return "—"
    scale, unit, fmt = _unit(points[-1])
    return "/".join(f"{v * scale:{fmt}}" for v in points) + f" {unit}"


# -- tables ---------------------------------------------------------------------


def render(summary: Summary, console: Console) -> None:
    width = min(console.width, MAX_WIDTH)
    tables = (_overview(summary, width), _per_task(summary, width), _dead(summary, width))
    console.print(Group(*(part for table in tables for part in (Text(), table))))


def _overview(summary: Summary, width: int) -> Table:
    plan, sent = summary.plan, summary.sent
    rate = sent.count / summary.wall if summary.wall > 0 else 0.0
    table = Table(
        box=box.ROUNDED,
        show_header=False,
        width=width,
        title=f"[bold]summary[/]: {sent.count:,} tasks, {summary.processes} worker process(es)",
        caption=(
            "queue wait: from when a task's last attempt could run (sent, or its retry due)"
            " to its start. Every task was queued before the worker started, so most of the"
            " wait is time behind the backlog."
        ),
        caption_justify="left",
    )
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    table.add_row("tasks", _outcomes(summary))
    table.add_row("sent in", f"{sent.seconds:.2f} s  [dim]({sent.batches} round trips: send_many batches)[/]")
    table.add_row(
        "wall time",
        f"{summary.wall:.2f} s  [dim](from the worker's start; first task at +{summary.startup:.2f} s)[/]",
    )
    table.add_row("tasks/s", f"{rate:,.0f}")
    table.add_row("queue wait", labelled(summary.waits))
    table.add_row("run time", labelled(summary.runs))
    table.add_row("retries", _planned(summary.retries, plan.expected_retries, _retry_sources(summary)))
    by_task = ", ".join(f"{count:,} {task}" for count, task, _ in summary.reasons)
    table.add_row("dead letters", _planned(summary.dead_letters, plan.expected_dead, by_task))
    return table


def _outcomes(summary: Summary) -> str:
    failed = sum(k.failed for k in summary.kinds)
    text = f"{summary.sent.count:,} sent, {summary.succeeded:,} succeeded, {failed:,} failed for good"
    missing = sum(k.missing for k in summary.kinds)
    return text + (f", [red]{missing:,} unfinished[/]" if missing else "")


def _retry_sources(summary: Summary) -> str:
    parts = [f"{k.kind.count:,} {k.kind.name} x {k.kind.retries_each}" for k in summary.kinds
             if k.kind.retries_each]
    return ", ".join(parts)


def _planned(actual: int, planned: int, detail: str) -> str:
    if actual == planned:
        return f"{actual:,}  [dim]({detail})[/]"
    return f"[red]{actual:,}[/]  [dim](planned {planned:,}: {detail})[/]"


def _per_task(summary: Summary, width: int) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        width=width,
        title="[bold]where the time went[/], per task",
        caption=(
            "run time is wall-clock time on the worker: a CPU-bound task that shares a core"
            " with other threads and processes takes longer than it would alone."
        ),
        caption_justify="left",
    )
    table.add_column("task", no_wrap=True)
    table.add_column("kind", style="dim", no_wrap=True)
    table.add_column("tasks", justify="right", no_wrap=True)
    table.add_column("wait p50/p95/p99", justify="right", no_wrap=True)
    table.add_column("run p50/p95/p99", justify="right", no_wrap=True)
    for report in summary.kinds:
        if not report.kind.ran:
            never = "[dim]never ran[/]"
            table.add_row(report.kind.name, report.kind.label, f"{report.kind.count:,}", never, never)
            continue
        wait = compact(report.waits) if report.waits else "[dim]-[/]"
        table.add_row(
            report.kind.name, report.kind.label, f"{report.kind.count:,}", wait, compact(report.runs)
        )
    ran = sum(k.kind.count for k in summary.kinds if k.kind.ran)
    table.add_section()
    table.add_row("[bold]all that ran[/]", "", f"{ran:,}", compact(summary.waits), compact(summary.runs))
    return table


def _dead(summary: Summary, width: int) -> Table:
    why = {k.kind.name: k.kind.why for k in summary.kinds}
    table = Table(box=box.SIMPLE_HEAD, width=width, title=f"[bold]dead letters[/] ({summary.dead_letters:,})")
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("task", no_wrap=True)
    table.add_column("reason (first line), and why it was planned", ratio=1)
    for count, task, line in summary.reasons:
        explanation = why.get(task, "")
        reason = escape(line) + (f"\n[dim]{escape(explanation)}[/]" if explanation else "")
        table.add_row(f"{count:,}", task, reason)
    return table
