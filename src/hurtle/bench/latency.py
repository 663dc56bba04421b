"""The ``latency`` workload: many tasks that mostly wait (after Dramatiq's latency_bench).

Each task sleeps 10 s with probability 1%, 5 s 29%, 3 s 20%, 1 s 50% (2.65 s
on average). The sleeps are not drawn at random per run: ``sleeps(n)`` gives
the exact proportions of n (largest remainder; a tie goes to the longer sleep,
so -n 50 has one 10 s task), in a permutation fixed by ``SEED``, so every
run and every system sleeps the same multiset in the same order. For
n = 10,000: 100 x 10 s, 2,900 x 5 s, 2,000 x 3 s, 5,000 x 1 s.

What it shows: with enough tasks in flight the whole run takes about as long
as its longest sleep. magne's coroutine worker did 10,000 in 11.96 s, Dramatiq
with threads 408 s. For that every task must start within about a
second of the first, so the workload runs the worker with every task allowed
in flight at once: ``-c N`` (async) or ``-t min(N, SYNC_THREADS_MAX)`` (sync)
per process.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

from hurtle.app import App
from hurtle.bench.result import RunResult
from hurtle.bench.runner import OnProgress, Options, RunRecorder, run_burst

APP_SPEC = "hurtle.bench.latency:app"
KINDS = ("sync", "async")
#: (seconds, percent): Dramatiq's latency_bench distribution (integers: no float rounding).
DISTRIBUTION = ((10.0, 1), (5.0, 29), (3.0, 20), (1.0, 50))
SEED = 2  # the permutation's; fixed so every run sleeps in the same order
#: Threads per process for sync tasks: a thread each is what sync sleeps need,
#: and past this the thread stacks and start-up cost more than they show.
SYNC_THREADS_MAX = 10_000

app = App("memory://hurtle-bench")  # see noop.py: the bench points it at its broker
recorder = RunRecorder()
app.on_worker_stop(recorder.save)


@app.task(queue="bench-latency", retries=0, store_result=False)
def sleep_sync(seconds: float) -> None:
    recorder.start()
    time.sleep(seconds)
    recorder.record()


@app.task(queue="bench-latency-async", retries=0, store_result=False)
async def sleep_async(seconds: float) -> None:
    recorder.start()
    await asyncio.sleep(seconds)
    recorder.record()


def counts(n: int) -> list[int]:
    """How many tasks get each sleep of DISTRIBUTION: exact shares, largest remainder."""
    whole = [n * percent // 100 for _, percent in DISTRIBUTION]
    remainders = [n * percent % 100 for _, percent in DISTRIBUTION]
    # Ties go to the earlier (longer) sleep: sorted() is stable on the negated remainder.
    order = sorted(range(len(whole)), key=lambda i: -remainders[i])
    for i in order[: n - sum(whole)]:
        whole[i] += 1
    return whole


def sleeps(n: int, scale: float = 1.0) -> list[float]:
    """The n sleeps, in seconds times ``scale``, in the run's fixed order."""
    pairs = zip(DISTRIBUTION, counts(n), strict=True)
    drawn = [seconds * scale for (seconds, _), k in pairs for _ in range(k)]
    random.Random(SEED).shuffle(drawn)
    return drawn


def worker_args(options: Options) -> list[str]:
    """By default every task may be in flight at once, in any one process (fetches are
    not split evenly between processes); ``--in-flight`` sets it instead."""
    if options.kind == "async":
        return ["-c", str(options.in_flight or options.n)]
    return ["-t", str(options.in_flight or min(options.n, SYNC_THREADS_MAX))]


def start_spread(folder: Path, result: RunResult) -> None:
    """First task start -> last task start: how long the worker took to get every task going."""
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    starts = [r for r in records if r.get("first_start")]
    if starts:
        first = min(r["first_start"] for r in starts)
        result.extra["start_spread_s"] = max(r["last_start"] for r in starts) - first


def add_measures(result: RunResult, drawn: list[float]) -> None:
    """A verified run's times against its longest sleep, the least any system can take."""
    longest = max(drawn)
    if result.timings is not None and result.verified and longest > 0:
        result.extra.update(
            longest_sleep_s=longest,
            wall_s=result.timings.wall_s,
            wall_over_longest=result.timings.wall_s / longest,
            processing_s=result.timings.processing_s,
            processing_over_longest=result.timings.processing_s / longest,
        )


def run(options: Options, progress: OnProgress | None = None) -> RunResult:
    task = sleep_async if options.kind == "async" else sleep_sync
    drawn = sleeps(options.n, options.scale)
    calls = [(seconds,) for seconds in drawn]
    result = run_burst(
        app, task, calls, "latency", APP_SPEC, options,
        worker_args=worker_args(options), inspect=start_spread, progress=progress,
    )
    add_measures(result, drawn)
    return result
