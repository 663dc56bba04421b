"""A worker process's side of the registry: its record, written every few seconds.

The heartbeat runs beside the consumer and never in its way: a write that fails
(the store unreachable, a full disk) is logged, at most once per
``trouble.WARN_EVERY`` seconds, and the tasks run on. The record is rebuilt at each
beat from what the consumer holds (``Consumer.running_tasks``), and deleted
when the process stops cleanly.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import socket
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from hurtle.observe.registry import KEY_PREFIX, WorkerRecord, encode_record, record_ttl
from hurtle.observe.trouble import Trouble
from hurtle.records import RecordStore

if TYPE_CHECKING:
    from hurtle.worker.consumer import Consumer

log = logging.getLogger("hurtle.registry")

LEAVE_LIMIT = 5.0  # seconds a clean stop spends deleting its record, at most


@functools.cache
def hurtle_version() -> str:
    try:
        return version("hurtle")
    except PackageNotFoundError:  # run from a source tree never installed
        return "unknown"


def rss_bytes() -> int:
    """This process's resident memory now (Linux); elsewhere its peak, which
    ``getrusage`` gives in KiB on Linux and bytes on macOS."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # POSIX only: not imported where /proc serves

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


class Heartbeat:
    """Writes one process's ``WorkerRecord`` every ``every`` seconds until stopped."""

    def __init__(
        self, store: RecordStore, consumer: Consumer, every: float, supervisor_pid: int | None
    ) -> None:
        self.store = store
        self.consumer = consumer
        self.every = every
        self.ttl = record_ttl(every)
        self.supervisor_pid = supervisor_pid
        self.host = socket.gethostname()
        self.pid = os.getpid()
        # The token tells apart two processes of one pid on hosts of one name
        # (containers that share a hostname, a pid reused after a restart).
        self.key = f"{KEY_PREFIX}{self.host}:{self.pid}:{secrets.token_hex(4)}"
        self.started_at = time.time()
        self._trouble = Trouble(log)

    def record(self) -> WorkerRecord:
        consumer = self.consumer
        return WorkerRecord(
            host=self.host, pid=self.pid, supervisor_pid=self.supervisor_pid, queues=list(consumer.queues),
            concurrency=consumer.async_slots.capacity, threads=consumer.thread_slots.capacity,
            busy_async=consumer.async_slots.busy, busy_threads=consumer.thread_slots.busy,
            rss_bytes=rss_bytes(), started_at=self.started_at, beat_at=time.time(),
            hurtle_version=hurtle_version(), running=consumer.running_tasks(),
        )

    async def beat(self) -> None:
        """Write the record once; a failure is logged (rate-limited), never raised."""
        try:
            await self.store.put(self.key, encode_record(self.record()), self.ttl)
        except Exception as exc:
            self._trouble.failed("write this worker's registry record", exc, "; tasks run on")
            return
        self._trouble.ok("the worker registry record is written again")

    async def keep_beating(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.every)

    async def leave(self) -> None:
        """Delete the record: a clean stop leaves the registry at once."""
        try:
            await asyncio.wait_for(self.store.delete([self.key]), LEAVE_LIMIT)
        except Exception as exc:
            log.warning("could not delete this worker's registry record (%s: %s); it expires in %gs",
                        type(exc).__name__, exc, self.ttl)
