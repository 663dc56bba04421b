"""What a worker process is told: its settings (``WorkerConfig``, from ``hurtle worker``'s
options) and the exit codes it answers with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hurtle.observe.registry import HEARTBEAT_EVERY
from hurtle.worker.thread_tuner import AUTO_MAX

if TYPE_CHECKING:
    from hurtle.profiling.profiler import ProfileConfig

EXIT_OK = 0
EXIT_RECYCLE = 75  # EX_TEMPFAIL: "replace me" (max tasks reached, or a thread stuck past its limit)
EXIT_BROKER_LOST = 69  # EX_UNAVAILABLE: the broker was unreachable for longer than max_disconnect


@dataclass
class WorkerConfig:
    queues: Sequence[str] = ("default",)
    #: One positive weight per queue (``-q high:5,low:1``): fetches shared in proportion.
    weights: Sequence[int] | None = None
    #: ``--strict``: always the first queue with a ready message first (no weights).
    strict: bool = False
    concurrency: int = 100  # async tasks at once, per process
    threads: int = 8  # sync tasks at once, per process (with ``auto_threads``: to start with)
    #: ``-t auto``: the pool grows and shrinks with measured throughput (``thread_tuner.py``),
    #: between 2 and ``max_threads`` threads.
    auto_threads: bool = False
    max_threads: int = AUTO_MAX
    #: ``--loop``: the event loop, ``auto`` (by the tasks it runs: ``loops.worker_loop``),
    #: ``asyncio`` or ``uvloop``.
    loop: str = "auto"
    #: ``--cpu-pin``: ``auto``, ``on`` or ``off``: each process on a CPU of its own (``cpu_pin.py``).
    cpu_pin: str = "auto"
    burst: bool = False
    #: With ``burst``: stop after this many seconds even if tasks are left (delayed
    #: ones included: a burst run waits for them), so a CI run cannot hang on them.
    burst_timeout: float | None = None
    max_tasks_per_child: int | None = None
    grace: float = 30.0
    fetch_timeout: float = 1.0  # seconds a fetch blocks when queues are empty
    max_disconnect: float = 60.0  # seconds without the broker before the worker exits non-zero
    #: Finished tasks whose results and acks wait to be written, past which the
    #: process fetches nothing more (None: 4 per slot, at least 256).
    max_unsettled: int | None = None
    #: What to profile (``--profile``); tasks declared with ``profile=True`` are profiled anyway.
    profile: ProfileConfig | None = None
    #: Seconds between this process's worker registry records (``--registry-interval``;
    #: each lives 3 intervals, ``hurtle.observe.registry``); 0 writes none.
    registry_interval: float = HEARTBEAT_EVERY
    #: Seconds the scheduler's lease lasts unless renewed (``--schedule-lease``): a
    #: worker that dies holding it delays the schedules at most this long
    #: (``hurtle.schedule``); 0 runs no scheduler in this worker.
    schedule_lease: float = 15.0
    #: The pipe this process reports its figures on, to the supervisor's ``/metrics``
    #: (``--metrics-port``; set per process by the supervisor before its fork). None: no metrics.
    metrics_fd: int | None = None
