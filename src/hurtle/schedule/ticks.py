"""A tick's message, and the check that lets one copy of it run.

Each tick's message has a task id made from the schedule's name and the tick
(``tick_id``), the same whoever enqueues it, and three headers: the schedule,
the tick, and a random token of this copy. A leader that dies after enqueueing
a tick and before recording it leaves the next leader to enqueue the tick
again: two copies of one message. The worker that takes a copy first claims
the tick in the record store (``first_copy``, a ``put_if`` on a key of the
tick's own) with its copy's token; a second copy finds another token there and
is acknowledged without running. A redelivery of the copy that claimed the
tick (its worker died mid-run) finds its own token and runs again, as any
hurtle task is delivered at least once.

A workflow's next step is sent the same way (``hurtle.workflows.advance``): its
id fixed when the workflow was sent, a copy token of its own, so a step sent
twice (its sender died before acknowledging) runs once. Its claim key is the
task id's.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING

import msgspec

from hurtle.envelope import Envelope, make_envelope
from hurtle.record_source import open_records
from hurtle.records import RecordStore
from hurtle.schedule.timing import Schedule

if TYPE_CHECKING:
    from hurtle.app import App
    from hurtle.brokers import Broker

SCHEDULE_HEADER = "hurtle-schedule"
TICK_HEADER = "hurtle-tick"  # the tick, unix ms, as decimal text
COPY_HEADER = "hurtle-copy"
#: How long a tick's claim is kept: a second copy of a tick arriving later than
#: this after the first one ran runs again (docs/scheduling.md).
CLAIM_TTL = 86_400.0
_NAMESPACE = uuid.UUID("6f1c0f64-4c8e-5a53-9a43-6b1f2e0c7d11")

log = logging.getLogger("hurtle.schedule")


def tick_id(schedule: str, tick_ms: int) -> str:
    """The task id of ``schedule``'s tick at ``tick_ms``: 32 hex digits, the same
    on every machine, so ``app.handle(tick_id(...))`` finds that run."""
    return uuid.uuid5(_NAMESPACE, f"{schedule}@{tick_ms}").hex


def tick_envelope(app: App, schedule: Schedule, tick_ms: int, now: float) -> Envelope:
    """The message that runs ``schedule`` for its tick at ``tick_ms``."""
    task = app.tasks[schedule.task]
    envelope = make_envelope(
        task.name, schedule.args, dict(schedule.kwargs), queue=task.opts.queue,
        timeout=task.opts.timeout, task_id=tick_id(schedule.name, tick_ms), now=now,
    )
    envelope.headers.update(
        {SCHEDULE_HEADER: schedule.name, TICK_HEADER: str(tick_ms), COPY_HEADER: os.urandom(8).hex()}
    )
    return envelope


def claim_key(envelope: Envelope) -> str | None:
    """The record key a message's copies claim: a tick's, or a workflow step's sent
    by a worker; None for any other message."""
    headers = envelope.headers
    if COPY_HEADER not in headers:
        return None
    schedule, tick = headers.get(SCHEDULE_HEADER), headers.get(TICK_HEADER)
    if schedule is not None and tick is not None:
        return f"schedule:ran:{schedule}@{tick}"
    if envelope.flow is not msgspec.UNSET:
        return f"flow:ran:{envelope.id}"
    return None


async def first_copy(store: RecordStore, envelope: Envelope) -> bool:
    """Whether this copy of a tick may run: it claimed the tick now, or had
    claimed it before (a redelivery). A message that is no tick always may."""
    key = claim_key(envelope)
    if key is None:
        return True
    token = envelope.headers[COPY_HEADER].encode()
    if await store.put_if(key, token, CLAIM_TTL, current=None):
        return True
    return await store.get(key) == token


class TickClaims:
    """A worker process's ``first_copy`` checks, on the record store it opens at
    the first tick it sees (a broker that keeps records lends its own): a worker
    that never sees a tick opens nothing."""

    def __init__(self, app: App, broker: Broker) -> None:
        self._app = app
        self._broker = broker
        self._store: RecordStore | None = None
        self._opened = False
        self._borrowed = False

    @property
    def opened(self) -> bool:
        """Whether a store was asked for (a tick came, or the scheduler runs here)."""
        return self._opened

    @property
    def borrowed(self) -> bool:
        """Whether the store opened is the broker's own (no connection of its own)."""
        return self._borrowed

    def store(self) -> RecordStore | None:
        """The record store, opened on first use; None when no store keeps records."""
        if not self._opened:
            self._opened = True
            self._store = self._broker.record_store()
            self._borrowed = self._store is not None
            if self._store is None:
                self._store = open_records(self._app.broker_url, self._app.results_url)
        return self._store

    async def may_run(self, envelope: Envelope) -> bool:
        """``first_copy``; True when no store keeps records or it fails: a tick
        that may run twice rather than not at all."""
        store = self.store()
        if store is None:
            return True
        try:
            return await first_copy(store, envelope)
        except Exception as exc:
            log.warning("could not check tick %s of schedule %s (%s: %s); running it",
                        envelope.headers.get(TICK_HEADER), envelope.headers.get(SCHEDULE_HEADER),
                        type(exc).__name__, exc)
            return True

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None and not self._borrowed:  # the broker's connection closes its own
            await store.close()
