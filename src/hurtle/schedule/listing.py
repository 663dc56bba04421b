"""What ``hurtle schedule list`` shows: each schedule's last and next run, and the leader."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hurtle.app import App
from hurtle.records import RecordStore
from hurtle.schedule.lease import leader_key, leader_name
from hurtle.schedule.scheduler import last_key, read_last
from hurtle.schedule.timing import Schedule, zone


@dataclass(frozen=True)
class ScheduleRow:
    schedule: Schedule
    last_run_ms: int | None  # the last tick sent; None before the first
    next_run_ms: int

    def as_json(self) -> dict[str, Any]:
        s = self.schedule
        return {
            "name": s.name, "task": s.task, "cron": s.cron, "every": s.every, "tz": s.tz,
            "catch_up": s.catch_up, "args": list(s.args), "kwargs": s.kwargs,
            "last_run": None if self.last_run_ms is None else local_time(s, self.last_run_ms),
            "next_run": local_time(s, self.next_run_ms),
        }


@dataclass(frozen=True)
class Listing:
    rows: list[ScheduleRow]
    #: ``host:pid`` of the worker that holds the lease; None when none does.
    leader: str | None
    #: False when no store of the app keeps records: no run was recorded, no leader elected.
    kept: bool


async def read_listing(app: App, store: RecordStore | None, now: float | None = None) -> Listing:
    """Every schedule of ``app`` with what ``store`` recorded (two reads per schedule, one more)."""
    now_ms = int((time.time() if now is None else now) * 1000)
    rows = []
    for name, schedule in sorted(app.schedules.items()):
        last = None if store is None else read_last(await store.get(last_key(name)))
        sent = last[0] if last is not None and last[1] else None
        rows.append(ScheduleRow(schedule, sent, schedule.next_tick(now_ms)))
    leader = None if store is None else leader_name(await store.get(leader_key(app.schedules)))
    return Listing(rows, leader, store is not None)


def local_time(schedule: Schedule, tick_ms: int) -> str:
    """A tick in the schedule's time zone, ISO 8601 to the second (UTC for ``every=``)."""
    return datetime.fromtimestamp(tick_ms / 1000, zone(schedule.tz)).isoformat(timespec="seconds")
