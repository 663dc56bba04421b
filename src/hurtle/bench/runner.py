"""What every workload shares: a broker, timed sends, a timed burst worker, run records.

A run is: check the queue is empty, send N tasks with ``send_many`` (timed
alone), check the broker holds N, start ``python -m hurtle worker APP --burst``
as a subprocess (timed from start to exit), then check the work: every
task counted by the tasks themselves, nothing pending, nothing dead-lettered,
worker exit code 0.

The tasks keep their own count and clock (``RunRecorder``): each worker process
keeps its record file up to date while it works and writes it a last time when
it stops, so the count does not depend on stored results, a progress bar can
follow the run, and the processing time (first task start to last task
finish) excludes the worker's start-up and its burst-mode idle check at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hurtle.app import App
from hurtle.bench.namespace import run_namespace
from hurtle.bench.result import RunResult, Timings
from hurtle.brokers import QueueStats, from_url
from hurtle.task import Task

#: Where worker processes write their run records (one JSON file per process).
RECORDS_ENV = "HURTLE_BENCH_RECORDS"
_WORKER_TIMEOUT_MIN = 120.0  # seconds; a worker that takes longer has hung
_LOG_TAIL = 4000  # characters of the worker's log kept for a failed run
_POLL_S = 0.1  # how often a run's records are read for its progress
_STOP_WAIT_S = 60.0  # seconds an interrupted run waits for its worker to stop (its grace is 30)

#: Told how many task runs the records count so far, while a run drains (a progress bar).
OnProgress = Callable[[int], None]


@dataclass(frozen=True)
class Options:
    n: int
    broker: str | None  # None: SQLite in a fresh temp dir for each run
    processes: int
    batch: int  # calls per send_many
    kind: str  # "sync" (def, thread pool) or "async" (async def, the event loop)
    scale: float = 1.0  # latency: sleeps multiplied by this (tests run it at 0.01)
    preload: bool = False  # heavyinit: the setup in an on_preload hook, before fork
    in_flight: int | None = None  # latency: -c (async) or -t (sync) per process; None: its default
    profile: bool = False  # the worker profiles every task (``--profile all``)
    profile_hz: float | None = None  # None: the worker's default rate
    profile_sample: float | None = None  # None: every execution
    io: str = "redis"  # io: each task's round trip, "redis" (INCR) or "http" (GET)
    io_redis: str = "redis://127.0.0.1:6379/0"  # io: the Redis the tasks INCR
    metrics: bool = False  # the worker serves /metrics (``--metrics-port``) while it runs
    threads: str | None = None  # the worker's -t (N or auto); None: its default


def profile_args(options: Options) -> list[str]:
    """The worker's profiling options for a run; none when profiling is off."""
    if not options.profile:
        return []
    args = ["--profile", "all"]
    if options.profile_hz is not None:
        args += ["--profile-hz", f"{options.profile_hz:g}"]
    if options.profile_sample is not None:
        args += ["--profile-sample", f"{options.profile_sample:g}"]
    return args


def metrics_args(options: Options) -> list[str]:
    """``--metrics-port`` on a free loopback port when the run measures metrics on; none otherwise."""
    if not options.metrics:
        return []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return ["--metrics-port", str(port)]


def option_args(options: Options) -> list[str]:
    """The worker options a run's own options ask for: threads, profiling, metrics."""
    threads = [] if options.threads is None else ["-t", options.threads]
    return [*threads, *profile_args(options), *metrics_args(options)]


