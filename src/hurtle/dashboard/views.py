"""Each page's figures as JSON-ready dicts, read through the functions the CLI uses.

Every read is bounded whatever the broker holds: queue counts are the broker's
own (``Broker.stats``), the history is one key per minute of the window, the
registry one record per living process, and lists of task names are cut at
``MAX_TASKS``. Values from the broker go out as they are: the page puts them in
the document as text, never as markup.
"""

from __future__ import annotations

import itertools
from typing import Any

from hurtle.dashboard.hiding import args_json
from hurtle.dashboard.source import Source
from hurtle.dead_letters import envelope_of
from hurtle.observe.history import History, TaskSummary, minutes_of, summarize
from hurtle.observe.history_layout import minute_key
from hurtle.observe.registry import workers_json
from hurtle.observe.task_report import read_report, report_json
from hurtle.schedule.cancel import request_cancel
from hurtle.schedule.listing import read_listing
from hurtle.task_status import look_at_task

WINDOWS = (60, 180, 360)  # minutes a page may ask the history for: 1, 3 or 6 hours
RECENT = 5  # minutes of the "now" figures beside each window's
MAX_TASKS = 100  # task rows on the tasks page, the most run time first
ARGS_WIDTH = 2000  # characters of a task's arguments shown, as JSON
#: Messages waiting in every queue together up to which the task page looks for an
#: unfinished task in them: no broker indexes its queues by task id (Redis reads
#: 100,000 messages in about 0.2 s), so past this the page says it did not look.
LOCATE_LIMIT = 100_000


Read = list[tuple[int, dict[str, int]]]  # (minute, its fields) for each minute of a window


async def read_minutes(source: Source, minutes: int, now: float) -> Read:
    """The last ``minutes`` minutes of the history, oldest first, in one read of the store."""
    window = minutes_of(minutes, now)
    if source.tallies is None or not source.history_kept:
        return [(minute, {}) for minute in window]
    return list(zip(window, await source.tallies.read_many([minute_key(m) for m in window]), strict=True))


def over(read: Read, minutes: int, now: float) -> History:
    """The last ``minutes`` of ``read`` as one window; rates per minute of the time covered."""
    span = max(1.0, minutes - 1 + (now % 60.0) / 60.0)
    return summarize(minutes, span, read[-1][0], read[-minutes:])


def by_minute(read: Read) -> list[History]:
    return [summarize(1, 1.0, minute, [(minute, fields)]) for minute, fields in read]


async def deploys_json(source: Source, since: float) -> list[dict[str, Any]]:
    return [{"text": m.text, "at": m.at} for m in await source.deploys() if m.at >= since]


async def overview(source: Source) -> dict[str, Any]:
    """Each queue's counts now, its rates in and out per minute over the last hour,
    and its depth as sampled while the dashboard ran."""
    now = source.now()
    stats = await source.broker.stats()
    source.depths.add(now, {row.name: row.ready for row in stats})
    read = await read_minutes(source, WINDOWS[0], now)
    whole, each = over(read, WINDOWS[0], now), by_minute(read)
    names = [row.name for row in stats]
    return {
        "now": now,
        "broker": str(source.broker_url),
        "history": source.history_kept,
        "minutes": [minute * 60 for minute in minutes_of(WINDOWS[0], now)],
        "queues": [
            {
                "name": row.name, "ready": row.ready, "delayed": row.delayed, "in_flight": row.in_flight,
                "dead": row.dead, "oldest_ready_age": row.oldest_ready_age,
                "rate_in": _flow(whole, row.name, "in"), "rate_out": _flow(whole, row.name, "out"),
                "series_in": _added_per_minute(each, row.name),
                "series_out": [_settled(minute, row.name) for minute in each],
            }
            for row in stats
        ],
        "depths": [
            {"at": at, "ready": [depths.get(name) for name in names]} for at, depths in source.depths.samples
        ],
        "deploys": await deploys_json(source, now - WINDOWS[0] * 60),
    }


def _flow(history: History, queue: str, way: str) -> float | None:
    flow = history.queues.get(queue)
    if flow is None:
        return None
    return flow.rate_in if way == "in" else flow.rate_out


def _settled(minute: History, queue: str) -> int:
    flow = minute.queues.get(queue)
    return 0 if flow is None else flow.settled


def _added_per_minute(each: list[History], queue: str) -> list[int | None]:
    """Messages taken in each minute: the rise of the queue's count since the minute
    before; None where either minute has no sample or the count went back."""
    counts: list[int | None] = []
    for minute in each:
        flow = minute.queues.get(queue)
        counts.append(flow.samples[-1][1] if flow is not None and flow.samples else None)
    taken: list[int | None] = [None]
    for before, after in itertools.pairwise(counts):
        taken.append(None if before is None or after is None or after < before else after - before)
    return taken


