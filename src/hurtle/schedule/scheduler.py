"""The scheduler: the loop, in one process of every ``hurtle worker``, that
enqueues each schedule's due ticks while it holds the lease.

Each pass, as leader: read the schedule's last recorded tick
(``schedule:last:<name>``), enqueue the ticks due since (``Schedule.due``),
then move the record to the latest of them with a ``put_if`` that expects the
value read. Enqueue first, record second: a leader that dies between the two
leaves ticks the next leader enqueues again, and the copies' claims
(``ticks.py``) let one of each run; recording first would lose them instead.

It sleeps until the next tick or the lease's renewal, whichever is sooner, and
costs nothing in an app without schedules: the worker does not start it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from hurtle.app import App
from hurtle.records import RecordStore
from hurtle.schedule.lease import Lease, leader_key
from hurtle.schedule.ticks import tick_envelope
from hurtle.schedule.timing import Schedule, iso

#: How long a schedule's last tick is kept: a schedule no worker ran for longer
#: starts again as a new one (its first run is its next tick).
LAST_TTL = 400 * 86_400.0

log = logging.getLogger("hurtle.schedule")


def last_key(schedule: str) -> str:
    return f"schedule:last:{schedule}"


def last_value(tick_ms: int, sent: bool) -> bytes:
    """A schedule's record: ``sent <ms>``, its last tick sent, or ``start <ms>``, the
    moment a leader first saw it (every tick up to there counts as done)."""
    return f"{'sent' if sent else 'start'} {tick_ms}".encode()


def read_last(raw: bytes | None) -> tuple[int, bool] | None:
    """``(ms, sent)`` from a schedule's record; None for none, or one not written here."""
    if raw is None:
        return None
    kind, _, number = raw.decode(errors="replace").partition(" ")
    if kind not in ("sent", "start") or not number.isdigit():
        return None
    return int(number), kind == "sent"


class Scheduler:
    """Enqueues due ticks while this process holds the lease."""

    def __init__(
        self, app: App, store: RecordStore, lease_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.app = app
        self.store = store
        self.schedules: Sequence[Schedule] = list(app.schedules.values())
        self.lease = Lease(store, leader_key(app.schedules), lease_seconds)
        self._clock = clock
        self._failing = False

    async def run(self) -> None:
        """Lead or wait, for ever (cancel to stop); the lease is given back at the end."""
        try:
            while True:
                await asyncio.sleep(await self.step())
        finally:
            await asyncio.shield(self._release())

    async def step(self) -> float:
        """One pass: take or renew the lease, enqueue what is due if it is ours.
        Returns the seconds to sleep before the next pass."""
        try:
            was_leader = self.lease.held
            if await self.lease.acquire():
                if not was_leader:
                    log.info("this worker now runs the schedules (lease %gs)", self.lease.seconds)
                await self.enqueue_due()
            elif was_leader:
                log.warning("lost the schedules' lease to another worker")
            if self._failing:
                self._failing = False
                log.info("the scheduler reaches its store again")
        except Exception as exc:
            self.lease.held = False  # unsure: act as a follower until a renewal succeeds
            if not self._failing:
                self._failing = True
                log.warning("scheduler: %s: %s; trying again", type(exc).__name__, exc)
        return self.pause()

    def pause(self) -> float:
        """Until the lease's renewal, or the next tick when sooner (as leader)."""
        renew = self.lease.seconds / 3
        if not self.lease.held:
            return renew
        now_ms = int(self._clock() * 1000)
        next_tick = min(schedule.next_tick(now_ms) for schedule in self.schedules)
        return max(0.0, min(renew, (next_tick - now_ms) / 1000))

    async def enqueue_due(self) -> None:
        for schedule in self.schedules:
            await self._enqueue(schedule)

    async def _enqueue(self, schedule: Schedule) -> None:
        key = last_key(schedule.name)
        raw = await self.store.get(key)
        now = self._clock()
        now_ms = int(now * 1000)
        last = read_last(raw)
        if last is None:  # a new schedule (or an unreadable record): its first run is its next tick
            await self.store.put_if(key, last_value(now_ms, sent=False), LAST_TTL, current=raw)
            return
        done = last[0]
        ticks = schedule.due(done, now_ms)
        if not ticks:
            return
        if schedule.missed(done, now_ms):
            skipped = "all but the latest" if schedule.catch_up == "skip" else "the oldest"
            log.warning("schedule %s missed ticks since %s; enqueueing %d, %s dropped",
                        schedule.name, iso(done), len(ticks), skipped)
        await self.app.client.send_async([tick_envelope(self.app, schedule, t, now) for t in ticks])
        if not await self.store.put_if(key, last_value(ticks[-1], sent=True), LAST_TTL, current=raw):
            # Another leader moved it (ours lapsed meanwhile): our copies are deduplicated.
            log.warning("schedule %s: another worker recorded its ticks meanwhile", schedule.name)
            self.lease.held = False

    async def _release(self) -> None:
        try:
            await self.lease.release()
        except Exception as exc:
            log.warning("could not give back the schedules' lease (%s: %s)", type(exc).__name__, exc)