class RunRecorder:
    """A worker process's task runs: how many, first start, last finish.

    ``record`` is on the hot path: a lock (sync tasks run in several threads),
    one clock read and one flag test. While ``RECORDS_ENV`` is set, the first
    task of each process starts a daemon thread that rewrites the process's
    record every ``WRITE_INTERVAL_S``: the count is readable while the work goes
    on, which a progress bar needs, and so does a runner whose workers never
    exit by themselves (the peers, stopped by a signal once the count is N).
    ``save`` writes the last record; it is an ``on_worker_stop`` hook.
    """

    WRITE_INTERVAL_S = 0.1

    def __init__(self) -> None:
        self._reset()
        # A forked child counts its own runs, and needs a writer thread of its own.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.runs = 0
        self.first = 0.0
        self.last = 0.0
        self.first_start = 0.0  # set by ``start``: tasks that take a while mark their start
        self.last_start = 0.0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer at a time; the last record is final
        self._writing = False  # this process has its writer thread
        self._saved = False

    def start(self) -> None:
        """Mark a task's start, so the window runs from the first start, not the first finish."""
        now = time.time()
        with self._lock:
            if self.first_start == 0.0:
                self.first_start = now
            self.last_start = now
        if not self._writing:
            self._start_writer()

    def record(self) -> None:
        now = time.time()
        with self._lock:
            if self.runs == 0:
                self.first = now
            self.runs += 1
            self.last = now
        if not self._writing:
            self._start_writer()

    def save(self) -> None:
        """Write the final record; later periodic writes are dropped."""
        with self._write_lock:
            self._write()
            self._saved = True

    def _start_writer(self) -> None:
        with self._write_lock:
            if self._writing or not os.environ.get(RECORDS_ENV):
                self._writing = True
                return
            self._writing = True
        threading.Thread(target=self._keep_writing, name="hurtle-bench-records", daemon=True).start()

    def _keep_writing(self) -> None:
        written: tuple[int, float] = (-1, 0.0)
        while True:
            time.sleep(self.WRITE_INTERVAL_S)
            with self._write_lock:
                if self._saved:
                    return
                now = (self.runs, self.last_start)
                if now != written:
                    written = now
                    self._write()

    def _write(self) -> None:
        folder = os.environ.get(RECORDS_ENV)
        if not folder:
            return
        with self._lock:
            first = min(self.first, self.first_start) if self.first_start else self.first
            record = {"pid": os.getpid(), "runs": self.runs, "first": first, "last": self.last,
                      "first_start": self.first_start, "last_start": self.last_start}
        write_record(Path(folder), record)


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """Replace the process's record file whole, so a reader never sees half of one."""
    temp = folder / f".{record['pid']}.json.tmp"  # not matched by ``*.json``
    temp.write_text(json.dumps(record))
    os.replace(temp, folder / f"{record['pid']}.json")


@dataclass(frozen=True)
class Records:
    runs: int
    first: float
    last: float


def read_records(folder: Path) -> Records:
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    busy = [r for r in records if r["runs"]]
    if not busy:
        return Records(0, 0.0, 0.0)
    return Records(
        sum(r["runs"] for r in busy), min(r["first"] for r in busy), max(r["last"] for r in busy)
    )


@contextmanager
def broker_url(explicit: str | None, *, keep: bool = False) -> Iterator[str]:
    """The URL to use: ``explicit`` with a namespace of the run's own on Redis and RabbitMQ,
    deleted after (``namespace.py``), else a SQLite file in a fresh temp dir. With
    ``keep`` (a profiled run, whose profiles are read after it), ``explicit`` as it is."""
    if explicit and keep:
        yield explicit
        return
    if explicit:
        with run_namespace(explicit) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="hurtle-bench-") as folder:
        yield f"sqlite:///{folder}/bench.db"


def queue_stats(url: str, queue: str) -> QueueStats:
    async def collect() -> QueueStats:
        broker = from_url(url)
        try:
            await broker.connect()
            return (await broker.stats([queue]))[0]
        finally:
            await broker.close()

    return asyncio.run(collect())


def send_timed(task: Task[..., Any], calls: Sequence[Sequence[Any]], batch: int) -> float:
    """Send ``calls`` with ``send_many``, ``batch`` at a time; seconds taken."""
    started = time.perf_counter()
    for start in range(0, len(calls), batch):
        task.send_many(calls[start : start + batch])
    return time.perf_counter() - started


@dataclass(frozen=True)
class WorkerRun:
    started_at: float  # time.time() just before the subprocess started
    wall_s: float
    cpu_s: float  # user + system CPU of the worker and the processes it forked
    exit_code: int | None  # None: killed after the time limit
    log: str


