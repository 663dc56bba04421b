"""Which tasks a worker process runs now, read only when someone asks.

The worker registry's heartbeat lists them every few seconds; keeping a list
up to date at every task start and end would cost every task, so nothing is
kept. Instead this reads what the consumer holds anyway, at the heartbeat:

- an async task is an asyncio task in ``Consumer._async_runs``, with its Job;
  the time it started is the ``started`` local of its ``_run_async`` coroutine,
  read from the suspended coroutine's frame;
- a sync task is the ``call`` local of ``executors._run_call`` on a pool
  thread's stack (``sys._current_frames``), with the time it started in
  ``SyncCall.started``; a call still queued for a thread is not running yet.

So ``_run_async`` keeps ``started`` and ``_run_call`` keeps ``call`` as locals;
the tests of the registry fail if either is renamed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from types import FrameType
from typing import Any

from hurtle.observe.registry import RunningTask
from hurtle.worker.dispatcher import Job
from hurtle.worker.executors import SyncCall, run_call_code


def async_running(runs: Iterable[tuple[asyncio.Task[Any], Job]], now: float) -> list[RunningTask]:
    """The async jobs in ``runs`` (``Consumer._async_runs``' values)."""
    running = []
    for task, job in runs:
        frame = getattr(task.get_coro(), "cr_frame", None)
        started = frame.f_locals.get("started") if frame is not None else None
        elapsed = max(0.0, now - started) if isinstance(started, float) else None
        running.append(RunningTask(id=job.envelope.id, name=job.task.name, kind="async", elapsed=elapsed))
    return running


def sync_running(thread_ids: Iterable[int | None], now: float) -> list[RunningTask]:
    """The sync calls the threads ``thread_ids`` (a ThreadExecutor's) are running."""
    frames = sys._current_frames()
    running = []
    for ident in thread_ids:
        call = _call_on_stack(frames.get(ident)) if ident is not None else None
        if call is None or not isinstance(call.context, Job):
            continue
        job = call.context
        elapsed = max(0.0, now - call.started) if call.started else None
        running.append(RunningTask(id=job.envelope.id, name=job.task.name, kind="sync", elapsed=elapsed))
    return running


def _call_on_stack(frame: FrameType | None) -> SyncCall | None:
    while frame is not None:
        if frame.f_code is run_call_code:
            call = frame.f_locals.get("call")
            return call if isinstance(call, SyncCall) else None
        frame = frame.f_back
    return None
