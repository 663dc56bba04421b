"""``hurtle status task TASK_ID``: one task's state, attempts, worker, times and outcome.

The state is ``Handle.status()``'s (``hurtle.task_status``), and the result record
it read gives the attempts, the worker, the times and the value or error. While
the task runs, the worker registry says which process runs it; once it failed
for good, its dead letter says why. On a broker that cannot look into its queues
by task id (RabbitMQ) a task nobody has finished reads ``unknown``, as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hurtle.brokers import DeadLetter
from hurtle.cli.common import Where
from hurtle.cli.status_workers import read_registry
from hurtle.client import Connection
from hurtle.envelope import decode
from hurtle.observe.registry import RunningTask, WorkerRecord
from hurtle.progress import Progress, read_progress
from hurtle.schedule.cancel import cancel_requested
from hurtle.task_status import TaskLook, TaskStatus, look_at_task

#: Dead letters read, newest first, to find a failed task's: its reason and attempt.
#: An older one is not looked for (a listing reads each one's whole body).
DEAD_LETTERS_READ = 1000


@dataclass(frozen=True)
class Running:
    """A worker process that listed the task as running at its last heartbeat."""

    worker: WorkerRecord
    task: RunningTask

    @property
    def name(self) -> str:
        return f"{self.worker.host}:{self.worker.pid}"


@dataclass(frozen=True)
class Dead:
    """The task's newest dead letter, and the attempt its body was at (None: undecodable)."""

    letter: DeadLetter
    attempt: int | None


@dataclass(frozen=True)
class TaskReport:
    """Everything ``hurtle status task`` found about one task id."""

    id: str
    look: TaskLook
    #: None: not looked for (the state rules it out) or no worker listed it.
    running: Running | None
    dead: Dead | None
    #: False where no store of the app keeps a worker registry.
    registry_visible: bool
    locates_messages: bool
    keeps_results: bool
    #: Its last ``current_task().progress(...)`` report (None: none, or no store keeps records).
    progress: Progress | None = None
    #: A cancel was asked for and no worker has recorded it yet.
    cancel_requested: bool = False

    @property
    def state(self) -> TaskStatus:
        """``Handle.status()``'s answer, except that a task a worker lists as running
        is ``running`` where the broker cannot say so (RabbitMQ)."""
        if self.look.status == "unknown" and self.running is not None:
            return "running"
        return self.look.status

    @property
    def known(self) -> bool:
        """Something was found: a state, a dead letter, a progress report or a cancel mark."""
        return (
            self.state != "unknown" or self.dead is not None or self.progress is not None
            or self.cancel_requested
        )


async def read_report(connection: Connection, where: Where, task_id: str) -> TaskReport:
    """One look at the task, then the registry while it may run and the dead
    letters once it may have failed: no more reads than its state needs."""
    look = await look_at_task(connection.broker, connection.results, task_id)
    workers = await read_registry(where) if look.status in ("running", "unknown") else []
    dead = await _dead(connection, task_id) if look.status in ("failed", "unknown") else None
    records = connection.records
    progress = None if records is None else await read_progress(records, task_id)
    unsettled = look.status in ("queued", "running", "unknown")
    cancelling = records is not None and unsettled and await cancel_requested(records, task_id)
    return TaskReport(
        id=task_id, look=look, running=_running(workers or [], task_id), dead=dead,
        registry_visible=workers is not None, locates_messages=connection.broker.locates_messages,
        keeps_results=connection.results is not None, progress=progress, cancel_requested=cancelling,
    )


def _running(workers: Sequence[WorkerRecord], task_id: str) -> Running | None:
    """The worker that lists the task, the most recent heartbeat first (a task
    redelivered after its worker vanished can be listed twice for a while)."""
    for worker in sorted(workers, key=lambda w: -w.beat_at):
        for task in worker.running:
            if task.id == task_id:
                return Running(worker, task)
    return None


async def _dead(connection: Connection, task_id: str) -> Dead | None:
    for letter in await connection.broker.dead_letters(None, DEAD_LETTERS_READ):
        if letter.message_id == task_id:
            return Dead(letter, _attempt(letter.body))
    return None


def _attempt(body: bytes) -> int | None:
    """The attempt a dead letter's message was at: a body that does not decode has none."""
    try:
        return decode(body).attempt
    except Exception:
        return None


def unknown_line(report: TaskReport, where: Where) -> str:
    """Why nothing is known of the task, in one line."""
    scheme = where.broker_url.scheme
    if not report.locates_messages:
        stores = "no result is stored for it" if report.keeps_results else "the app keeps no results"
        return (
            f"task {report.id}: unknown until it finishes ({scheme} cannot find a message by task id;"
            f" {stores}, no worker lists it, no dead letter holds it)"
        )
    if not report.keeps_results:
        return f"no task {report.id} waits or runs on {where.broker_url} (the app keeps no results)"
    return (
        f"no task {report.id} on {where.broker_url}: not queued, not running, no result stored"
        " (never sent, or its result has expired)"
    )


def seconds_or_none(value: float) -> float | None:
    """A time from a record, None where it holds none (0) or no number (NaN)."""
    return None if value == 0 or math.isnan(value) else value
