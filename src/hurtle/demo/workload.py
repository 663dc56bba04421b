"""What a demo run sends: how many of each task, with which arguments, in which batches.

Every count follows from ``Plan(total)``, so the summary can say what was
expected and the test can check it without magic numbers. Arguments come from a
seeded random generator: two runs of the same size send the same work.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hurtle.demo import tasks
from hurtle.task import Task

MIN_TASKS = 20  # below this the mix has no room for its rarer kinds
ROUND_SIZE = 300  # tasks per round of batches: each round sends one batch of every kind
SEED = 20240601
UNKNOWN_NAME = tasks.UNKNOWN_TASK.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Kind:
    """One kind of task in the mix and what should become of it."""

    name: str  # the task's function name (its registered name is tasks.<name>)
    label: str  # how it runs, for the tables
    count: int
    succeeds: bool  # False: it is meant to end as a dead letter
    retries_each: int  # retries each of its tasks takes, by design
    ran: bool = True  # False: the worker never runs it (dead-lettered before running)
    why: str = ""  # why it is dead-lettered, for the dead-letter table


@dataclass(frozen=True)
class Plan:
    """The mix for ``total`` tasks: mostly CPU and I/O work, a tenth flaky, a few doomed."""

    total: int

    def __post_init__(self) -> None:
        if self.total < MIN_TASKS:
            raise ValueError(f"the demo needs at least {MIN_TASKS} tasks, not {self.total}")

    @property
    def kinds(self) -> list[Kind]:
        declined = max(1, self.total // 600)
        unknown = max(1, self.total // 1500)
        flaky = self.total // 10
        rest = self.total - declined - unknown - flaky
        io = rest // 2
        attempts = tasks.CHARGE_RETRIES + 1
        return [
            Kind("hash_password", "sync CPU", rest - io, succeeds=True, retries_each=0),
            Kind("fetch_profile", "async I/O", io, succeeds=True, retries_each=0),
            Kind("sync_crm", "flaky", flaky, succeeds=True, retries_each=1),
            Kind(
                "charge_card", "fails", declined, succeeds=False,
                retries_each=tasks.CHARGE_RETRIES,
                why=f"raises on every attempt: dead-lettered after {attempts} attempts",
            ),
            Kind(
                UNKNOWN_NAME, "unknown", unknown, succeeds=False, retries_each=0, ran=False,
                why="sent by name (newer code?); no worker knows it, so it never ran",
            ),
        ]

    @property
    def expected_retries(self) -> int:
        return sum(k.count * k.retries_each for k in self.kinds)

    @property
    def expected_dead(self) -> int:
        return sum(k.count for k in self.kinds if not k.succeeds)

    @property
    def expected_succeeded(self) -> int:
        return sum(k.count for k in self.kinds if k.succeeds)


@dataclass
class Sent:
    """What was sent: task ids by kind, and when each id's batch was sent."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)  # task id -> unix seconds
    batches: int = 0  # round trips to the broker
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.ids.values())


def calls(plan: Plan, scratch: str) -> dict[str, list[tuple[Any, ...]]]:
    """The arguments of every task, by kind; user ids are unique across the run."""
    rng = random.Random(SEED)
    made: dict[str, list[tuple[Any, ...]]] = {}
    user_id = 0
    for kind in plan.kinds:
        made[kind.name] = []
        for _ in range(kind.count):
            user_id += 1
            made[kind.name].append(_arguments(kind.name, user_id, rng, scratch))
    return made


def _arguments(name: str, user_id: int, rng: random.Random, scratch: str) -> tuple[Any, ...]:
    if name == "hash_password":
        return (user_id, rng.randrange(3_000, 7_000))  # PBKDF2 rounds: about 2 to 5 ms of CPU
    if name == "fetch_profile":
        return (user_id, round(rng.triangular(5, 60, 12)))  # milliseconds; a long tail
    if name == "sync_crm":
        return (user_id, scratch)
    return (user_id,)


def send(plan: Plan, scratch: str) -> Sent:
    """Send the whole plan in rounds, each one ``send_many`` batch per kind, so the
    queue holds a mix from front to back rather than one kind after another."""
    by_kind = calls(plan, scratch)
    rounds = max(1, math.ceil(plan.total / ROUND_SIZE))
    sent = Sent(ids={name: [] for name in by_kind})
    started = time.perf_counter()
    for index in range(rounds):
        for name, all_calls in by_kind.items():
            chunk = _chunk(all_calls, index, rounds)
            if chunk:
                _send_batch(name, chunk, sent)
    sent.seconds = time.perf_counter() - started
    return sent


def _chunk(items: Sequence[tuple[Any, ...]], index: int, rounds: int) -> Sequence[tuple[Any, ...]]:
    """The ``index``-th of ``rounds`` near-equal slices of ``items``."""
    start = len(items) * index // rounds
    return items[start : len(items) * (index + 1) // rounds]


def _send_batch(name: str, chunk: Sequence[tuple[Any, ...]], sent: Sent) -> None:
    at = time.time()
    if name == UNKNOWN_NAME:
        # A producer sending by name needs no import of the task's code: here,
        # code this worker does not have. One message at a time: there are few.
        ids = [tasks.app.send_task(tasks.UNKNOWN_TASK, *args).id for args in chunk]
    else:
        task: Task[Any, Any] = tasks.app.tasks[f"{tasks.__name__}.{name}"]
        ids = [handle.id for handle in task.send_many(chunk)]
    sent.batches += 1 if name != UNKNOWN_NAME else len(chunk)
    sent.ids[name].extend(ids)
    sent.sent_at.update(dict.fromkeys(ids, at))
