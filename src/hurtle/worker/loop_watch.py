"""Which task blocks the event loop: named while it blocks, interrupted past a limit.

An ``async def`` task that calls ``time.sleep(15)`` (or a sync HTTP client, or
a long computation) holds its process's event loop: no other task runs, and no
lease heartbeat goes out. Looking for the culprit once the loop turns again is
too late: it has finished by then. So a daemon thread beside the loop watches
the loop's heartbeat stamp; when it is late, the thread reads the loop
thread's stack (``sys._current_frames``) for the frame of ``run_job``, the
coroutine that runs a task's code, and names that task and its id in the log.

Past the block limit (half the visibility timeout: a lease lasts at least two
thirds of it after its last renewal), the thread signals the loop thread, whose
handler raises ``EventLoopBlocked`` inside the task if that task is still the
one on the stack. The task is dead-lettered with the reason and not retried
(a retry would block a loop again, as a hard time limit fails a Celery task
for good); the tasks in flight beside it carry on and finish, uncharged. A call
the signal cannot interrupt (C code holding the GIL, which stops this thread
too) is left to the supervisor, which kills the process at its stall limit.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

from hurtle.errors import EventLoopBlocked
from hurtle.worker.dispatcher import Job
from hurtle.worker.watchdog import BEAT_EVERY, Heartbeats

log = logging.getLogger("hurtle.worker")

#: The signal that interrupts the loop thread. Worker processes own it: a
#: handler a task installs for it turns interrupting off in that process.
INTERRUPT = signal.SIGUSR2
_LOOK_EVERY = 0.1  # seconds between looks at the loop's stamp
_LATE = 0.5  # seconds of block worth naming in the log


def block_limit(visibility_timeout: float) -> float:
    """Seconds an async task may hold the loop before it is interrupted: half the
    visibility timeout, so the tasks beside it still hold their leases after."""
    return max(1.0, visibility_timeout / 2)


async def run_job(job: Job) -> Any:
    """Run an async task's code. The watcher knows which task holds the loop by
    this frame on the loop thread's stack: ``job`` must stay one of its locals."""
    # One coroutine more per task: 0.02 to 0.2 us measured, against the tens of
    # microseconds a no-op task costs the worker.
    envelope = job.envelope
    # Plain strings, for `hurtle profile dump`: py-spy shows a str local but not
    # an object's fields. Two attribute reads, a few nanoseconds.
    task_name = job.task.name  # noqa: F841
    task_id = envelope.id  # noqa: F841
    return await job.task.fn(*envelope.args, **envelope.kwargs)


_RUN_JOB = run_job.__code__


def job_on_stack(frame: FrameType | None) -> Job | None:
    """The job whose ``run_job`` frame is on the stack ``frame`` tops, if any."""
    return _find(frame)[0]


def _find(frame: FrameType | None) -> tuple[Job | None, FrameType | None]:
    """The job on the stack ``frame`` tops, and the frame of its task's own code."""
    callee = None
    while frame is not None:
        if frame.f_code is _RUN_JOB:
            job = frame.f_locals.get("job")
            return (job, callee) if isinstance(job, Job) else (None, None)
        callee, frame = frame, frame.f_back
    return None, None


def _line(frame: FrameType) -> str:
    code = frame.f_code
    return f"{os.path.basename(code.co_filename)}:{frame.f_lineno} in {code.co_name}"


def _where(top: FrameType | None, task_frame: FrameType | None) -> str:
    """Where the loop thread is: the task's own line, and the innermost one when
    that is elsewhere (inside a library the task called)."""
    if top is None:
        return "an unknown place"
    if task_frame is None or task_frame is top:
        return _line(top)
    return f"{_line(task_frame)} (now {_line(top)})"


def _named(job: Job) -> str:
    return f"{job.task.name}[{job.envelope.id}]"


@dataclass
class _Block:
    """One stretch of a loop held by one job (or by no task at all)."""

    job: Job | None
    lasted: float  # seconds, as far as the watcher can vouch for them
    interrupted: bool = False


class LoopWatcher:
    """A daemon thread beside one worker process's event loop."""

    def __init__(self, heartbeats: Heartbeats, slot: int, limit: float) -> None:
        self.limit = limit
        self._heartbeats = heartbeats
        self._slot = slot
        self._loop_thread = threading.get_ident()
        #: The job the signal handler must interrupt, and why; set by the watcher.
        self._pending: tuple[Job, str] | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="hurtle-loop-watch", daemon=True)
        self._previous: Any = None
        self._started = 0.0  # monotonic: stamps older than this are not the loop's

    def start(self) -> None:
        """Call from the loop's thread, the process's main thread: signal handlers run there."""
        self._previous = signal.signal(INTERRUPT, self._on_interrupt)
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """From the loop's thread: stop watching, and put the previous handler back
        once no signal can come any more."""
        self._stopped.set()
        self._thread.join(1.0)
        if not self._thread.is_alive():
            signal.signal(INTERRUPT, self._previous)

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        """On the loop thread, between two bytecodes of whatever runs there (or as
        its ``time.sleep`` returns early): raise only inside the job to interrupt."""
        pending = self._pending
        if pending is None or job_on_stack(frame) is not pending[0]:
            return
        self._pending = None
        raise EventLoopBlocked(pending[1])

    def _watch(self) -> None:
        block: _Block | None = None
        last_look = time.monotonic()
        while not self._stopped.wait(_LOOK_EVERY):
            now = time.monotonic()
            since, last_look = now - last_look, now
            age = self._heartbeats.age(self._slot)
            if age > now - self._started:
                continue  # the process is starting: its loop does not stamp yet
            blocked = age - BEAT_EVERY
            if blocked < _LATE:
                if block is not None:
                    self._ended(block)
                block = None
                continue
            top = sys._current_frames().get(self._loop_thread)
            job, task_frame = _find(top)
            where = _where(top, task_frame)
            del top, task_frame  # a frame keeps every local of the loop thread's stack alive
            if block is None or block.job is not job:
                # The stamp's age may hold a time this thread did not run either
                # (the process was stopped, C code held the GIL): no measure of
                # this job. Count from here, as if it had just been noticed.
                block = _Block(job, min(blocked, _LATE + _LOOK_EVERY))
                self._name(block, where)
            elif since < _LOOK_EVERY + _LATE:  # a late look vouches for nothing either
                block.lasted += since
            if job is not None and not block.interrupted and block.lasted >= self.limit:
                block.interrupted = True
                self._interrupt(job, block.lasted, where)

    def _name(self, block: _Block, where: str) -> None:
        if block.job is None:
            log.warning(
                "the event loop is blocked outside any task (%.1fs so far, at %s)",
                block.lasted, where,
            )
            return
        log.warning(
            "%s is blocking the event loop (%.1fs so far, at %s): no other task of this"
            " process runs meanwhile; a blocking call (time.sleep, requests, a long"
            " computation) belongs in a sync task (def), which runs in a thread."
            " Past %gs it is interrupted and dead-lettered",
            _named(block.job), block.lasted, where, self.limit,
        )

    def _interrupt(self, job: Job, lasted: float, where: str) -> None:
        reason = (
            f"blocked the event loop for {lasted:.1f}s, past the limit of {self.limit:g}s"
            f" (half the visibility timeout), at {where}"
        )
        log.error("%s %s: interrupting it", _named(job), reason)
        self._pending = (job, reason)
        signal.pthread_kill(self._loop_thread, INTERRUPT)

    def _ended(self, block: _Block) -> None:
        self._pending = None
        if block.job is not None and not block.interrupted:
            log.warning("%s let the event loop go after about %.1fs", _named(block.job), block.lasted)
