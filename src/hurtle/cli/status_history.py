"""``hurtle status``'s tasks: the task history (``hurtle.observe.history``), read and shown.

Like ``top``: one row per task over the last 5 minutes and the last hour (rate,
failures, queue wait and run time percentiles), the task that took the most run
time first; the queues table's ``in/min`` and ``out/min``; and the latest deploy
marker. Task names and marker texts come from the store, whoever wrote them:
printed through ``literal``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from rich.table import Column, Table

from hurtle.cli.common import Where
from hurtle.cli.literal import literal
from hurtle.cli.status_workers import NAME_WIDTH, duration
from hurtle.client import Connection
from hurtle.observe.deploys import DeployMark, read_deploys
from hurtle.observe.history import History, TaskSummary, read_windows
from hurtle.tallies import TallyStore
from hurtle.tally_source import find_tallies

RECENT, HOUR = 5, 60  # minutes: the two windows shown
FIGURES = ("", "/min", "failed", "wait p50", "wait p95", "run p50", "run p95", "total run")


@dataclass
class TaskHistory:
    """What ``hurtle status`` shows of the history, read at ``now``."""

    recent: History
    hour: History
    deploys: list[DeployMark]  # within the last hour, oldest first
    latest_deploy: DeployMark | None  # the latest kept, however old
    now: float


def not_kept(where: Where) -> str:
    """Why there is no task history to show, and how to have one."""
    if where.history_ttl <= 0:
        return "tasks: no history (the app's history_ttl is 0)"
    return (
        f"tasks: not visible ({where.broker_url.scheme} keeps no task history); give the app"
        " a result store that does, as App(results='redis://...') or results='sqlite:///results.db'"
    )


async def read_task_history(connection: Connection, where: Where) -> TaskHistory | None:
    """The last hour of the history, in one read; None when the app keeps none."""
    if where.history_ttl <= 0:
        return None
    borrowed = connection.broker.tally_store()
    found = None if borrowed is not None else find_tallies(where.broker_url, where.results_url)
    store: TallyStore | None = borrowed or found
    if store is None:
        return None
    try:
        if found is not None and _absent_sqlite(found.broker):
            store = _Empty()  # no worker ever wrote there; reading must not create the file
        now = time.time()
        recent, hour = await read_windows(store, [RECENT, HOUR], now)
        marks = await read_deploys(store)
    finally:
        if found is not None:
            await found.close()
    since = now - HOUR * 60
    return TaskHistory(recent, hour, [m for m in marks if m.at >= since], marks[-1] if marks else None, now)


def _absent_sqlite(broker: object) -> bool:
    from hurtle.brokers.sqlite import SQLiteBroker

    return isinstance(broker, SQLiteBroker) and not os.path.exists(broker.path)


class _Empty(TallyStore):
    """A store with nothing in it: what a SQLite file never written holds."""

    async def add(self, key: str, counts: Any, ttl: float, *, highest: Any = None) -> None:
        raise NotImplementedError

    async def read(self, key: str) -> dict[str, int]:
        return {}

    async def read_many(self, keys: Any) -> list[dict[str, int]]:
        return [{} for _ in keys]

    async def keys(self, prefix: str) -> list[str]:
        return []

    async def delete(self, keys: Any) -> None:
        pass

    async def close(self) -> None:
        pass


# -- the tasks table -------------------------------------------------------------------

def tasks_table(view: TaskHistory) -> Table:
    """Two rows per task seen in the last hour, the most run time first: its last 5
    minutes, then its last hour (a task idle for 5 minutes shows its hour only)."""
    names = [literal(_cut(hour.task, NAME_WIDTH)) for hour in view.hour.by_run_time()]
    table = Table(
        # The name is what a row is read by: never folded to make room for figures.
        Column("task", no_wrap=True, min_width=min(NAME_WIDTH, max((len(n) for n in names), default=4))),
        *FIGURES,
        title="tasks (percentiles are bucket estimates)",
    )
    recent = view.recent.tasks
    for name, hour in zip(names, view.hour.by_run_time(), strict=True):
        now = recent.get(hour.task)
        if now is not None and now.settled:
            table.add_row(name, f"{RECENT}m", *_cells(now))
            table.add_row("", f"{HOUR // 60}h", *_cells(hour), end_section=True)
        else:
            table.add_row(name, f"{HOUR // 60}h", *_cells(hour), end_section=True)
    return table


def _cells(summary: TaskSummary) -> tuple[str, ...]:
    return (
        f"{summary.rate:.1f}",
        _percent(summary.failure_rate),
        seconds(summary.wait_quantile(0.5)),
        seconds(summary.wait_quantile(0.95)),
        seconds(summary.run_quantile(0.5)),
        seconds(summary.run_quantile(0.95)),
        seconds(summary.run_seconds if summary.figures.ran else None),
    )


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%" if share in (0.0, 1.0) else f"{share * 100:.1f}%"


def seconds(value: float | None) -> str:
    """``0.4ms``, ``37ms``, ``2.4s``, ``3m05s``; ``-`` for none."""
    if value is None:
        return "-"
    if value < 0.001:
        return f"{value * 1000:.1f}ms"
    if value < 1.0:
        return f"{value * 1000:.0f}ms"
    if value < 60.0:
        return f"{value:.1f}s"
    return duration(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def deploy_line(view: TaskHistory) -> str | None:
    """``deployed v1.2, 12m04s ago``: the latest marker kept, if any."""
    mark = view.latest_deploy
    if mark is None:
        return None
    return f"deployed {literal(mark.text).plain}, {duration(max(0.0, view.now - mark.at))} ago"


# -- the queues table's flow columns ---------------------------------------------------

def flow_cells(view: TaskHistory | None, queue: str) -> tuple[str, str]:
    """``in/min`` and ``out/min`` of ``queue`` over the last 5 minutes; ``?`` where unknown."""
    rate_in, rate_out = flow_rates(view, queue)
    return _rate(rate_in), _rate(rate_out)


def _rate(rate: float | None) -> str:
    return "?" if rate is None else f"{rate:.1f}"


def flow_rates(view: TaskHistory | None, queue: str) -> tuple[float | None, float | None]:
    """Messages taken in and settled per minute over the last 5 minutes: out is None
    without a history, in where the broker does not count what a queue takes in."""
    if view is None:
        return None, None
    flow = view.recent.queues.get(queue)
    if flow is None:
        return None, 0.0
    return flow.rate_in, flow.rate_out


# -- --json ----------------------------------------------------------------------------

def tasks_json(view: TaskHistory) -> list[dict[str, Any]]:
    recent = view.recent.tasks
    return [
        {"name": hour.task, "last_5m": _summary_json(recent.get(hour.task)), "last_1h": _summary_json(hour)}
        for hour in view.hour.by_run_time()
    ]


def _summary_json(summary: TaskSummary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {
        "settled": summary.settled, "succeeded": summary.succeeded, "failed": summary.failed,
        "retried": summary.retried, "dead": summary.dead, "cancelled": summary.cancelled,
        "per_minute": summary.rate, "failure_rate": summary.failure_rate,
        "run_seconds": summary.run_seconds,
        "run_p50": summary.run_quantile(0.5), "run_p95": summary.run_quantile(0.95),
        "wait_p50": summary.wait_quantile(0.5), "wait_p95": summary.wait_quantile(0.95),
    }


def deploys_json(view: TaskHistory) -> list[dict[str, Any]]:
    return [{"text": mark.text, "at": mark.at} for mark in view.deploys]
