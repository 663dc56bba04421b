"""Rate and concurrency limits across every worker: the worker's side.

A task declared with ``rate_limit=`` or ``max_concurrency=`` is not started
until the app's limit store (``hurtle.limit_store``: the broker's own, else the
``results=`` store's) gives it a permit. A message over its limit is given back
to the broker at once, delayed until the limit should allow it (``Broker.retry``
with the same body and an eta: the attempt is not counted, and on every broker
the move is atomic, so the message is never lost), and its slot is free for
other tasks meanwhile: nothing waits in the worker, nothing polls.

- **Rate**: the store answers how long until its next permit, so the first
  message refused comes back exactly then, the next one ``interval`` later, and
  so on: a backlog is spread over the times it can run, not fetched again and
  again.
- **Concurrency**: a permit is a lease the worker renews with its message leases'
  heartbeat and gives back when the run ends. Nobody knows when a permit frees,
  so a refused message waits a spell: about as long as this process has seen
  the task run (at least ``MIN_WAIT``); in a process that has seen none run
  (the permits are all held elsewhere), ``FIRST_GUESS``, doubled at each fetch
  of the task refused every permit. Each spell is at most ``MAX_WAIT``; the k-th
  message refused in a fetch waits ``k // limit + 1`` spells.

Users' documentation: docs/scheduling.md, "Rate and concurrency limits".
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from hurtle.brokers import Message
from hurtle.envelope import encode
from hurtle.errors import ConfigurationError
from hurtle.limit_source import find_limits
from hurtle.limit_store import LimitStore

if TYPE_CHECKING:
    from hurtle.app import App
    from hurtle.brokers import Broker
    from hurtle.task import Task
    from hurtle.worker.dispatcher import Job

log = logging.getLogger("hurtle.worker")

MIN_WAIT = 0.05  # seconds: the shortest wait of a message refused a permit
MAX_WAIT = 5.0  # seconds: the longest spell of a refused message (so a freed permit is seen soon)
FIRST_GUESS = 0.25  # seconds a run is taken to last before this process has seen one
STORE_DOWN_WAIT = 1.0  # seconds a message waits when the limit store cannot be reached
ADMISSION_WAIT = 1.0  # seconds a fetch waits, at most, for the admissions of the fetch before
_SMOOTHING = 0.2  # weight of the newest run in the running average of run times


def rate_key(task: str) -> str:
    return f"rate:{task}"


def permits_key(task: str) -> str:
    return f"permits:{task}"


def limited_tasks(app: App) -> list[Task[Any, Any]]:
    return [task for task in app.tasks.values() if task.opts.limited]


def check_limits_kept(app: App) -> None:
    """``ConfigurationError`` when the app has limited tasks but neither its broker
    nor its result store keeps limits (RabbitMQ without ``results=``): running
    them unlimited could break the very limit they declare. Makes no connection."""
    limited = limited_tasks(app)
    if limited and find_limits(app.broker_url, app.results_url) is None:
        raise ConfigurationError(
            f"task {limited[0].name} has a rate or concurrency limit, but {app.broker_url.scheme}"
            " keeps no limits: pass App(results=URL) of a store that does (redis://, sqlite://)"
        )


def describe_limits(task: Task[Any, Any]) -> str:
    """A task's limits, fit for the worker's start block; '' when it has none."""
    parts = []
    if task.opts.rate_limit is not None:
        parts.append(f"rate {task.opts.rate_limit}")
    if task.opts.max_concurrency is not None:
        parts.append(f"at most {task.opts.max_concurrency} at once")
    return ", ".join(parts)


@dataclass
class Admission:
    """What ``Limiter.admit`` decided for a batch of one task's jobs."""

    #: Jobs that hold their permits and start now, each with its permit's holder
    #: (None: the task has no concurrency limit).
    start: list[tuple[Job, str | None]] = field(default_factory=list)
    #: Jobs to give back to the broker, each with the seconds to wait.
    wait: list[tuple[Job, float]] = field(default_factory=list)


@dataclass
class _Held:
    key: str
    task: str
    since: float  # monotonic