async def workers(source: Source) -> dict[str, Any]:
    found = await source.workers()
    return {"now": source.now(), "visible": found is not None, "workers": workers_json(found or [])}


async def tasks(source: Source, minutes: int) -> dict[str, Any]:
    """Each task's figures over the window (and its last ``RECENT`` minutes), with
    its figures per minute for the charts, the most run time first."""
    now = source.now()
    read = await read_minutes(source, minutes, now)
    whole, recent, each = over(read, minutes, now), over(read, RECENT, now), by_minute(read)
    ranked = whole.by_run_time()
    return {
        "now": now,
        "history": source.history_kept,
        "minutes": [minute * 60 for minute in minutes_of(minutes, now)],
        "window": minutes,
        "more": max(0, len(ranked) - MAX_TASKS),
        "tasks": [
            {**_figures(summary), "recent": _summary_json(recent.tasks.get(summary.task)),
             "series": _series(each, summary.task)}
            for summary in ranked[:MAX_TASKS]
        ],
        "deploys": await deploys_json(source, now - minutes * 60),
    }


def _summary_json(summary: TaskSummary | None) -> dict[str, Any] | None:
    return None if summary is None else _figures(summary)


def _figures(summary: TaskSummary) -> dict[str, Any]:
    return {
        "task": summary.task, "settled": summary.settled, "rate": summary.rate,
        "failure_rate": summary.failure_rate, "failed": summary.failed, "retried": summary.retried,
        "dead": summary.dead, "run_seconds": summary.run_seconds,
        "wait_p50": summary.wait_quantile(0.5), "wait_p95": summary.wait_quantile(0.95),
        "run_p50": summary.run_quantile(0.5), "run_p95": summary.run_quantile(0.95),
    }


def _series(each: list[History], task: str) -> dict[str, list[Any]]:
    """The task's figures minute by minute: settled, not succeeded, and p95 run and wait."""
    found = [minute.tasks.get(task) for minute in each]
    return {
        "settled": [0 if s is None else s.settled for s in found],
        "failed": [0 if s is None else s.settled - s.succeeded for s in found],
        "run_p95": [None if s is None else s.run_quantile(0.95) for s in found],
        "wait_p95": [None if s is None else s.wait_quantile(0.95) for s in found],
    }


async def task(source: Source, task_id: str, hide_args: bool) -> dict[str, Any]:
    """One task by id, as ``hurtle status task --json`` gives it, with the arguments
    its dead letter holds (the one place a finished task's arguments are kept).
    Its message is looked for in the queues only while they hold ``LOCATE_LIMIT``
    messages or fewer."""
    waiting = sum(row.pending for row in await source.broker.stats())
    looks = source.broker.locates_messages and waiting <= LOCATE_LIMIT
    report = await read_report(source.connection, source.workers, task_id, None if looks else [])
    found = report_json(report)
    found["known"] = report.known
    found["looked_in_queues"] = looks
    found["waiting"] = waiting
    found["args"] = None
    if report.dead is not None:
        envelope = envelope_of(report.dead.letter)
        if envelope is not None:
            found["task"] = envelope.task
            found["args"] = args_json(envelope.args, envelope.kwargs, hide_args, ARGS_WIDTH)
    return found


async def cancel(source: Source, task_id: str) -> dict[str, Any]:
    """Ask the workers to cancel the task, as ``hurtle cancel`` does: not one that
    has finished. Its message is looked for as on the task page (``LOCATE_LIMIT``)."""
    records = source.connection.records
    if records is None:
        return {"requested": False, "why": "no store of the app keeps records: cancel needs one"}
    waiting = sum(row.pending for row in await source.broker.stats())
    queues: list[str] | None = None if waiting <= LOCATE_LIMIT else []
    look = await look_at_task(source.broker, source.connection.results, task_id, queues)
    if look.status in ("succeeded", "failed", "cancelled"):
        return {"requested": False, "why": f"the task has already {look.status}: nothing to cancel"}
    await request_cancel(records, [task_id], source.app.result_ttl)
    return {"requested": True, "state": look.status}


async def schedules(source: Source, hide_args: bool) -> dict[str, Any]:
    listing = await read_listing(source.app, source.records)
    rows = []
    for row in listing.rows:
        shown = row.as_json()
        shown["args"] = args_json(shown.pop("args"), shown.pop("kwargs"), hide_args, ARGS_WIDTH)
        rows.append(shown)
    return {"now": source.now(), "kept": listing.kept, "leader": listing.leader, "schedules": rows}
