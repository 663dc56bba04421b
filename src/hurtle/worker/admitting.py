"""How a fetched message that needs asking first is started: a limited task once
its limit admits it (``hurtle.schedule.limits``), a periodic tick's or workflow
step's copy once it claims its run (``hurtle.schedule.ticks``).

Part of ``Consumer`` (``consumer.py``), kept apart as the one job it does there;
the attributes below are the consumer's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hurtle.schedule.limits import STORE_DOWN_WAIT, Admission, give_back
from hurtle.schedule.ticks import COPY_HEADER

if TYPE_CHECKING:
    from hurtle.app import App
    from hurtle.brokers import Broker, Delivery
    from hurtle.schedule.limits import Limiter
    from hurtle.schedule.ticks import TickClaims
    from hurtle.worker.dispatcher import Job
    from hurtle.worker.settle import Settler
    from hurtle.worker.slots import Slots

log = logging.getLogger("hurtle.worker")


class Admitting:
    """The consumer's starts that wait on a store's answer."""

    app: App
    broker: Broker
    async_slots: Slots
    thread_slots: Slots
    tick_claims: TickClaims
    _limiter: Limiter | None
    _holders: dict[int, str]
    _started: int
    _settler: Settler
    _in_flight: dict[int, Delivery]
    _async_runs: dict[int, tuple[asyncio.Task[None], Job]]

    def _track(self, task: asyncio.Task[None]) -> None:
        raise NotImplementedError

    async def _run_async(self, job: Job) -> None:
        raise NotImplementedError

    def _run_sync(self, job: Job) -> None:
        raise NotImplementedError

    def _forget(self, delivery: Delivery) -> None:
        raise NotImplementedError

    def _after_task(self) -> None:
        raise NotImplementedError

    async def _admit(self, jobs: list[Job]) -> None:
        """Start the jobs (all of one task) that get their permits; give the others
        back to the broker, delayed until their limit should allow them, and free
        their slots (``hurtle.schedule.limits``)."""
        assert self._limiter is not None
        task = jobs[0].task
        try:
            admission = await self._limiter.admit(task, jobs)
        except Exception as exc:
            log.warning("could not ask the limit store (%s: %s): %d message(s) of %s wait %gs",
                        type(exc).__name__, exc, len(jobs), task.name, STORE_DOWN_WAIT)
            admission = Admission(wait=[(job, STORE_DOWN_WAIT) for job in jobs])
        for job, _ in admission.start:
            self._begin(job)
        if not admission.wait:
            return
        self._started -= len(admission.wait)  # not run: --max-tasks-per-child counts runs
        slots = self.async_slots if task.is_async else self.thread_slots
        try:
            await asyncio.gather(*(self._defer(job, wait) for job, wait in admission.wait))
        finally:
            slots.give(len(admission.wait))
        self._after_task()

    def _begin(self, job: Job) -> None:
        """Start a job whose slot is taken already (a limited one, once admitted)."""
        if COPY_HEADER in job.envelope.headers:  # a tick or a workflow's copy: claimed first
            self._track(asyncio.create_task(self._start_tick(job)))
        elif job.task.is_async:
            self._async_runs[id(job.delivery)] = (asyncio.create_task(self._run_async(job)), job)
        else:
            self._run_sync(job)

    async def _defer(self, job: Job, wait: float) -> None:
        try:
            await give_back(self.broker, job, wait, self.app)
        except Exception:
            self._forget(job.delivery)  # its lease expires and it is delivered again
            log.exception("could not give a limited message back; it will be redelivered")
            return
        self._in_flight.pop(id(job.delivery), None)

    def _let_go(self, job: Job) -> None:
        if self._limiter is not None:
            self._limiter.let_go(job)

    async def _start_tick(self, job: Job) -> None:
        """Run a tick's (or a workflow step's) message if it is the copy that claims
        it; acknowledge a second copy (its sender died before recording that it
        sent it) without running it."""
        if await self.tick_claims.may_run(job.envelope):
            if job.task.is_async:
                self._async_runs[id(job.delivery)] = (asyncio.create_task(self._run_async(job)), job)
            else:
                self._run_sync(job)
            return
        slots = self.async_slots if job.task.is_async else self.thread_slots
        if self._holders:
            self._let_go(job)
        try:
            self._settler.skip(job, "another copy of this message ran")
        finally:
            slots.give()
        self._after_task()
