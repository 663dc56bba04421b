"""The ``chord`` workload: a group of N no-op members, then a callback given their N results.

One ``hurtle.chord(...).send()`` sends the N members (one batch); a burst worker
runs them, counts each in the broker's store as it finishes, and the member that
completes the set sends the callback. What is timed is the whole: the first
member's start to the callback's finish (processing), over N + 1 tasks. The
members store no result (``store_result=False``): the callback's results come
from the workflow's own state, kept whatever the tasks store.

The callback notes how many results it got, once per run (a file beside the run
records): a run whose callback ran twice, or with fewer than N results, fails.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import hurtle
from hurtle.app import App
from hurtle.bench.result import RunResult, Timings
from hurtle.bench.runner import (
    RECORDS_ENV,
    OnProgress,
    Options,
    RunRecorder,
    broker_url,
    check_run,
    option_args,
    queue_stats,
    read_records,
    run_worker,
)

APP_SPEC = "hurtle.bench.chord:app"
QUEUE = "bench-chord"
CALLBACK_FILE = "callback.lines"  # in the run records' folder: one line per callback run

app = App(
    "memory://hurtle-bench-chord", history_ttl=float(os.environ.get("HURTLE_BENCH_HISTORY_TTL", 8 * 3600.0))
)
recorder = RunRecorder()
app.on_worker_stop(recorder.save)


@app.task(queue=QUEUE, retries=0, store_result=False)
def member() -> None:
    recorder.record()


@app.task(queue=QUEUE, retries=0, store_result=False)
async def member_async() -> None:
    recorder.record()


@app.task(queue=QUEUE, retries=0, store_result=False)
def callback(results: list[None]) -> None:
    note_callback(len(results))
    recorder.record()


@app.task(queue=QUEUE, retries=0, store_result=False)
async def callback_async(results: list[None]) -> None:
    note_callback(len(results))
    recorder.record()


def note_callback(count: int) -> None:
    folder = os.environ.get(RECORDS_ENV)
    if folder:
        with open(Path(folder) / CALLBACK_FILE, "a") as f:  # one short O_APPEND line
            f.write(f"{count}\n")


def check_callback(folder: Path, members: int) -> list[str]:
    """Why the callback's runs are wrong: it must run once, with every member's result."""
    path = folder / CALLBACK_FILE
    counts = [int(line) for line in path.read_text().split()] if path.exists() else []
    if counts == [members]:
        return []
    if not counts:
        return ["the chord's callback never ran"]
    return [f"the chord's callback ran {len(counts)} time(s), with {counts} result(s);"
            f" expected once, with {members}"]


def run(options: Options, progress: OnProgress | None = None) -> RunResult:
    """Send one chord of ``options.n`` members, drain it with a burst worker, check it."""
    members, then = (member_async, callback_async) if options.kind == "async" else (member, callback)
    with broker_url(options.broker, keep=options.profile) as url, tempfile.TemporaryDirectory() as folder:
        result = RunResult("chord", options.kind, options.n + 1, options.processes, options.broker or url)
        before = queue_stats(url, QUEUE)
        if before.pending:
            result.problems.append(f"queue {QUEUE!r} holds {before.pending} message(s) before the run")
            return result
        app.broker_url = url
        try:
            started = time.perf_counter()
            hurtle.chord(hurtle.group(members.s() for _ in range(options.n)), then.s()).send()
            enqueue_s = time.perf_counter() - started
        finally:
            app.close()
        worker = run_worker(
            APP_SPEC, url, QUEUE, options.processes, Path(folder), options.n + 1,
            option_args(options), progress,
        )
        after = queue_stats(url, QUEUE)
        records = read_records(Path(folder))
        result.ran, result.pending = records.runs, after.pending
        result.dead, result.worker_exit = after.dead - before.dead, worker.exit_code
        result.problems += check_run(result) + check_callback(Path(folder), options.n)
        if result.problems:
            result.worker_log = worker.log
            return result
        result.timings = Timings(
            enqueue_s=enqueue_s, processing_s=records.last - records.first, wall_s=worker.wall_s,
            startup_s=records.first - worker.started_at, worker_cpu_s=worker.cpu_s,
        )
        return result


def describe() -> str:
    return "one chord: a group of N no-op members, then a callback given their N results (N + 1 tasks)"
