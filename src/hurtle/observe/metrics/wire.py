"""What a worker process reports to its supervisor, and how it is framed on the pipe.

A frame is a 4-byte big-endian length, then a msgpack ``Report``. A report holds
increments (the task figures counted since the last report) and the latest
gauges (slots, memory, and queue counts from the process that samples them),
so the supervisor adds the one and replaces the other. Frames are read whole or
not at all: a process that dies mid-frame leaves a tail that is dropped
(``FrameReader.finish``), never half-added.
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec

from hurtle.observe.task_figures import BOUNDS, OUTCOMES

log = logging.getLogger("hurtle.metrics")

HEADER = 4  # bytes of a frame's length prefix
#: A length past this is a stream out of step (a bug, or something else writing to
#: the pipe): nothing read from it after that can be trusted.
MAX_FRAME = 16 * 1024 * 1024

Count = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
Outcomes = Annotated[list[Count], msgspec.Meta(min_length=len(OUTCOMES), max_length=len(OUTCOMES))]
Buckets = Annotated[list[Count], msgspec.Meta(min_length=len(BOUNDS) + 1, max_length=len(BOUNDS) + 1)]


class TaskCounts(msgspec.Struct, array_like=True, frozen=True):
    """One task's figures from one queue since the last report (``MinuteFigures``, minutes added up)."""

    task: str
    queue: str
    outcomes: Outcomes
    run: Buckets
    wait: Buckets
    run_seconds: Seconds
    wait_seconds: Seconds


class QueueCounts(msgspec.Struct, array_like=True, frozen=True):
    """A queue's ``QueueStats``; None where the broker cannot know the figure."""

    queue: str
    ready: Count
    delayed: Count
    in_flight: Count | None
    dead: Count
    oldest_age: Seconds | None


class Report(msgspec.Struct, array_like=True, frozen=True):
    """One frame's worth: increments to add, gauges that replace the last ones."""

    slot: Count
    tasks: list[TaskCounts]
    busy_async: Count
    async_slots: Count
    busy_sync: Count
    sync_slots: Count
    rss_bytes: Count
    #: The queues as the sampling process last read them; None: this report says
    #: nothing about queues (another process samples them, or no new sample yet).
    queues: list[QueueCounts] | None = None


_encoder = msgspec.msgpack.Encoder()  # built once: a process encodes a report a second
_decoder = msgspec.msgpack.Decoder(Report)


def encode_frame(report: Report) -> bytes:
    """``report`` with its length prefix, ready to write."""
    body = _encoder.encode(report)
    return len(body).to_bytes(HEADER, "big") + body


class FrameReader:
    """The supervisor's end of one pipe: bytes in as they come, whole reports out."""

    __slots__ = ("_buffer", "broken", "name")

    def __init__(self, name: str) -> None:
        self.name = name  # for the log: which process's pipe
        self._buffer = bytearray()
        self.broken = False  # out of step: what comes after is ignored

    def feed(self, data: bytes) -> list[Report]:
        """Add ``data``; return every report it completes, in order. A frame that
        does not decode is logged and skipped: its length still says where the next begins."""
        if self.broken:
            return []
        buffer = self._buffer
        buffer += data
        reports: list[Report] = []
        start = 0
        while len(buffer) - start >= HEADER:
            size = int.from_bytes(buffer[start:start + HEADER], "big")
            if size > MAX_FRAME:
                log.error("metrics from %s: a frame of %d bytes, out of step; ignoring the rest",
                          self.name, size)
                self.broken = True
                buffer.clear()
                return reports
            end = start + HEADER + size
            if len(buffer) < end:
                break
            try:
                reports.append(_decoder.decode(buffer[start + HEADER:end]))
            except msgspec.DecodeError as exc:
                log.error("metrics from %s: a report that does not decode (%s); skipped", self.name, exc)
            start = end
        del buffer[:start]
        return reports

    def finish(self) -> int:
        """The writer is gone: drop a frame it did not finish; return how many bytes were dropped."""
        left = len(self._buffer)
        self._buffer.clear()
        return left
