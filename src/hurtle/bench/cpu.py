"""The ``cpu`` workload: tasks that compute (a busy loop of about 1 ms of CPU each).

What a thread pool can do least for: the tasks hold the GIL, so a process runs
one at a time whatever its threads, and more threads only add switching. It is
where ``-t auto`` must keep the pool small (docs/benchmarks.md). ``def`` tasks
only: an ``async def`` task that computes blocks its event loop.
"""

from __future__ import annotations

import time

from hurtle.app import App
from hurtle.bench.result import RunResult
from hurtle.bench.runner import OnProgress, Options, RunRecorder, run_burst

APP_SPEC = "hurtle.bench.cpu:app"
KINDS = ("sync",)
BUSY_S = 0.001  # seconds of busy loop per task

app = App("memory://hurtle-bench")  # see noop.py: the bench points it at its broker
recorder = RunRecorder()
app.on_worker_stop(recorder.save)


@app.task(queue="bench-cpu", retries=0, store_result=False)
def compute() -> int:
    recorder.start()
    total, deadline = 0, time.perf_counter() + BUSY_S
    while time.perf_counter() < deadline:
        total += 1
    recorder.record()
    return total


def run(options: Options, progress: OnProgress | None = None) -> RunResult:
    calls: list[tuple[()]] = [()] * options.n
    return run_burst(app, compute, calls, "cpu", APP_SPEC, options, progress=progress)
