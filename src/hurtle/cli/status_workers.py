"""``hurtle status``'s workers: the worker registry (``hurtle.observe``), read and shown.

Records come from the broker's store, whoever wrote them: every string is
printed through ``literal`` and long ones are cut, so one odd record cannot
break the table.
"""

from __future__ import annotations

import os

from rich.table import Table
from rich.text import Text

from hurtle.cli.common import Where
from hurtle.cli.literal import literal
from hurtle.observe.registry import WorkerRecord, read_workers
from hurtle.record_source import BrokerRecords, open_records

SHOWN_TASKS = 3  # running tasks listed per worker in the table; --json lists all
NAME_WIDTH = 40  # characters of a task name shown, at most (its end: the function's name)
ID_WIDTH = 8  # characters of a task id shown: enough to find it in a log


def not_visible(where: Where) -> str:
    """Why no worker can be seen through the app's stores, and how to fix it."""
    return (
        f"workers: not visible ({where.broker_url.scheme} keeps no worker registry); give the app"
        " a result store that does, as App(results='redis://...') or results='sqlite:///results.db'"
    )


async def read_registry(where: Where) -> list[WorkerRecord] | None:
    """Every living worker process of the app; None when no store of the app keeps them."""
    store = open_records(where.broker_url, where.results_url)
    if store is None:
        return None
    try:
        if _absent_sqlite(store):
            return []  # no worker ever wrote there; reading must not create the file
        return await read_workers(store)
    finally:
        await store.close()


def _absent_sqlite(store: BrokerRecords) -> bool:
    from hurtle.brokers.sqlite import SQLiteBroker

    return isinstance(store.broker, SQLiteBroker) and not os.path.exists(store.broker.path)


def workers_table(workers: list[WorkerRecord]) -> Table:
    """One row per worker process; elapsed times and uptime as of its last heartbeat."""
    table = Table(
        "worker", "supervisor", "queues", "async", "threads", "RSS", "uptime", "running",
        title=f"workers ({len(workers)} process{'es' if len(workers) != 1 else ''})",
    )
    for w in workers:
        table.add_row(
            literal(_cut(f"{w.host}:{w.pid}", NAME_WIDTH)),
            literal("" if w.supervisor_pid is None else w.supervisor_pid),
            literal(_cut(",".join(w.queues), NAME_WIDTH)),
            f"{w.busy_async}/{w.concurrency}",
            f"{w.busy_threads}/{w.threads}",
            mebibytes(w.rss_bytes),
            duration(w.uptime),
            _running(w),
        )
    return table


def _running(worker: WorkerRecord) -> Text:
    """The longest-running tasks first, one a line: name, short id, elapsed."""
    rows = [
        f"{_cut(literal(t.name).plain, NAME_WIDTH, keep_end=True)} {literal(t.id[:ID_WIDTH]).plain} "
        f"{'starting' if t.elapsed is None else duration(t.elapsed)}"
        for t in sorted(worker.running, key=lambda t: -(t.elapsed or 0.0))[:SHOWN_TASKS]
    ]
    more = len(worker.running) - SHOWN_TASKS
    if more > 0:
        rows.append(f"+{more} more")
    return Text("\n".join(rows) or "-")


def _cut(text: str, width: int, *, keep_end: bool = False) -> str:
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1):] if keep_end else text[: width - 1] + "…"


def mebibytes(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MiB"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``3d04h``: two units at most."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