def run_worker(
    app_spec: str, url: str, queue: str, processes: int, records: Path, n: int,
    worker_args: Sequence[str] = (), progress: OnProgress | None = None,
    env: Mapping[str, str] | None = None,
) -> WorkerRun:
    """Run ``hurtle worker APP --burst`` in a subprocess; time it from start to exit.

    ``env`` is added to this process's environment for the worker."""
    command = [
        sys.executable, "-m", "hurtle", "worker", app_spec, "--burst",
        "-p", str(processes), "--broker", url, "-q", queue, "--log-level", "warning", *worker_args,
    ]
    env = {**os.environ, **(env or {}), RECORDS_ENV: str(records)}
    limit = max(_WORKER_TIMEOUT_MIN, n / 100)
    with tempfile.TemporaryFile("w+") as log:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started_at = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, text=True)
        try:
            code = _wait(proc, limit, records, progress)
        except BaseException:  # interrupted: the worker stops first, then the run's namespace goes
            _stop(proc)
            raise
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        log.seek(0)
        text = log.read()[-_LOG_TAIL:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WorkerRun(started_at, wall, cpu, code, text)


def _wait(
    proc: subprocess.Popen[str], limit: float, records: Path, progress: OnProgress | None
) -> int | None:
    """The worker's exit code, or None when it was killed after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return proc.wait(_POLL_S if progress else limit)
        except subprocess.TimeoutExpired:
            if progress is not None:
                progress(read_records(records).runs)
            if time.monotonic() >= deadline:
                proc.kill()
                proc.wait()
                return None


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop the worker as SIGTERM does (its unstarted tasks go back), killed past ``_STOP_WAIT_S``."""
    proc.terminate()
    try:
        proc.wait(_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


#: Looks at the records folder of a finished run (while it exists); adds problems or measures.
Inspect = Callable[[Path, RunResult], None]


def run_burst(
    app: App, task: Task[..., Any], calls: Sequence[Sequence[Any]], workload: str, app_spec: str,
    options: Options, *, worker_args: Sequence[str] = (), inspect: Inspect | None = None,
    progress: OnProgress | None = None, env: Mapping[str, str] | None = None,
) -> RunResult:
    """One verified run: send ``calls`` to ``task``, drain them with a burst worker.

    ``worker_args`` are added to the worker's command line (``-c``, ``-t``), and
    so are its profiling and metrics options (``option_args``);
    ``inspect`` runs after the standard checks, before the records are deleted;
    ``progress`` is told the count of runs while the worker drains the queue;
    ``env`` is added to the worker's environment (where a workload's target is).
    """
    queue = task.opts.queue
    with broker_url(options.broker, keep=options.profile) as url, tempfile.TemporaryDirectory() as folder:
        result = RunResult(workload, options.kind, len(calls), options.processes, options.broker or url)
        before = queue_stats(url, queue)
        if before.pending:
            result.problems.append(
                f"queue {queue!r} holds {before.pending} message(s) before the run:"
                " purge it or use a fresh broker"
            )
            return result
        app.broker_url = url
        try:
            enqueue_s = send_timed(task, calls, options.batch)
        finally:
            app.close()  # the next run may use another URL
        sent = queue_stats(url, queue)
        if sent.pending != len(calls):
            result.problems.append(f"sent {len(calls)} task(s) but the queue holds {sent.pending}")
            return result
        worker = run_worker(
            app_spec, url, queue, options.processes, Path(folder), len(calls),
            [*worker_args, *option_args(options)], progress, env,
        )
        after = queue_stats(url, queue)
        records = read_records(Path(folder))
        result.ran, result.pending = records.runs, after.pending
        result.dead, result.worker_exit = after.dead - before.dead, worker.exit_code
        result.problems += check_run(result)
        if inspect is not None:
            inspect(Path(folder), result)
        if result.problems:
            result.worker_log = worker.log
            return result
        result.timings = Timings(
            enqueue_s=enqueue_s,
            processing_s=records.last - records.first,
            wall_s=worker.wall_s,
            startup_s=records.first - worker.started_at,
            worker_cpu_s=worker.cpu_s,
        )
        return result


def check_run(result: RunResult) -> list[str]:
    """Why a finished run cannot be trusted; empty when every task ran exactly once."""
    problems = []
    if result.worker_exit is None:
        problems.append("the worker did not finish in time and was killed")
    elif result.worker_exit != 0:
        problems.append(f"the worker exited with code {result.worker_exit}")
    return problems + check_counts(result)


def check_counts(result: RunResult) -> list[str]:
    """Why the counts of a finished run are wrong: runs lost or repeated, messages left or dead."""
    problems = []
    if result.ran < result.n:
        problems.append(
            f"lost tasks: {result.n - result.ran} of {result.n} runs not counted (a task never"
            " ran, or a worker process died before writing its count)"
        )
    elif result.ran > result.n:
        problems.append(f"{result.ran - result.n} task(s) ran more than once (redelivered)")
    if result.pending:
        problems.append(f"{result.pending} message(s) still pending after the worker exited")
    if result.dead:
        problems.append(f"{result.dead} message(s) were dead-lettered")
    return problems
