"""The ``ping`` workload: send-to-start latency under light load, and an idle worker's memory.

A worker is started (not in burst mode) and one warm-up task is sent and
waited for, so every later number is a running worker's. Its processes'
memory is read then, idle. Then N tasks are sent one at a time,
``INTERVAL_S`` apart (500 a second: light load, nothing queues up), each
carrying the time it was sent; each returns how long it waited, send to
start, by the same machine's clock. The worker is stopped with SIGTERM and
must exit 0.

Verified as every workload is: N results came back (each task ran), nothing
pending or dead-lettered afterwards. Results are stored, so the broker (or
``App(results=...)``) needs a result store: SQLite and Redis have one.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hurtle.app import App
from hurtle.bench.result import RunResult, Timings
from hurtle.bench.runner import OnProgress, Options, broker_url, check_run, option_args, queue_stats
from hurtle.errors import HurtleError
from hurtle.task import Task

APP_SPEC = "hurtle.bench.ping:app"
INTERVAL_S = 0.002
_WARM_UP_TIMEOUT_S = 60.0
_RESULT_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0

app = App("memory://hurtle-bench")


@app.task(queue="bench-ping", retries=0)
def ping(sent_at: float) -> float:
    return time.time() - sent_at


@app.task(queue="bench-ping-async", retries=0)
async def ping_async(sent_at: float) -> float:
    return time.time() - sent_at


def run(options: Options, progress: OnProgress | None = None) -> RunResult:
    task = ping_async if options.kind == "async" else ping
    queue = task.opts.queue
    with broker_url(options.broker, keep=options.profile) as url, tempfile.TemporaryFile("w+") as log:
        result = RunResult(
            "ping", options.kind, options.n, options.processes, options.broker or url, throughput=False
        )
        if queue_stats(url, queue).pending:
            result.problems.append(f"queue {queue!r} is not empty: purge it or use a fresh broker")
            return result
        app.broker_url = url
        command = [sys.executable, "-m", "hurtle", "worker", APP_SPEC, "-p", str(options.processes),
                   "--broker", url, "-q", queue, "--log-level", "warning", *option_args(options)]
        started = time.perf_counter()
        worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            task.send(time.time()).result(timeout=_WARM_UP_TIMEOUT_S)
            startup = time.perf_counter() - started
            memory = _memory(worker.pid)
            waits, sending = _pings(task, options.n, progress)
        except HurtleError as exc:
            result.problems.append(f"a ping got no answer: {exc}")
            waits, sending, memory, startup = [], 0.0, {}, 0.0
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                result.worker_exit = worker.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            app.close()
        wall = time.perf_counter() - started
        after = queue_stats(url, queue)
        result.ran, result.pending, result.dead = len(waits), after.pending, after.dead
        result.problems += check_run(result)
        if result.problems:
            log.seek(0)
            result.worker_log = log.read()[-4000:]
            return result
    result.timings = Timings(
        enqueue_s=sending, processing_s=sending, wall_s=wall, startup_s=startup, worker_cpu_s=0.0
    )
    cuts = statistics.quantiles(waits, n=100, method="inclusive") if len(waits) > 1 else waits * 99
    result.extra = {
        "start_p50_ms": cuts[49] * 1000,
        "start_p95_ms": cuts[94] * 1000,
        "start_p99_ms": cuts[98] * 1000,
        "start_max_ms": max(waits) * 1000,
        **memory,
    }
    return result


def _pings(
    task: Task[[float], float], n: int, progress: OnProgress | None
) -> tuple[list[float], float]:
    """Send ``n`` pings ``INTERVAL_S`` apart; their waits, and the seconds sending took."""
    handles = []
    began = time.perf_counter()
    for index in range(n):
        pause = began + index * INTERVAL_S - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        handles.append(task.send(time.time()))
        if progress is not None and index % 100 == 99:
            progress(index + 1)
    sending = time.perf_counter() - began
    return [float(h.result(timeout=_RESULT_TIMEOUT_S)) for h in handles], sending


def _memory(supervisor: int) -> dict[str, float]:
    """Resident memory (MB) of the idle worker: the largest of its processes (RSS, and
    USS: the pages only that process holds; a fork shares the rest), and the supervisor's."""
    children = _children(supervisor)
    if not children:
        return {}
    rss = [_status_kb(pid, "VmRSS") for pid in children]
    uss = [_private_kb(pid) for pid in children]
    return {
        "idle_rss_mb": max(rss) / 1024,
        "idle_uss_mb": max(uss) / 1024,
        "supervisor_rss_mb": _status_kb(supervisor, "VmRSS") / 1024,
    }


def _children(pid: int) -> list[int]:
    """The worker processes the supervisor forked (Linux ``/proc``; elsewhere none, and
    no memory figures)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


def _status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return 0.0


def _private_kb(pid: int) -> float:
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    if not rollup.exists():
        return 0.0
    total = 0.0
    for line in rollup.read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += float(line.split()[1])
    return total