class Limiter:
    """One worker process's permits: asks the store before a limited task starts,
    renews what it holds, gives back what finished."""

    def __init__(self, store: LimitStore, worker: str, lease: float, *, owns_store: bool) -> None:
        self.store = store
        self.lease = lease
        self._owns_store = owns_store
        self._prefix = f"{worker}:{secrets.token_hex(4)}:"
        self._numbers = itertools.count()
        self._held: dict[str, _Held] = {}
        #: The permit holder of each admitted run, by ``id(delivery)``, until it ends:
        #: the consumer tests this dict (empty: nothing to give back) where runs end.
        self.holders: dict[int, str] = {}
        self._run_time: dict[str, float] = {}  # task: running average of its runs here, seconds
        self._refused: dict[str, int] = {}  # task: fetches in a row refused every permit
        self._to_release: dict[str, list[str]] = {}
        self._releasing: asyncio.Task[None] | None = None

    async def admit(self, task: Task[Any, Any], jobs: Sequence[Job]) -> Admission:
        """Which of ``jobs`` (one task's) start now and which wait, and how long.
        Raises what the store raises (the caller makes them wait)."""
        opts, count = task.opts, len(jobs)
        holders: list[str] = []
        allowed = count
        if opts.max_concurrency is not None:
            holders = [f"{self._prefix}{next(self._numbers)}" for _ in jobs]
            key = permits_key(task.name)
            allowed = await self.store.acquire(key, holders, opts.max_concurrency, self.lease)
            self._refused[task.name] = 0 if allowed else self._refused.get(task.name, 0) + 1
        admitted, rate_wait = allowed, 0.0
        if opts.rate_limit is not None and allowed:
            taken = await self.store.take_rate(rate_key(task.name), opts.rate_limit.interval, 1, allowed)
            admitted, rate_wait = taken.granted, taken.wait
            if holders and admitted < allowed:  # permits taken for runs the rate refused
                await self.store.release({permits_key(task.name): holders[admitted:allowed]})
        now = time.monotonic()
        admission = Admission()
        for index, job in enumerate(jobs[:admitted]):
            holder = holders[index] if holders else None
            if holder is not None:
                self._held[holder] = _Held(permits_key(task.name), task.name, now)
                self.holders[id(job.delivery)] = holder
            admission.start.append((job, holder))
        for index in range(admitted, count):
            wait = 0.0
            if opts.rate_limit is not None:
                wait = rate_wait + (index - admitted) * opts.rate_limit.interval
            if opts.max_concurrency is not None and index >= allowed:
                wait = max(wait, self._permit_wait(task.name, index - allowed, opts.max_concurrency, now))
            admission.wait.append((jobs[index], max(wait, 0.0)))
        return admission

    def _permit_wait(self, task: str, behind: int, limit: int, now: float) -> float:
        """How long a message refused a permit waits: a spell per ``limit`` messages
        ahead of it, with a little jitter so processes do not come back in step."""
        return self._spell(task, now) * (behind // limit + 1) * random.uniform(1.0, 1.25)

    def _spell(self, task: str, now: float) -> float:
        """About one run of the task: the longer of what runs here now and the average
        seen here. A process that knows neither backs off instead, doubling with each
        fetch refused in a row: it might ask every quarter second for an hour while
        another process holds every permit."""
        runs = [now - h.since for h in self._held.values() if h.task == task]
        average = self._run_time.get(task)
        if average is None and not runs:
            doublings = min(8, max(0, self._refused.get(task, 0) - 1))
            return min(MAX_WAIT, FIRST_GUESS * 2.0**doublings)
        return min(MAX_WAIT, max(MIN_WAIT, *runs, FIRST_GUESS if average is None else average))

    def let_go(self, job: Job) -> None:
        """``job``'s run ended: give its permit back, if it holds one."""
        holder = self.holders.pop(id(job.delivery), None)
        if holder is not None:
            self.release(holder)

    def release(self, holder: str) -> None:
        """The run holding ``holder``'s permit ended: give the permit back soon (the
        releases of one loop turn go in one call)."""
        held = self._held.pop(holder, None)
        if held is None:
            return
        ran = time.monotonic() - held.since
        average = self._run_time.get(held.task)
        self._run_time[held.task] = ran if average is None else average + _SMOOTHING * (ran - average)
        self._to_release.setdefault(held.key, []).append(holder)
        if self._releasing is None:
            self._releasing = asyncio.get_running_loop().create_task(self._release_pending())

    async def _release_pending(self) -> None:
        try:
            while self._to_release:
                batch, self._to_release = self._to_release, {}
                try:
                    await self.store.release(batch)
                except Exception as exc:  # the permits expire after a lease
                    log.warning("could not give back %d permit(s) (%s: %s); they expire in %.0fs",
                                sum(map(len, batch.values())), type(exc).__name__, exc, self.lease)
        finally:
            self._releasing = None

    async def renew(self) -> None:
        """Renew every permit held (with the message leases' heartbeat)."""
        by_key: dict[str, list[str]] = {}
        for holder, held in self._held.items():
            by_key.setdefault(held.key, []).append(holder)
        if by_key:
            await self.store.renew(by_key, self.lease)

    async def close(self) -> None:
        """Give back what is left to give, then close a store opened for the limits."""
        releasing = self._releasing
        if releasing is not None:
            await asyncio.gather(releasing, return_exceptions=True)
        if self._to_release:
            await self._release_pending()
        if self._owns_store:
            await self.store.close()


async def give_back(broker: Broker, job: Job, wait: float, app: App) -> None:
    """Give ``job``'s message back to its queue, due in ``wait`` seconds: the same
    body (its attempt uncounted), replaced atomically (``Broker.retry``), so never
    lost. Signed anew under ``signature_max_age``, or it could wait past its age."""
    delivery, due = job.delivery, time.time() + wait
    body = delivery.body
    if app.signature_max_age is not None:
        body = encode(msgspec.structs.replace(job.envelope, eta=due), app.secret_key)
    await broker.retry(delivery, Message(job.envelope.id, delivery.queue, body, due))
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s[%s] over its limit: back in %.3fs", job.envelope.task, job.envelope.id, wait)


def limiter_for(app: App, broker: Broker, worker: str) -> Limiter | None:
    """The consumer's limiter, or None when no task is limited (then nothing is asked
    per message). A broker that keeps limits lends its own store: no second
    connection. ``ConfigurationError`` when no store keeps limits."""
    if not limited_tasks(app):
        return None
    borrowed = broker.limit_store()
    if borrowed is not None:
        return Limiter(borrowed, worker, app.visibility_timeout, owns_store=False)
    check_limits_kept(app)
    found = find_limits(app.broker_url, app.results_url)
    assert found is not None  # check_limits_kept found it
    return Limiter(found, worker, app.visibility_timeout, owns_store=True)
