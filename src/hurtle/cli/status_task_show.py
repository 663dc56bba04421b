"""``hurtle status task``'s output: a two-column list for people, one object for ``--json``.

Every value comes from a record whoever wrote it (a worker, another program): it
is printed through ``literal``, never as markup, and a long value is cut in the
list (``--json`` gives it whole).
"""

from __future__ import annotations

from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hurtle.cli.common import Where
from hurtle.cli.literal import as_text, literal, when
from hurtle.cli.status_workers import duration
from hurtle.envelope import Result
from hurtle.observe.task_report import TaskReport, attempts_of, times_of, worker_of
from hurtle.progress import Progress

VALUE_WIDTH = 300  # characters of a result value shown, as JSON; --json gives it all
TRACEBACK_LINES = 40  # a traceback's last lines shown: where it was raised; --json gives it all
_STATE_STYLES = {
    "succeeded": "green", "failed": "red", "running": "cyan", "queued": "yellow", "cancelled": "magenta",
}
_MEANS = {
    "queued": "waiting to run: ready, delayed, or waiting for a retry",
    "running": "leased by a live worker",
}


def print_report(report: TaskReport, registry_note: str | None) -> None:
    """The task as a list of labelled lines; ``registry_note`` says why no worker is shown."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in _rows(report, registry_note):
        grid.add_row(label, value)
    Console().print(grid)


def _rows(report: TaskReport, registry_note: str | None) -> list[tuple[str, Text]]:
    rows = [("task", literal(report.id)), ("state", _state(report))]
    attempts = attempts_of(report)
    if attempts is not None:
        rows.append(("attempts", Text(str(attempts))))
    rows += _worker_rows(report, registry_note)
    if report.progress is not None:
        rows.append(("progress", _progress(report.progress)))
    result = report.look.result
    if result is not None:
        rows += _time_rows(result)
        rows += _outcome_rows(result)
    if report.dead is not None:
        rows += _dead_rows(report, with_reason=result is None)
    return rows


def _state(report: TaskReport) -> Text:
    state = report.state
    text = Text(state, style=_STATE_STYLES.get(state, ""))
    if state in _MEANS:
        text.append(f" ({_MEANS[state]})", style="dim")
    if state == "unknown" and report.dead is not None:
        text.append(" (no result stored; a dead letter holds it: see below)", style="dim")
    elif state == "unknown" and report.progress is not None:
        text.append(" (it has reported progress; the broker cannot look by task id)", style="dim")
    if state == "running" and report.look.status == "unknown":
        text.append(" (listed by a worker; the broker cannot look by task id)", style="dim")
    if report.cancel_requested:
        text.append(" — cancel requested, not yet carried out by a worker", style="magenta")
    return text


def _worker_rows(report: TaskReport, registry_note: str | None) -> list[tuple[str, Text]]:
    running = report.running
    if running is not None:
        elapsed = "starting" if running.task.elapsed is None else f"for {duration(running.task.elapsed)}"
        text = literal(f"{running.name}, running {elapsed} at its last heartbeat")
        return [("worker", text)]
    if report.state == "running":
        why = registry_note or "not in the worker registry yet (a worker writes its record every few seconds)"
        return [("worker", literal(why))]
    worker = worker_of(report)
    return [] if worker is None else [("worker", literal(worker))]


def _time_rows(result: Result) -> list[tuple[str, Text]]:
    times = times_of(result)
    rows = [
        (label, when(times[key]))
        for label, key in (("ready at", "ready_at"), ("started", "started_at"), ("finished", "finished_at"))
        if times[key] is not None
    ]
    for label, key in (("queue wait", "queue_wait"), ("run time", "run_time")):
        seconds = times[key]
        if seconds is not None:
            rows.append((label, Text(_precise(seconds))))
    return rows


def _outcome_rows(result: Result) -> list[tuple[str, Text]]:
    if result.status == "succeeded":
        return [("result", _value(result.value))]
    if result.status == "cancelled":
        return []
    rows = [("error", literal(result.error, lines=True))]
    if result.traceback:
        rows.append(("traceback", _last_lines(result.traceback)))
    return rows


def _dead_rows(report: TaskReport, *, with_reason: bool) -> list[tuple[str, Text]]:
    dead = report.dead
    assert dead is not None
    letter = dead.letter
    where = f"id {as_text(letter.id)}, queue {as_text(letter.queue)}"
    at = when(letter.failed_at)
    text = literal(f"{where}, at ").append_text(at)
    if dead.attempt is not None:
        text.append(f", after attempt {dead.attempt + 1}")
    rows = [("dead letter", text)]
    if with_reason:
        rows.append(("reason", _last_lines(as_text(letter.reason))))
    return rows


def _progress(progress: Progress) -> Text:
    """``250/500 (50%) rows, at 12:00:01``."""
    done = f"{progress.done:g}" if progress.total is None else f"{progress.done:g}/{progress.total:g}"
    fraction = progress.fraction
    text = literal(done if fraction is None else f"{done} ({fraction:.0%})")
    if progress.note:
        text.append(" ").append_text(literal(progress.note))
    if progress.at:
        text.append(", reported ").append_text(when(progress.at))
    return text


def _value(value: Any) -> Text:
    shown = msgspec.json.encode(value).decode()
    if len(shown) > VALUE_WIDTH:
        cut = literal(shown[:VALUE_WIDTH] + "…")
        return cut.append(f" ({len(shown)} characters as JSON; --json gives it all)", style="dim")
    return literal(shown)


def _last_lines(text: str) -> Text:
    lines = text.rstrip().splitlines()
    if len(lines) <= TRACEBACK_LINES:
        return literal("\n".join(lines), lines=True)
    shown = literal("\n".join(lines[-TRACEBACK_LINES:]), lines=True)
    above = Text(f"({len(lines) - TRACEBACK_LINES} lines above; --json gives them all)\n", style="dim")
    return above.append_text(shown)


def _precise(seconds: float) -> str:
    """Milliseconds under a second, hundredths under a minute, then ``duration``'s units."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return duration(seconds)


def unknown_line(report: TaskReport, where: Where) -> str:
    """Why nothing is known of the task, in one line."""
    scheme = where.broker_url.scheme
    if not report.locates_messages:
        stores = "no result is stored for it" if report.keeps_results else "the app keeps no results"
        return (
            f"task {report.id}: unknown until it finishes ({scheme} cannot find a message by task id;"
            f" {stores}, no worker lists it, no dead letter holds it)"
        )
    if not report.keeps_results:
        return f"no task {report.id} waits or runs on {where.broker_url} (the app keeps no results)"
    return (
        f"no task {report.id} on {where.broker_url}: not queued, not running, no result stored"
        " (never sent, or its result has expired)"
    )
