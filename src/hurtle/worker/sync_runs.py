"""How a sync task runs: handed to the thread pool, and picked up on the loop once
it returns, or once its time limit passes first (a thread cannot be stopped).

Part of ``Consumer`` (``consumer.py``), kept apart as the one job it does there;
the attributes below are the consumer's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from hurtle.worker.executors import SyncCall, time_limit_failure
from hurtle.worker.outcome import Cancelled

if TYPE_CHECKING:
    from hurtle.profiling.profiler import Profiler
    from hurtle.worker.dispatcher import Job
    from hurtle.worker.executors import ThreadExecutor
    from hurtle.worker.outcome import Outcome
    from hurtle.worker.slots import Slots


class SyncRuns:
    """The consumer's part that runs sync tasks on its thread pool."""

    thread_executor: ThreadExecutor
    thread_slots: Slots
    _profiler: Profiler | None
    _sync_runs: dict[int, SyncCall]
    _holders: dict[int, str]
    _drained: bool
    _settle_now: Callable[[Job, Outcome, float, float], bool]

    if TYPE_CHECKING:
        # Defined by the consumer and by ``Admitting``: declared for the type checker
        # only, since a stub here would come first in the consumer's bases and hide them.
        def _let_go(self, job: Job) -> None: ...

        def _after_task(self) -> None: ...

        def _spawn(self, work: Coroutine[Any, Any, None], slots: Slots) -> None: ...

        async def _settle_later(
            self, job: Job, outcome: Outcome, started: float, finished: float
        ) -> None: ...

    def _run_sync(self, job: Job) -> None:
        """Hand a sync job to the thread pool; ``_sync_done`` picks it up on the loop.
        No asyncio task and no future per job: a no-op sync task costs a queue put."""
        envelope = job.envelope
        fn = job.task.fn if self._profiler is None else self._profiler.sync_function(job)
        call = SyncCall(fn, envelope.args, envelope.kwargs, job, self._sync_done)
        self._sync_runs[id(job.delivery)] = call
        self.thread_executor.submit(call)
        timeout = job.timeout
        if timeout is not None:
            call.timer = asyncio.get_running_loop().call_later(timeout, self._sync_time_out, call, timeout)

    def _sync_done(self, call: SyncCall) -> None:
        if call.timer is not None:
            call.timer.cancel()
        job: Job = call.context
        self._sync_runs.pop(id(job.delivery), None)
        if self._holders:  # the thread is done with it, even past its time limit
            self._let_go(job)
        if call.settled or self._drained:  # its time ran out, or the worker moved on
            return
        call.settled = True
        assert call.outcome is not None
        if job.cancelled:  # whatever it returned, it was asked to stop: not run again
            call.outcome = Cancelled()
        if self._settle_now(job, call.outcome, call.started, call.finished):
            self.thread_slots.give()
            self._after_task()
        else:
            self._spawn(self._settle_later(job, call.outcome, call.started, call.finished), self.thread_slots)

    def _sync_time_out(self, call: SyncCall, timeout: float) -> None:
        """A thread cannot be stopped: fail the task, and have this process replaced."""
        if call.settled:
            return
        call.settled = call.cancelled = True  # a thread that has not started it skips it
        self.thread_executor.needs_recycle = True
        job: Job = call.context
        self._sync_runs.pop(id(job.delivery), None)
        outcome = time_limit_failure(job.task.name, timeout)
        started = call.started or time.time() - timeout
        self._spawn(self._settle_later(job, outcome, started, time.time()), self.thread_slots)
