"""Settling: the one place an ``Outcome`` becomes ack, retry or dead-letter.

A success is queued on the ``SettleBuffer`` (``settle_now``, the hot path: no
await); everything else is written at once (``settle``). A result is stored
before its message is acknowledged or dead-lettered, so a crash in between
runs the task again rather than losing what it left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from msgspec import UNSET

from hurtle.brokers import Broker, Delivery, Message
from hurtle.envelope import Envelope, Result, encode, encode_result
from hurtle.errors import MessageTooLarge
from hurtle.observe.task_figures import CANCELLED, FAILED, RETRIED, SUCCEEDED, TaskFigures
from hurtle.results import ResultStore
from hurtle.retry import DEFAULT_BACKOFF
from hurtle.worker.dispatcher import Job
from hurtle.worker.outcome import Cancelled, DeadLetter, Failed, Outcome, Succeeded
from hurtle.worker.settle_buffer import SettleBuffer
from hurtle.workflows.advance import FlowSteps

log = logging.getLogger("hurtle.worker")


@dataclass
class Counters:
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    cancelled: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.retried + self.dead_lettered + self.cancelled


class Settler:
    """Turns one process's outcomes into broker and result-store calls."""

    def __init__(
        self,
        broker: Broker,
        results: ResultStore | None,
        buffer: SettleBuffer,
        counters: Counters,
        *,
        worker: str,
        secret_key: bytes | None,
        result_ttl: float,
        figures: TaskFigures | None = None,
        done_for_good: Callable[[Envelope], None] | None = None,
        flows: FlowSteps | None = None,
    ) -> None:
        self.broker = broker
        self.results = results
        self.counters = counters
        self.worker = worker
        self.secret_key = secret_key
        self.result_ttl = result_ttl
        #: Per task and minute: what the history and the metrics are made of.
        self.figures = figures if figures is not None else TaskFigures()
        self._ran = self.figures.ran
        #: Told of every task done for good (not retried): gives unique keys back.
        self._done_for_good = done_for_good
        #: Moves workflows on when one of their steps ends (``hurtle.workflows.advance``).
        self.flows = flows
        self.in_flight = buffer.in_flight
        # The buffer's own lists and event: ``settle_now`` adds to them directly.
        self._acks, self._results, self._flush_wanted = buffer.acks, buffer.results, buffer.wanted

    def settle_now(self, job: Job, outcome: Outcome, started: float, finished: float) -> bool:
        """The common case, without waiting: a success is queued for the next flush.
        False when ``settle`` must do the rest (a failure, or a result that cannot
        be stored, or a workflow's step). One call per task: on no-op tasks every
        call more showed."""
        if type(outcome) is not Succeeded or job.envelope.flow is not UNSET:
            return False
        return self._queue_success(job, outcome, started, finished)

    def _queue_success(self, job: Job, outcome: Succeeded, started: float, finished: float) -> bool:
        envelope = job.envelope
        if job.task.opts.store_result and self.results is not None:
            try:
                job.task.types.check_result(outcome.value)
                record = self.result(envelope, "succeeded", started, finished, value=outcome.value)
                self._results.append((envelope.id, encode_result(record)))
            except Exception:  # (a result that cannot be encoded): ``settle`` deals with it
                return False
        self.counters.succeeded += 1
        self._ran(envelope.task, job.delivery.queue, SUCCEEDED, _ready_at(envelope), started, finished)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s[%s] succeeded in %.4fs, waited %.4fs",
                envelope.task, envelope.id, finished - started, started - _ready_at(envelope),
            )
        self._acks.append(job.delivery)
        self._flush_wanted.set()
        if envelope.headers and self._done_for_good is not None:  # a unique key to give back
            self._done_for_good(envelope)
        return True

    async def settle(self, job: Job, outcome: Outcome, started: float, finished: float) -> None:
        """Ack, retry or dead-letter ``job`` by its outcome, and store its result."""
        envelope, delivery = job.envelope, job.delivery
        if isinstance(outcome, Succeeded):
            if envelope.flow is not UNSET:
                outcome = await self._advance(job, outcome)
            if isinstance(outcome, Succeeded):
                if self._queue_success(job, outcome, started, finished):
                    return
                outcome = self._unstorable(job, outcome.value)
        if isinstance(outcome, DeadLetter):
            await self.reject(delivery, envelope, outcome.reason, started)
            return
        if isinstance(outcome, Cancelled):
            if envelope.flow is not UNSET and self.flows is not None:  # nothing after it will run
                await self.flows.failed(envelope, "cancelled")
            self.cancel_now(job, started, finished)
            return
        if self._should_retry(job, outcome):
            await self._retry(job, outcome, started, finished)
            return
        self.counters.failed += 1
        self._ran(envelope.task, delivery.queue, FAILED, _ready_at(envelope), started, finished)
        log.error(
            "%s[%s] failed for good after %d attempt(s) in %.3fs: %s",
            envelope.task, envelope.id, envelope.attempt + 1, finished - started, outcome.error,
        )
        await self._dead_letter(delivery, envelope, outcome.error, started, finished, outcome.traceback)

    async def _advance(self, job: Job, outcome: Succeeded) -> Succeeded | Failed:
        """Move a workflow on with a step's result, before the step is acknowledged
        (a crash in between runs the step again, and its next step is claimed once).
        A result that cannot travel fails the step, as one that cannot be stored does."""
        try:
            job.task.types.check_result(outcome.value)
            encode_result(self.result(job.envelope, "succeeded", 0.0, 0.0, value=outcome.value))
        except TypeError:
            return self._unstorable(job, outcome.value)
        if self.flows is None:
            return Failed("no workflow support in this process", "", retryable=False)
        try:
            await self.flows.succeeded(job.envelope, outcome.value)
        except MessageTooLarge as exc:  # sending it again cannot help: the workflow fails here
            error = f"the workflow's next step cannot be sent: {exc}"
            return Failed(error, f"{error}\n", retryable=False)
        return outcome

    def skip(self, job: Job, reason: str) -> None:
        """Acknowledge ``job`` without running it, and without a result (the run
        that did run has its own, under the same task id)."""
        log.info("%s[%s] acknowledged without running: %s", job.envelope.task, job.envelope.id, reason)
        self._acks.append(job.delivery)
        self._flush_wanted.set()

    def cancel_now(self, job: Job, started: float, finished: float) -> None:
        """Acknowledge a cancelled task with a ``cancelled`` result: not retried,
        not dead-lettered (docs/scheduling.md). Queued for the next flush."""
        envelope = job.envelope
        self.counters.cancelled += 1
        self.figures.ended(envelope.task, job.delivery.queue, CANCELLED, finished)
        log.info("%s[%s] cancelled after %.3fs", envelope.task, envelope.id, max(0.0, finished - started))
        if self.results is not None:
            record = self.result(envelope, "cancelled", started, finished, error="cancelled")
            self._results.append((envelope.id, encode_result(record)))
        self._acks.append(job.delivery)
        self._flush_wanted.set()
        if self._done_for_good is not None:
            self._done_for_good(envelope)

    async def reject(
        self, delivery: Delivery, envelope: Envelope | None, reason: str, started: float
    ) -> None:
        """Dead-letter a message that must not run (again), saying why."""
        self.counters.dead_lettered += 1
        self.figures.dead(None if envelope is None else envelope.task, delivery.queue, started)
        log.error("dead-lettered a message from queue %r: %s", delivery.queue, reason)
        await self._dead_letter(delivery, envelope, reason, started)

    async def _dead_letter(
        self, delivery: Delivery, envelope: Envelope | None, error: str, started: float,
        finished: float | None = None, traceback: str | None = None,
    ) -> None:
        """Store a failed result, then move the message to the dead letters. The
        sender may be waiting on the result: tell it, don't let it hang. A workflow
        step fails its workflow first (``FlowSteps.failed``)."""
        if envelope is not None and envelope.flow is not UNSET and self.flows is not None:
            await self.flows.failed(envelope, error)
        if envelope is not None and self.results is not None:
            when = time.time() if finished is None else finished
            record = self.result(envelope, "failed", started, when, error=error, traceback=traceback or "")
            await self.results.store([(record.id, encode_result(record))], self.result_ttl)
        await self.broker.dead_letter(delivery, error if traceback is None else f"{error}\n{traceback}")
        self.in_flight.pop(id(delivery), None)
        if envelope is not None and self._done_for_good is not None:
            self._done_for_good(envelope)

    def result(
        self, envelope: Envelope, status: Literal["succeeded", "failed", "cancelled"],
        started: float, finished: float,
        *, value: Any = None, error: str = "", traceback: str = "",
    ) -> Result:
        """The result record of this attempt at ``envelope``."""
        return Result(
            id=envelope.id, status=status, value=value, error=error, traceback=traceback,
            attempt=envelope.attempt, ready_at=_ready_at(envelope), started_at=started,
            finished_at=finished, worker=self.worker,
        )

    def _unstorable(self, job: Job, value: Any) -> Failed:
        """Why a success's result cannot be stored: the task fails, not retried."""
        try:
            job.task.types.check_result(value)
            encode_result(self.result(job.envelope, "succeeded", 0.0, 0.0, value=value))
        except TypeError as exc:
            return Failed(str(exc), f"{exc}\n", retryable=False)
        raise RuntimeError(f"the result of {job.envelope.task}[{job.envelope.id}] could not be queued")

    @staticmethod
    def _should_retry(job: Job, outcome: Failed) -> bool:
        options = job.task.opts
        if not outcome.retryable or job.envelope.attempt >= options.retries:
            return False
        return options.retries_on(outcome.exception)

    async def _retry(self, job: Job, outcome: Failed, started: float, finished: float) -> None:
        envelope = job.envelope
        attempt = envelope.attempt + 1
        backoff = job.task.opts.backoff or DEFAULT_BACKOFF
        delay = outcome.delay if outcome.delay is not None else backoff.compute(attempt)
        # Back to the queue it came from: the body's ``queue`` is only informative,
        # and a producer elsewhere may have left it out (docs/protocol.md).
        queue = job.delivery.queue
        retry = msgspec.structs.replace(envelope, queue=queue, attempt=attempt, eta=finished + delay)
        try:
            body = encode(retry, self.secret_key)
        except TypeError as exc:  # arguments that came in but cannot go out again (nested too deep)
            await self.reject(job.delivery, envelope, f"{outcome.error}; could not retry: {exc}", started)
            return
        await self.broker.retry(job.delivery, Message(retry.id, queue, body, retry.eta))
        self.in_flight.pop(id(job.delivery), None)
        self.counters.retried += 1
        self._ran(envelope.task, queue, RETRIED, _ready_at(envelope), started, finished)
        log.warning(
            "%s[%s] failed in %.3fs (%s); retry %d/%d in %.2fs",
            envelope.task, envelope.id, finished - started, outcome.error,
            attempt, job.task.opts.retries, delay,
        )


def _ready_at(envelope: Envelope) -> float:
    return envelope.eta if envelope.eta is not None else envelope.enqueued_at
