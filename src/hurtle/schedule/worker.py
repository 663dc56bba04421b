"""Where the scheduler runs: in the first process of every ``hurtle worker``.

Every worker may run it; the lease lets one at a time enqueue. Not started (no
task, no lease traffic) when the app has no schedules, in the other processes
of a worker (one contender per machine is enough), with ``--schedule-lease 0``,
or with ``--burst``: a burst worker runs until the queues are empty, and a
scheduler would keep filling them (a leader that exits takes its lease with
it, but a burst run is no place to send periodic work from).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from hurtle.app import App
from hurtle.loops import cancel_all
from hurtle.schedule.scheduler import Scheduler
from hurtle.worker.config import WorkerConfig
from hurtle.worker.consumer import Consumer

log = logging.getLogger("hurtle.schedule")


def runs_scheduler(app: App, config: WorkerConfig, slot: int = 0) -> bool:
    """Whether the process in ``slot`` of a worker with ``config`` runs the scheduler."""
    return bool(app.schedules) and config.schedule_lease > 0 and not config.burst and slot == 0


@contextlib.asynccontextmanager
async def scheduling(app: App, consumer: Consumer, slot: int) -> AsyncIterator[None]:
    """The scheduler while the consumer runs (when this process runs one); at
    the end, the lease given back and the tick claims' store closed."""
    running: asyncio.Task[None] | None = None
    if runs_scheduler(app, consumer.config, slot):
        store = consumer.tick_claims.store()
        if store is None:
            log.warning("schedules are not run: %s keeps no records to elect their leader in;"
                        " pass App(results=URL) of a store that does (redis://, sqlite://)",
                        app.broker_url.scheme)
        else:
            scheduler = Scheduler(app, store, consumer.config.schedule_lease)
            running = asyncio.create_task(scheduler.run(), name="hurtle-scheduler")
    try:
        yield
    finally:
        if running is not None:
            await cancel_all([running])
        await consumer.tick_claims.close()
