"""The ``io`` workload: tasks that each make one real round trip, to Redis or over HTTP.

``--io redis`` (the default): each task INCRs a key of the run's own on a Redis
on loopback; ``--io http``: each task GETs a counting HTTP server the bench
starts. The target, the clients and the check are in ``io_target``: one
client per worker process, made on its first task, and a run verified only if
the target counted exactly N round trips, besides the checks every run has.

``sync`` is ``def io()`` with sync redis-py or ``httpx.Client``, in the
worker's thread pool; ``async`` is ``async def io_async()`` with
``redis.asyncio`` or ``httpx.AsyncClient``, on the worker's event loop.
"""

from __future__ import annotations

from pathlib import Path

from hurtle.app import App
from hurtle.bench import io_target
from hurtle.bench.result import RunResult
from hurtle.bench.runner import OnProgress, Options, RunRecorder, run_burst

APP_SPEC = "hurtle.bench.io:app"
KINDS = ("sync", "async")

app = App("memory://hurtle-bench")  # see noop.py: the bench points it at its broker
recorder = RunRecorder()
app.on_worker_stop(recorder.save)


@app.task(queue="bench-io", retries=0, store_result=False)
def io() -> None:
    recorder.start()  # the processing window includes the first client's connect
    io_target.round_trip()
    recorder.record()


@app.task(queue="bench-io-async", retries=0, store_result=False)
async def io_async() -> None:
    recorder.start()
    await io_target.round_trip_async()
    recorder.record()


def run(options: Options, progress: OnProgress | None = None) -> RunResult:
    task = io_async if options.kind == "async" else io
    calls: list[tuple[()]] = [()] * options.n
    with io_target.open_target(options.io, options.io_redis) as target:

        def inspect(folder: Path, result: RunResult) -> None:
            target.inspect(folder, result, options.processes)

        return run_burst(app, task, calls, "io", APP_SPEC, options, inspect=inspect,
                         progress=progress, env=target.env)
