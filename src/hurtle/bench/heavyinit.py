"""The ``heavyinit`` workload: tasks that need a one-time 50 ms setup per process.

RQ forked a fresh process per job, so a setup every job needed (SQLAlchemy's
``configure_mappers``) was paid per job: 1,000 jobs on 4 workers took 102 s,
24.6 s once the setup ran before forking. Here the setup is a 50 ms busy loop
(CPU time of the calling thread), done lazily by the first task of a process
and guarded by a lock, so it is paid once per process, however many threads
run tasks. With ``--preload`` the worker loads ``preloaded`` instead of
``app``: the same tasks, plus an ``on_preload`` hook that does the setup in
the supervisor before it forks, so it is paid once in total.

Every setup paid writes a marker file (``setup-PID.mark``) into the run's
records folder, in whichever process paid it (the supervisor, for a preload);
the run is verified only if there are at most as many as worker processes,
or exactly one with ``--preload``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from hurtle.app import App
from hurtle.bench.result import RunResult
from hurtle.bench.runner import RECORDS_ENV, OnProgress, Options, RunRecorder, run_burst
from hurtle.task import Task

KINDS = ("sync", "async")
SETUP_CPU_S = 0.050
_MARK = "setup-{pid}.mark"


class Setup:
    """The once-per-process setup; a fork inherits ``done``, so a preload is paid once."""

    def __init__(self) -> None:
        self.done = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        if self.done:  # the hot path: one attribute read
            return
        with self._lock:  # sync tasks: several threads may arrive at once
            if not self.done:
                _busy(SETUP_CPU_S)
                _mark_paid()
                self.done = True


def _busy(cpu_s: float) -> None:
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


def _mark_paid() -> None:
    folder = os.environ.get(RECORDS_ENV)
    if folder:
        (Path(folder) / _MARK.format(pid=os.getpid())).write_text(f"{time.time()}\n")


setup = Setup()
recorder = RunRecorder()


def work() -> None:
    recorder.start()  # the processing window includes the first setup
    setup.ensure()
    recorder.record()


async def work_async() -> None:
    recorder.start()  # the processing window includes the first setup
    setup.ensure()
    recorder.record()


def _app(preload: bool) -> tuple[App, Task[[], None], Task[[], None]]:
    # Named so importing this module never reads $HURTLE_BROKER (see noop.py).
    made = App("memory://hurtle-bench")
    made.on_worker_stop(recorder.save)
    if preload:
        made.on_preload(setup.ensure)
    sync = made.task(name="hurtle.bench.heavyinit.work", queue="bench-heavyinit",
                     retries=0, store_result=False)(work)
    async_ = made.task(name="hurtle.bench.heavyinit.work_async", queue="bench-heavyinit-async",
                       retries=0, store_result=False)(work_async)
    return made, sync, async_


app, work_task, work_async_task = _app(preload=False)
preloaded, preloaded_work_task, preloaded_work_async_task = _app(preload=True)


def count_setups(folder: Path) -> int:
    return len(list(folder.glob(_MARK.format(pid="*"))))


def check_setups(paid: int, processes: int, preload: bool, ran: int) -> list[str]:
    """Why a run's setup count is wrong; empty when it was paid once per process at most."""
    if preload and paid != 1:
        return [f"setup paid {paid} time(s) with --preload; expected exactly 1"]
    if paid == 0 and ran:
        return ["tasks ran but no setup was counted"]
    if paid > processes:
        return [f"setup paid {paid} time(s) by {processes} worker process(es): more than once per process"]
    return []


def run(options: Options, progress: OnProgress | None = None) -> RunResult:
    spec = "hurtle.bench.heavyinit:" + ("preloaded" if options.preload else "app")
    sender = preloaded if options.preload else app
    if options.kind == "async":
        task = preloaded_work_async_task if options.preload else work_async_task
    else:
        task = preloaded_work_task if options.preload else work_task
    calls: list[tuple[()]] = [()] * options.n

    def inspect(folder: Path, result: RunResult) -> None:
        paid = count_setups(folder)
        result.extra["setups"] = paid
        result.problems += check_setups(paid, options.processes, options.preload, result.ran)

    result = run_burst(
        sender, task, calls, "heavyinit", spec, options, inspect=inspect, progress=progress
    )
    if result.timings is not None and result.verified:
        result.extra["wall_s"] = result.timings.wall_s
    return result
