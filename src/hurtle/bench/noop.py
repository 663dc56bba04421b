"""The ``noop`` workload: tasks that do nothing, so what is timed is hurtle itself.

N calls are sent with ``send_many`` and drained by ``hurtle worker --burst``.
The tasks store no result (``store_result=False``), as Dramatiq stores none by
default, so the comparison with peers is like for like; the count of runs comes
from the tasks themselves instead (``RunRecorder``), plus the broker's own
statistics (nothing pending, nothing dead-lettered). ``retries=0`` makes any
failure a dead letter, which the check catches, rather than a silent retry.

``sync`` is ``def noop()``, run in the worker's thread pool (what most users
write, and what Dramatiq actors are); ``async`` is ``async def``, run on the
worker's event loop.
"""

from __future__ import annotations

import os

from hurtle.app import App
from hurtle.bench.result import RunResult
from hurtle.bench.runner import OnProgress, Options, RunRecorder, run_burst

APP_SPEC = "hurtle.bench.noop:app"
KINDS = ("sync", "async")

# Named so importing this module never reads $HURTLE_BROKER: `hurtle bench` and
# the worker it starts point the app at the benchmark's broker.
# The task history's lifetime: the app's default, unless $HURTLE_BENCH_HISTORY_TTL says
# otherwise (0: off), for measuring what the history costs (docs/benchmarks.md).
app = App("memory://hurtle-bench", history_ttl=float(os.environ.get("HURTLE_BENCH_HISTORY_TTL", 8 * 3600.0)))
recorder = RunRecorder()
app.on_worker_stop(recorder.save)


@app.task(queue="bench-noop", retries=0, store_result=False)
def noop() -> None:
    recorder.record()


@app.task(queue="bench-noop-async", retries=0, store_result=False)
async def noop_async() -> None:
    recorder.record()


def run(options: Options, progress: OnProgress | None = None) -> RunResult:
    task = noop_async if options.kind == "async" else noop
    calls: list[tuple[()]] = [()] * options.n
    return run_burst(app, task, calls, "noop", APP_SPEC, options, progress=progress)
