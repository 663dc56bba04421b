"""``hurtle status``'s view: its tables, built from one read of the broker and the registry.

``read_snapshot`` reads everything the view shows; each function in ``SECTIONS``
turns the snapshot into one table (or one line saying why there is none). The
one-shot command prints them, ``--watch`` redraws them, ``--json`` dumps the
snapshot: a new table is a function added to ``SECTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.table import Table

from hurtle.brokers import QueueStats
from hurtle.cli.common import Where
from hurtle.cli.literal import literal
from hurtle.cli.status_history import (
    TaskHistory,
    deploy_line,
    deploys_json,
    flow_cells,
    flow_rates,
    not_kept,
    read_task_history,
    tasks_json,
    tasks_table,
)
from hurtle.cli.status_workers import duration, not_visible, read_registry, workers_table
from hurtle.client import Connection
from hurtle.observe.registry import WorkerRecord, workers_json
from hurtle.worker.startup import describe_results


@dataclass(frozen=True)
class Snapshot:
    """What the view shows, read at one moment."""

    where: Where
    queues: list[QueueStats]
    #: None where no store of the app keeps a worker registry.
    workers: list[WorkerRecord] | None
    #: The last hour of the task history; None where the app keeps none.
    history: TaskHistory | None = None


async def read_snapshot(connection: Connection, where: Where, queues: Sequence[str] | None) -> Snapshot:
    """The queues' counts (``queues``, else every known queue), the living workers and
    the last hour of the task history."""
    return Snapshot(
        where, await connection.broker.stats(queues), await read_registry(where),
        await read_task_history(connection, where),
    )


#: What a section gives: a table, or a line of plain text (printed as it is, never as markup).
Shown = Table | str


def queues_section(snapshot: Snapshot) -> Shown:
    """Ready, oldest, delayed, in flight and dead per queue, and taken in and settled per
    minute over the last 5 minutes; "?" where the broker cannot know."""
    where = snapshot.where
    if not snapshot.queues:
        return f"no queues on {where.broker_url}"
    results = f"results: {describe_results(where.broker_url, where.results_url)}"
    # Queue names are the broker's data, whoever wrote them: printed as they are, never as markup.
    table = Table(
        "queue", "ready", "oldest", "delayed", "in flight", "dead", "in/min", "out/min",
        title=literal(where.broker_url), caption=literal(results),
    )
    for row in snapshot.queues:
        oldest = None if row.oldest_ready_age is None else duration(row.oldest_ready_age)
        figures = (row.ready, oldest, row.delayed, row.in_flight, row.dead)
        cells = [literal("?" if figure is None else figure) for figure in figures]
        table.add_row(literal(row.name), *cells, *flow_cells(snapshot.history, row.name))
    return table


def workers_section(snapshot: Snapshot) -> Shown:
    """The worker processes alive now, or why none can be seen."""
    if snapshot.workers is None:
        return not_visible(snapshot.where)
    if not snapshot.workers:
        return "no workers running"
    return workers_table(snapshot.workers)


def tasks_section(snapshot: Snapshot) -> Shown:
    """Each task's rate, failures, queue wait and run time over the last 5 minutes and
    the last hour, with the latest deploy marker; or why there is no history."""
    history = snapshot.history
    if history is None:
        return not_kept(snapshot.where)
    deployed = deploy_line(history)
    if not history.hour.tasks:
        return "no tasks settled in the last hour" + ("" if deployed is None else f"; {deployed}")
    table = tasks_table(history)
    if deployed is not None:
        table.caption = literal(deployed)
    return table


#: The view, top to bottom: each section draws one table from the same snapshot.
SECTIONS: tuple[Callable[[Snapshot], Shown], ...] = (queues_section, workers_section, tasks_section)


def sections(snapshot: Snapshot) -> list[Shown]:
    return [section(snapshot) for section in SECTIONS]


def renderables(snapshot: Snapshot) -> list[RenderableType]:
    """The sections for Rich to draw (``--watch``), lines of text never read as markup."""
    return [literal(part) if isinstance(part, str) else part for part in sections(snapshot)]


def print_view(snapshot: Snapshot) -> None:
    """Print the view once. A line of text is echoed as it is, unwrapped, so
    ``hurtle status | grep`` finds it whole."""
    console = Console()
    for part in sections(snapshot):
        if isinstance(part, str):
            click.echo(part)
        else:
            console.print(part)


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """``hurtle status --json``: ``{"queues": [...], "workers": [...] or null,
    "tasks": [...] or null, "deploys": [...] or null}``."""
    workers = None if snapshot.workers is None else workers_json(snapshot.workers)
    history = snapshot.history
    return {
        "queues": [_queue_json(row, history) for row in snapshot.queues], "workers": workers,
        "tasks": None if history is None else tasks_json(history),
        "deploys": None if history is None else deploys_json(history),
    }


def _queue_json(row: QueueStats, history: TaskHistory | None) -> dict[str, Any]:
    rate_in, rate_out = flow_rates(history, row.name)
    return {"name": row.name, "ready": row.ready, "oldest_ready_age": row.oldest_ready_age,
            "delayed": row.delayed, "in_flight": row.in_flight, "dead": row.dead,
            "in_per_minute": rate_in, "out_per_minute": rate_out}
