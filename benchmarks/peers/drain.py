"""Run a peer's worker commands until the tasks' own records count N, then stop them.

Peers have no burst mode (RQ's aside), so a run is over when the records the
tasks write (``RunRecorder``: one file per process, rewritten every 0.1 s)
add up to N. The bench reads them every ``POLL_S``, then waits ``SETTLE_S``
more so a task that runs twice can show up, and stops the workers: SIGTERM to
each command, SIGKILL to its whole process group after ``GRACE_S``. Each
command starts a session of its own, so that group holds every process it
forked and nothing else.

A run that stops making progress for ``Limits.stall_s`` (a lost task is never
coming), or outlives ``Limits.time_s`` (a peer too slow for the workload), or
whose worker exits by itself is stopped the same way and says which. So is a
bench that is told to stop (SIGTERM, SIGHUP): the workers are in sessions of
their own, out of reach of a signal to the bench's group, so the bench stops
them before it exits (the handler only sets a flag; the watch loop acts).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hurtle.bench.runner import OnProgress, read_records

POLL_S = 0.1
SETTLE_S = 0.3  # three record writes: long enough for a duplicate run to be counted
ACKS_MAX_S = 5.0  # after N counted: how long a peer may take to acknowledge the last tasks
GRACE_S = 10.0  # SIGTERM -> SIGKILL
TIME_LIMIT_MIN_S = 120.0
STALL_MIN_S = 30.0
_LOG_TAIL = 4000  # characters of the workers' log kept for a failed run


@dataclass(frozen=True)
class Limits:
    time_s: float  # the whole drain
    stall_s: float  # without one more task counted


def limits(n: int, longest_task_s: float) -> Limits:
    """Generous bounds: a verified run of any peer stays far inside them, a lost one ends."""
    return Limits(
        time_s=max(TIME_LIMIT_MIN_S, n / 100, 10 * longest_task_s),
        stall_s=max(STALL_MIN_S, 3 * longest_task_s),
    )


@dataclass(frozen=True)
class Drained:
    """How the drain ended: ``done`` (N counted), ``stalled``, ``time limit`` or ``exited``."""

    ended: str
    started_at: float  # time.time() just before the first command started
    waited_s: float
    exit_codes: list[int]  # after the stop: negative for a signal
    cpu_s: float  # user + system CPU of the commands and everything they forked and reaped
    log: str

    def problem(self, limits: Limits, ran: int, n: int) -> str | None:
        """The one line a run that did not end ``done`` reports instead of a speed."""
        if self.ended == "time limit":
            return f"not finished in {limits.time_s:.0f} s: {ran:,} of {n:,} ran"
        if self.ended == "stalled":
            return f"no task finished for {limits.stall_s:.0f} s, stopped with {ran:,} of {n:,} ran"
        if self.ended == "exited":
            codes = ", ".join(str(code) for code in self.exit_codes)
            return f"the worker exited by itself (exit codes {codes}) with {ran:,} of {n:,} ran"
        return None


def drain(
    commands: Sequence[Sequence[str]], env: dict[str, str], records: Path, n: int, bounds: Limits,
    progress: OnProgress | None = None, settled: Callable[[], bool] | None = None,
) -> Drained:
    """Start ``commands``, wait until the records count ``n`` (or a limit), stop them.

    ``settled`` (the peer's queue holds nothing unacknowledged) is then awaited for
    up to ``ACKS_MAX_S``: a peer that acknowledges in batches, after the task, is
    not stopped between its last task and its last ack (a worker left running
    would ack them; what is still unacknowledged after that counts against it)."""
    with ExitStack() as stack:
        log = stack.enter_context(tempfile.TemporaryFile("w+"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started_at = time.time()
        started = time.monotonic()
        signals: list[int] = []
        previous = _on_stop_signals(signals.append)
        try:
            procs = [_start(command, env, log) for command in commands]
            try:
                ended = _watch(procs, records, n, bounds, started, progress, signals)
                if ended == "done" and settled is not None:
                    _wait_for(settled, ACKS_MAX_S, signals)
            finally:
                codes = stop(procs)
        finally:
            _restore(previous)
        if signals:
            raise SystemExit(128 + signals[0])
        waited = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        log.seek(0)
        text = log.read()[-_LOG_TAIL:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Drained(ended, started_at, waited, codes, cpu, text)


def _start(command: Sequence[str], env: dict[str, str], log: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(command), stdout=log, stderr=subprocess.STDOUT, env=env, text=True,
        start_new_session=True,  # its own process group: stop() can end every process it forked
    )


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_Handlers = dict[int, Any]


def _on_stop_signals(note: Callable[[int], None]) -> _Handlers:
    """Note SIGTERM and SIGHUP instead of dying with the workers left running; the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, lambda signum, frame: note(signum)) for sig in _STOP_SIGNALS}


def _restore(previous: _Handlers) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _watch(
    procs: list[subprocess.Popen[str]], records: Path, n: int, bounds: Limits, started: float,
    progress: OnProgress | None, signals: list[int],
) -> str:
    counted, changed = 0, started
    while not signals:
        time.sleep(POLL_S)
        now = time.monotonic()
        runs = read_records(records).runs
        if progress is not None:
            progress(runs)
        if runs >= n:
            time.sleep(SETTLE_S)
            return "done"
        if runs != counted:
            counted, changed = runs, now
        if any(proc.poll() is not None for proc in procs):
            return "exited"
        if now - changed > bounds.stall_s:
            return "stalled"
        if now - started > bounds.time_s:
            return "time limit"
    return "interrupted"


def _wait_for(condition: Callable[[], bool], limit_s: float, signals: list[int]) -> None:
    deadline = time.monotonic() + limit_s
    while not signals and not condition() and time.monotonic() < deadline:
        time.sleep(POLL_S)


def stop(procs: list[subprocess.Popen[str]]) -> list[int]:
    """SIGTERM each command; SIGKILL the process group of any still running after the grace."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
    # A command's own worker processes can outlive it for a moment, still writing (a
    # result, a heartbeat) after its namespace is deleted: none may survive the run.
    for proc in procs:
        _kill_group(proc.pid)
    return [proc.returncode for proc in procs]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # every process of the group has exited
        os.killpg(pgid, signal.SIGKILL)
