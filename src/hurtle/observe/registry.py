"""The worker registry: one record per living worker process, in the broker's store.

Every worker process writes a ``WorkerRecord`` every ``HEARTBEAT_EVERY`` seconds
to the app's record store (``hurtle.record_source``), each write living
``MISSED_BEATS`` intervals. A process that stops writing (killed, frozen, cut
off from the broker) so disappears within ``MISSED_BEATS * HEARTBEAT_EVERY``
seconds of its last beat, and one that stops cleanly deletes its record at once.
``hurtle status`` reads every record under ``KEY_PREFIX``.

A record says what the process is and does, never how it reaches the broker:
no URL, no option that could hold a password.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hurtle.records import RecordStore

HEARTBEAT_EVERY = 5.0  # seconds between a worker process's registry records
MISSED_BEATS = 3  # a record lives this many intervals: a worker missing 3 beats is gone
KEY_PREFIX = "worker:"  # every record's key: worker:<host>:<pid>:<token>
RECORD_VERSION = 1  # raised when a field changes meaning; added fields keep it


def record_ttl(every: float) -> float:
    """How long each record lives, heartbeats ``every`` seconds apart."""
    return every * MISSED_BEATS


class RunningTask(msgspec.Struct, frozen=True, kw_only=True):
    """A task a worker process was running at its last heartbeat."""

    id: str
    name: str
    kind: str  # "async" (on the event loop) or "sync" (on a thread)
    #: Seconds it had run at the heartbeat; None when it was about to start.
    elapsed: float | None


class WorkerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One worker process, as it described itself at its last heartbeat.

    Readers ignore fields they do not know, so a newer worker's record still reads."""

    version: int = RECORD_VERSION
    host: str
    pid: int
    supervisor_pid: int | None  # the ``hurtle worker`` supervisor that forked it
    queues: list[str]
    concurrency: int  # async slots
    threads: int  # sync slots
    busy_async: int
    busy_threads: int
    rss_bytes: int
    started_at: float  # unix seconds, the worker's clock
    beat_at: float  # unix seconds, the worker's clock: when this record was written
    hurtle_version: str
    running: list[RunningTask]

    @property
    def uptime(self) -> float:
        """Seconds the process had run at its last heartbeat (one clock: no skew)."""
        return max(0.0, self.beat_at - self.started_at)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WorkerRecord)


def encode_record(record: WorkerRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes) -> WorkerRecord | None:
    """The record, or None for bytes that are not one (another program's, or an
    incompatible version's): one bad record must not hide the others."""
    try:
        record = _decoder.decode(data)
    except msgspec.DecodeError:
        return None
    return record if record.version == RECORD_VERSION else None


async def read_workers(store: RecordStore) -> list[WorkerRecord]:
    """Every living worker process's record, by host then pid."""
    found = [decode_record(value) for value in (await store.get_all(KEY_PREFIX)).values()]
    return sorted((r for r in found if r is not None), key=lambda r: (r.host, r.pid))


def workers_json(workers: list[WorkerRecord]) -> list[dict[str, Any]]:
    """Every figure of each record, as ``hurtle status --json`` and the dashboard give them."""
    return [
        {
            "host": w.host, "pid": w.pid, "supervisor_pid": w.supervisor_pid, "queues": w.queues,
            "concurrency": w.concurrency, "threads": w.threads,
            "busy_async": w.busy_async, "busy_threads": w.busy_threads, "rss_bytes": w.rss_bytes,
            "started_at": w.started_at, "beat_at": w.beat_at, "uptime": w.uptime,
            "hurtle_version": w.hurtle_version,
            "running": [
                {"id": t.id, "name": t.name, "kind": t.kind, "elapsed": t.elapsed} for t in w.running
            ],
        }
        for w in workers
    ]
