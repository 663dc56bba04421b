"""One task by its id: state, attempts, worker, times and outcome (``hurtle status
task TASK_ID`` and the dashboard's task page read it here).

The state is ``Handle.status()``'s (``hurtle.task_status``), and the result record
it read gives the attempts, the worker, the times and the value or error. While
the task runs, the worker registry says which process runs it; once it failed
for good, its dead letter says why. On a broker that cannot look into its queues
by task id (RabbitMQ) a task nobody has finished reads ``unknown``, as it is.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from hurtle.brokers import DeadLetter
from hurtle.client import Connection
from hurtle.envelope import Result, decode
from hurtle.observe.registry import RunningTask, WorkerRecord
from hurtle.progress import Progress, read_progress
from hurtle.records import RecordStore
from hurtle.schedule.cancel import cancel_requested
from hurtle.task_status import TaskLook, TaskStatus, look_at_task
from hurtle.workflows.tree import FlowPart, read_tree

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
    #: The workflow whose id this is, its parts' states (``hurtle.workflows.tree``).
    flow: FlowPart | None = None

    @property
    def state(self) -> TaskStatus:
        """``Handle.status()``'s answer, except that a task a worker lists as running
        is ``running`` where the broker cannot say so (RabbitMQ), and a workflow not
        finished has the state its parts give it."""
        if self.look.status == "unknown" and self.running is not None:
            return "running"
        if self.look.status == "unknown" and self.flow is not None:
            return self.flow.state
        return self.look.status

    @property
    def known(self) -> bool:
        """Something was found: a state, a dead letter, a progress report, a cancel
        mark or a workflow."""
        return (
            self.state != "unknown" or self.dead is not None or self.progress is not None
            or self.cancel_requested or self.flow is not None
        )


#: Reads the worker registry: every living worker, or None where no store keeps them.
RegistryReader = Callable[[], Awaitable["list[WorkerRecord] | None"]]


async def read_report(
    connection: Connection, read_registry: RegistryReader, task_id: str, queues: Sequence[str] | None = None
) -> TaskReport:
    """One look at the task, then the registry while it may run and the dead
    letters once it may have failed: no more reads than its state needs.
    ``queues`` narrows the look into the broker's queues (None: every queue; []: none)."""
    look = await look_at_task(connection.broker, connection.results, task_id, queues)
    workers = await read_registry() if look.status in ("running", "unknown") else []
    dead = await _dead(connection, task_id) if look.status in ("failed", "unknown") else None
    records = connection.records
    progress = None if records is None else await read_progress(records, task_id)
    unsettled = look.status in ("queued", "running", "unknown")
    cancelling = records is not None and unsettled and await cancel_requested(records, task_id)
    return TaskReport(
        id=task_id, look=look, running=_running(workers or [], task_id), dead=dead,
        registry_visible=workers is not None, locates_messages=connection.broker.locates_messages,
        keeps_results=connection.results is not None, progress=progress, cancel_requested=cancelling,
        flow=await _flow(connection, records, task_id),
    )


async def _flow(connection: Connection, records: RecordStore | None, task_id: str) -> FlowPart | None:
    """The workflow of id ``task_id``, if one was sent (its tree is in the record store)."""
    if records is None:
        return None
    return await read_tree(connection.broker, connection.results, records, task_id)


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


def seconds_or_none(value: float) -> float | None:
    """A time from a record, None where it holds none (0) or no number (NaN)."""
    return None if value == 0 or math.isnan(value) else value


def report_json(report: TaskReport) -> dict[str, Any]:
    """Every figure, whole: times in unix seconds, durations in seconds, null where not known."""
    result, running, dead = report.look.result, report.running, report.dead
    return {
        "id": report.id,
        "state": report.state,
        "attempts": attempts_of(report),
        "worker": worker_of(report),
        **times_of(result),
        "value": result.value if result is not None and result.status == "succeeded" else None,
        "error": result.error if result is not None and result.status == "failed" else None,
        "traceback": result.traceback if result is not None and result.status == "failed" else None,
        "running": None if running is None else {
            "worker": running.name, "elapsed": running.task.elapsed, "beat_at": running.worker.beat_at,
        },
        "progress": None if report.progress is None else msgspec.to_builtins(report.progress),
        "cancel_requested": report.cancel_requested,
        "workflow": None if report.flow is None else report.flow.as_json(),
        "dead_letter": None if dead is None else {
            "id": dead.letter.id, "queue": dead.letter.queue, "reason": dead.letter.reason,
            "failed_at": seconds_or_none(dead.letter.failed_at),
            "attempts": None if dead.attempt is None else dead.attempt + 1,
        },
    }


def times_of(result: Result | None) -> dict[str, float | None]:
    """Ready, started and finished (unix seconds), queue wait and run time (seconds)."""
    if result is None:
        return dict.fromkeys(("ready_at", "started_at", "finished_at", "queue_wait", "run_time"))
    ready, started, finished = map(seconds_or_none, (result.ready_at, result.started_at, result.finished_at))
    return {
        "ready_at": ready, "started_at": started, "finished_at": finished,
        "queue_wait": None if ready is None or started is None else max(0.0, started - ready),
        "run_time": None if started is None or finished is None else max(0.0, finished - started),
    }


def attempts_of(report: TaskReport) -> int | None:
    """Attempts made: the result record's, else the dead letter's; None while not known."""
    result, dead = report.look.result, report.dead
    if result is not None:
        return result.attempt + 1
    if dead is not None and dead.attempt is not None:
        return dead.attempt + 1
    return None


def worker_of(report: TaskReport) -> str | None:
    """The process that ran the last attempt, or runs the task now."""
    if report.running is not None:
        return report.running.name
    result = report.look.result
    return result.worker if result is not None and result.worker else None
