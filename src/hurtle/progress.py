"""Progress: ``current_task().progress(done, total, note=...)`` in a task,
``Handle.progress()`` and ``hurtle status task`` outside it.

Each report replaces the task's record ``progress:<task id>`` in the app's
record store, kept as long as a result (``result_ttl``). A task never waits for
the write: a report is left with its process's ``ProgressWriter`` (from any
thread: a sync task's pool thread hands it to the event loop), which writes
every task's latest report at most every ``WRITE_EVERY`` seconds, so a task
that reports in a tight loop costs the store a few writes a second, not one
per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable

import msgspec

from hurtle.records import RecordStore

PREFIX = "progress:"
WRITE_EVERY = 0.25  # seconds: the most often one task's progress is written

log = logging.getLogger("hurtle.worker")


class Progress(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """A task's last progress report: ``done`` of ``total`` (None: not known),
    a short ``note``, and when it was reported (unix seconds)."""

    done: float
    total: float | None = None
    note: str = ""
    at: float = 0.0

    @property
    def fraction(self) -> float | None:
        """``done / total`` between 0 and 1; None without a total."""
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Progress)


def make_progress(done: float, total: float | None, note: str) -> Progress:
    """A checked report: numbers that are finite, a note that is text."""
    for name, value in (("done", done), ("total", total)):
        if value is None and name == "total":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"progress: {name} must be a finite number, not {value!r}")
    if not isinstance(note, str):
        raise TypeError(f"progress: note must be a str, not {note!r}")
    return Progress(done=done, total=total, note=note[:1000], at=time.time())


def decode_progress(value: bytes | None) -> Progress | None:
    """A stored report; None for none, or for bytes that are not one."""
    if value is None:
        return None
    try:
        return _decoder.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


async def read_progress(store: RecordStore, task_id: str) -> Progress | None:
    return decode_progress(await store.get(PREFIX + task_id))


class ProgressWriter:
    """One worker process's progress writes: the latest report per task, written
    in rounds at most every ``WRITE_EVERY`` seconds by ``run``."""

    def __init__(self, store: Callable[[], RecordStore | None], ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._loop = asyncio.get_running_loop()
        self._pending: dict[str, bytes] = {}
        self._lock = threading.Lock()  # reports come from pool threads too
        self._wanted = asyncio.Event()
        self._warned = False

    def report(self, task_id: str, progress: Progress) -> None:
        """Keep ``progress`` for the next round; never blocks (any thread)."""
        value = _encoder.encode(progress)
        with self._lock:
            first = not self._pending
            self._pending[task_id] = value
        if first:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                self._wanted.set()
            else:
                with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is gone
                    self._loop.call_soon_threadsafe(self._wanted.set)

    async def run(self) -> None:
        """Write rounds while reports come; sleeps while none do."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                batch, self._pending = self._pending, {}
            await self._write(batch)
            await asyncio.sleep(WRITE_EVERY)

    async def _write(self, batch: dict[str, bytes]) -> None:
        store = self._store()
        if store is None:
            if not self._warned:
                self._warned = True
                log.warning("progress reports are not stored: no store of this app keeps records"
                            " (give it a result store that does, e.g. results='redis://...')")
            return
        for task_id, value in batch.items():
            try:
                await store.put(PREFIX + task_id, value, self._ttl)
            except Exception as exc:  # progress is advisory: the task goes on
                log.warning("could not store the progress of task %s (%s: %s)",
                            task_id, type(exc).__name__, exc)


_writer: ProgressWriter | None = None


def set_writer(writer: ProgressWriter | None) -> None:
    """Where this process's tasks report (set by the worker while it runs)."""
    global _writer
    _writer = writer


def report(task_id: str, progress: Progress) -> None:
    """Hand a report to this process's writer; outside a worker it goes nowhere."""
    writer = _writer
    if writer is not None:
        writer.report(task_id, progress)
