"""The supervisor's one set of totals: every report added, read by scrapes.

Counters and histograms only ever grow: a report's task figures are added
(``add``). Gauges are replaced: each process slot's last slots and memory, and
the queues as last sampled. A slot's gauges go when its process ends
(``forget_slot``), so a stopped process shows no busy slot; its replacement, in
the same slot, reports within a second. Reports arrive on the supervisor's loop
and scrapes on the HTTP server's threads: a lock keeps them apart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from hurtle.observe.metrics.wire import QueueCounts, Report
from hurtle.observe.task_figures import MinuteFigures


@dataclass(frozen=True, slots=True)
class SlotGauges:
    """One process slot's gauges, as it last reported them."""

    busy_async: int
    async_slots: int
    busy_sync: int
    sync_slots: int
    rss_bytes: int


@dataclass(frozen=True)
class Snapshot:
    """The totals at one moment, copied: a scrape reads them without the lock."""

    tasks: dict[tuple[str, str], MinuteFigures]
    slots: dict[int, SlotGauges]
    queues: list[QueueCounts]
    processes: int


class Totals:
    """What ``/metrics`` shows, added to from every process's reports."""

    def __init__(self) -> None:
        self.tasks: dict[tuple[str, str], MinuteFigures] = {}
        self.slots: dict[int, SlotGauges] = {}
        self.queues: list[QueueCounts] = []
        self.processes = 0
        self._lock = threading.Lock()

    def add(self, report: Report) -> None:
        """Add ``report``'s increments; its gauges replace its slot's (and the queues', if sampled)."""
        with self._lock:
            for counts in report.tasks:
                key = (counts.task, counts.queue)
                mine = self.tasks.get(key)
                if mine is None:
                    mine = self.tasks[key] = MinuteFigures()
                mine.add(MinuteFigures(list(counts.outcomes), list(counts.run), list(counts.wait),
                                       counts.run_seconds, counts.wait_seconds))
            self.slots[report.slot] = SlotGauges(
                report.busy_async, report.async_slots, report.busy_sync, report.sync_slots, report.rss_bytes
            )
            if report.queues is not None:
                self.queues = list(report.queues)

    def forget_slot(self, slot: int) -> None:
        """The process in ``slot`` has ended: its gauges no longer stand for anything running."""
        with self._lock:
            self.slots.pop(slot, None)

    def set_processes(self, count: int) -> None:
        with self._lock:
            self.processes = count

    def snapshot(self) -> Snapshot:
        with self._lock:
            tasks = {key: MinuteFigures(list(f.outcomes), list(f.run), list(f.wait), f.run_seconds,
                                        f.wait_seconds) for key, f in self.tasks.items()}
            return Snapshot(tasks, dict(self.slots), list(self.queues), self.processes)
