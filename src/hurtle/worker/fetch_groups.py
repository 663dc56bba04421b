"""Which queues a process fetches together: one fetch loop per kind of task.

A fetch asks for as many messages as can start now. A queue whose tasks are
all ``async def`` can start as many as there are free async slots; one of
``def`` tasks as many as there are free threads. Fetched together, a queue of
each kind would be fetched for the smaller of the two: while every thread is
busy with slow ``def`` tasks, the ``async def`` ones would wait for a thread
they do not need (and the other way round). So queues are grouped by the
kinds of task they hold, and each group has a fetch loop of its own that waits
only for its own slots. A queue that holds both kinds (or tasks the worker does
not know) is its own group, fetched for the smaller capacity: which kind its
next message is cannot be known before it is fetched.

With weights or a strict order (``-q high:5,low:1``, ``--strict``) every queue
stays in one group: the order is between all the queues named, whatever their
kinds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hurtle.task import Task

BOTH = frozenset({True, False})


@dataclass(frozen=True)
class FetchGroup:
    queues: tuple[str, ...]
    kinds: frozenset[bool]  # True: async tasks, False: sync tasks


def fetch_groups(
    tasks: Iterable[Task[..., object]], queues: Sequence[str], ordered: bool
) -> list[FetchGroup]:
    """The groups of ``queues`` fetched apart, each in the order given; one group when ``ordered``."""
    kinds_of: dict[str, set[bool]] = {queue: set() for queue in queues}
    for task in tasks:
        if task.opts.queue in kinds_of:
            kinds_of[task.opts.queue].add(task.is_async)
    kinds = {queue: frozenset(found) or BOTH for queue, found in kinds_of.items()}
    if ordered:
        return [FetchGroup(tuple(queues), frozenset().union(*kinds.values()) or BOTH)]
    groups: dict[frozenset[bool], list[str]] = {}
    for queue in queues:
        groups.setdefault(kinds[queue], []).append(queue)
    return [FetchGroup(tuple(names), group_kinds) for group_kinds, names in groups.items()]


def runs_async_tasks(tasks: Iterable[Task[..., object]], queues: Sequence[str]) -> bool:
    """Whether a worker consuming ``queues`` may run async tasks: one is registered to
    one of them, or one of them has no registered task and the app has async tasks
    (``options(queue=...)`` can send any task there)."""
    tasks = list(tasks)
    named = {task.opts.queue for task in tasks}
    if any(task.is_async and task.opts.queue in queues for task in tasks):
        return True
    return any(queue not in named for queue in queues) and any(task.is_async for task in tasks)
