"""How a cancel reaches a running task (``hurtle cancel``, ``handle.cancel()``): an
async run is cancelled on the loop; a sync run is told through its ``Job``, and
with one thread its process is replaced if it goes on past the grace period.

Part of ``Consumer`` (``consumer.py``), kept apart as the one job it does there;
the attributes below are the consumer's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from hurtle.schedule.cancel import POLL_EVERY

if TYPE_CHECKING:
    from hurtle.schedule.cancel import CancelWatch
    from hurtle.worker.config import WorkerConfig
    from hurtle.worker.dispatcher import Job
    from hurtle.worker.executors import SyncCall, ThreadExecutor
    from hurtle.worker.settle import Settler
    from hurtle.worker.slots import Slots

log = logging.getLogger("hurtle.worker")

#: Seconds a cancelled sync task has to stop by itself, with ``--threads 1``, before
#: it is recorded cancelled and its process replaced (a thread cannot be stopped).
CANCEL_GRACE = 10.0


class Cancelling:
    """The consumer's part that finds cancelled tasks among those it runs."""

    config: WorkerConfig
    cancels: CancelWatch
    thread_executor: ThreadExecutor
    thread_slots: Slots
    _settler: Settler
    _async_runs: dict[int, tuple[asyncio.Task[None], Job]]
    _sync_runs: dict[int, SyncCall]

    def _after_task(self) -> None:
        raise NotImplementedError

    async def _watch_cancels(self) -> None:
        """Look for new cancel marks every ``POLL_EVERY`` seconds (one small read),
        and cancel the running tasks they name."""
        while True:
            await asyncio.sleep(POLL_EVERY)
            new = await self.cancels.look()
            if new:
                self._cancel_running(new)

    def _cancel_running(self, task_ids: set[str]) -> None:
        """Cancel async runs on the loop; tell sync runs through their ``Job`` and,
        with one thread, end them after ``CANCEL_GRACE`` if they go on."""
        for task, job in list(self._async_runs.values()):
            if job.envelope.id in task_ids and not job.cancelled:
                log.info("%s[%s] cancel requested: cancelling it", job.task.name, job.envelope.id)
                job.cancelled = True
                task.cancel()
        for call in list(self._sync_runs.values()):
            job = call.context
            if job.envelope.id in task_ids and not job.cancelled:
                log.info("%s[%s] cancel requested: current_task().cancelled is now true",
                         job.task.name, job.envelope.id)
                job.cancelled = True
                if self.config.threads == 1:
                    asyncio.get_running_loop().call_later(CANCEL_GRACE, self._sync_cancel_over, call)

    def _sync_cancel_over(self, call: SyncCall) -> None:
        """A cancelled sync task still runs after the grace period, alone in its
        process: record it cancelled and have the process replaced."""
        if call.settled:
            return
        call.settled = call.cancelled = True
        self.thread_executor.needs_recycle = True
        job: Job = call.context
        self._sync_runs.pop(id(job.delivery), None)
        log.warning("%s[%s] still running %gs after its cancel: replacing its process",
                    job.task.name, job.envelope.id, CANCEL_GRACE)
        self._settler.cancel_now(job, call.started or time.time(), time.time())
        self.thread_slots.give()
        self._after_task()
