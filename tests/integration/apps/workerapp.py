"""The app the integration tests run under real ``hurtle worker`` processes.

Settings come from the environment so one module serves every test: the broker
from HURTLE_BROKER; a directory for marker files from WORKERAPP_DIR.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import hurtle

MARKS = Path(os.environ.get("WORKERAPP_DIR", "."))

app = hurtle.App(
    visibility_timeout=float(os.environ.get("WORKERAPP_VISIBILITY", "30")),
    max_deliveries=int(os.environ.get("WORKERAPP_MAX_DELIVERIES", "10")),
)


def _append(name: str, line: str) -> None:
    # O_APPEND writes of one short line are atomic across processes.
    with open(MARKS / name, "a") as f:
        f.write(line + "\n")


@app.on_preload
def preload() -> None:
    _append("preload", str(os.getpid()))


@app.on_worker_start
def worker_start() -> None:
    _append("worker_start", str(os.getpid()))


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def record(key: str) -> int:
    """Note each run (for counting duplicates), then return the process id."""
    _append("runs", f"{key} {os.getpid()}")
    time.sleep(0.002)
    return os.getpid()


@app.task
def pid() -> int:
    return os.getpid()


@app.task(retries=2, backoff=hurtle.Constant(0.05))
def always_fails(message: str) -> None:
    raise ValueError(message)


@app.task
def wait_for_go(key: str) -> str:
    """Say it started, then block until the test creates the file ``go``."""
    _append("started", key)
    while not (MARKS / "go").exists():
        time.sleep(0.01)
    return key


@app.task
async def wait_for_go_async(key: str) -> str:
    _append("started", key)
    while not (MARKS / "go").exists():
        await asyncio.sleep(0.01)
    return key


@app.task(timeout=0.5, retries=0)
def stuck(seconds: float) -> None:
    _append("started", str(os.getpid()))
    time.sleep(seconds)


@app.task(retries=0)
def kill_my_process() -> None:
    _append("runs", f"poison {os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)


@app.task
async def block_the_loop_for(seconds: float) -> None:
    """The classic mistake: a blocking call inside an async task."""
    _append("runs", f"blocker {os.getpid()}")
    time.sleep(seconds)


@app.task(retries=0)
async def block_the_loop_deaf_to_signals() -> None:
    """A block nothing can interrupt, as a C call that holds the GIL would be."""
    _append("runs", f"blocker {os.getpid()}")
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))
    time.sleep(3600)


@app.task
async def patient(key: str) -> int:
    """A well-behaved async task, in flight long enough to be beside a blocker."""
    _append("started", key)
    await asyncio.sleep(1.0)
    _append("runs", f"{key} {os.getpid()}")
    return os.getpid()


@app.task
async def record_async(key: str) -> int:
    """``record`` for the event loop: note each run, return the process id."""
    _append("runs", f"{key} {os.getpid()}")
    await asyncio.sleep(0.01)
    return os.getpid()


@app.task
def cpus_here() -> list[int]:
    """The process, then the CPUs the thread that runs this task may use; a moment
    long, so that a worker of one thread per process shares several out."""
    time.sleep(0.1)
    return [os.getpid(), *sorted(os.sched_getaffinity(0))]


@app.task
async def loop_kind() -> str:
    """The module of the event loop the task runs on: ``uvloop`` or asyncio's."""
    return type(asyncio.get_running_loop()).__module__


def busy_loop_until_go() -> int:
    """On a CPU until the test creates ``go``: a named frame for samplers to find."""
    turns = 0
    while not (MARKS / "go").exists():
        turns += 1
    return turns


@app.task
def spin_until_go(key: str) -> int:
    _append("started", key)
    return busy_loop_until_go()


@app.task
async def spin_until_go_async(key: str) -> int:
    """Holds the event loop while it spins, as a CPU-bound async task would."""
    _append("started", key)
    return busy_loop_until_go()


@app.task(retries=3)
async def wait_for_cancel_async(key: str) -> str:
    """Say it started, then wait for good; note that its cleanup ran when cancelled."""
    _append("started", key)
    try:
        await asyncio.sleep(3600)
    finally:
        _append("cleanup", key)
    return key


@app.task(retries=3)
def wait_for_cancel_sync(key: str) -> str:
    """Say it started, then poll ``current_task().cancelled`` and stop when it turns true."""
    _append("started", key)
    deadline = time.monotonic() + 120
    while not hurtle.current_task().cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    _append("stopped", key)
    return key


@app.task
def report_progress(key: str, done: int, total: int) -> str:
    """Report progress, say so, then block until the test creates ``go``."""
    hurtle.current_task().progress(done, total, note="rows")
    _append("started", key)
    while not (MARKS / "go").exists():
        time.sleep(0.01)
    return key


def _note_run(name: str, key: str, started: float) -> None:
    _append(name, f"{key} {started!r} {time.time()!r} {os.getpid()}")


# Limited tasks only when asked (WORKERAPP_LIMITS): a worker refuses to start an app
# with limits on RabbitMQ without a store that keeps them, as most of the tests run it.
if os.environ.get("WORKERAPP_LIMITS"):

    @app.task(max_concurrency=3)
    def partner(key: str) -> None:
        """A call to a partner that allows 3 connections: notes when it entered and left."""
        started = time.time()
        time.sleep(0.05)
        _note_run("partner", key, started)

    @app.task(max_concurrency=3)
    async def partner_async(key: str) -> None:
        started = time.time()
        await asyncio.sleep(0.05)
        _note_run("partner", key, started)

    @app.task(rate_limit="10/s")
    def paced(key: str) -> None:
        """At most 10 starts a second across every worker: notes when it started."""
        _note_run("paced", key, time.time())

    @app.task(max_concurrency=1)
    def one_at_a_time_until_go(key: str) -> str:
        """Holds the only permit until the test creates ``go``."""
        _append("started", key)
        while not (MARKS / "go").exists():
            time.sleep(0.01)
        return key
