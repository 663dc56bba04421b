"""One worker process's consumer: fetch what can start now, run it, settle it.

Reading order: ``run`` → ``_fetch_loop`` (one per group of queues,
``fetch_groups.py``) → ``_start`` → ``_run_async`` (a coroutine per async task)
or ``_run_sync`` → ``_sync_done`` (a thread-pool call per sync task,
``sync_runs.py``) →
``Settler.settle_now`` (a success) or ``Settler.settle`` (``settle.py``).
Acknowledgements and results are coalesced, and written in batches, by a
``SettleBuffer`` (``settle_buffer.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from hurtle.app import App
from hurtle.brokers import Delivery
from hurtle.client import Connection
from hurtle.context import set_current
from hurtle.envelope import Envelope
from hurtle.errors import EventLoopBlocked, TimeLimitExceeded
from hurtle.loops import cancel_all
from hurtle.observe.registry import RunningTask
from hurtle.observe.task_figures import TaskFigures
from hurtle.progress import ProgressWriter, set_writer
from hurtle.schedule.cancel import CancelWatch
from hurtle.schedule.limits import ADMISSION_WAIT, limiter_for
from hurtle.schedule.ticks import COPY_HEADER, TickClaims
from hurtle.schedule.unique import Releaser
from hurtle.worker.admitting import Admitting
from hurtle.worker.broker_outage import BrokerOutage
from hurtle.worker.cancelling import CANCEL_GRACE as CANCEL_GRACE
from hurtle.worker.cancelling import Cancelling

# Re-exported: what runs a consumer has long imported them from here.
from hurtle.worker.config import EXIT_BROKER_LOST as EXIT_BROKER_LOST
from hurtle.worker.config import EXIT_OK as EXIT_OK
from hurtle.worker.config import EXIT_RECYCLE as EXIT_RECYCLE
from hurtle.worker.config import WorkerConfig as WorkerConfig
from hurtle.worker.dispatcher import Dispatcher, Job
from hurtle.worker.executors import AsyncExecutor, SyncCall, ThreadExecutor, failure
from hurtle.worker.fetch_groups import FetchGroup, fetch_groups
from hurtle.worker.loop_watch import run_job
from hurtle.worker.outcome import Cancelled, DeadLetter, Outcome, Succeeded
from hurtle.worker.priorities import Dealer, QueueSpec
from hurtle.worker.running import async_running, sync_running
from hurtle.worker.settle import Counters, Settler
from hurtle.worker.settle_buffer import SettleBuffer, held_limit, slots_of
from hurtle.worker.slots import Slots
from hurtle.worker.sync_runs import SyncRuns
from hurtle.worker.thread_tuner import PROBE_SPREAD, ThreadTuner, tune
from hurtle.workflows.advance import FlowSteps

if TYPE_CHECKING:
    from hurtle.profiling.profiler import Profiler

log = logging.getLogger("hurtle.worker")
threads_log = logging.getLogger("hurtle.worker.threads")  # -t auto's moves, one line each



class Consumer(SyncRuns, Admitting, Cancelling):
    def __init__(
        self, app: App, connection: Connection, config: WorkerConfig, profiler: Profiler | None = None
    ) -> None:
        self.app = app
        self.broker = connection.broker
        self.results = connection.results
        self.config = config
        self.queues = list(config.queues)
        dealer = Dealer(QueueSpec(tuple(self.queues), tuple(config.weights or ()) or None, config.strict))
        #: Each fetch's quotas per queue (``priorities.py``), or None: the default order.
        self._deal = dealer.quotas if dealer.active else None
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.dispatcher = Dispatcher(
            app.tasks, max_deliveries=app.max_deliveries, secret_key=app.secret_key,
            signature_max_age=app.signature_max_age,
        )
        self.async_slots = Slots(config.concurrency)
        self.thread_slots = Slots(config.threads, refill=1)
        self.async_executor = AsyncExecutor()
        self.thread_executor = ThreadExecutor(config.threads)
        self.counters = Counters()
        #: Fetches made, and those that came back with fewer messages than asked for.
        self.fetches = self.short_fetches = 0
        #: Per task, queue and minute, for the task history and the metrics (``process.py`` sends them on).
        self.figures = TaskFigures(known=app.tasks)
        self.exit_code = EXIT_OK
        #: Lets one copy of each periodic task's tick run (``hurtle.schedule.ticks``);
        #: whoever runs the consumer closes it after ``run`` (the scheduler shares its store).
        self.tick_claims = TickClaims(app, self.broker)
        #: Cancel marks (``hurtle.schedule.cancel``) and unique keys given back
        #: (``hurtle.schedule.unique``), on the same record store as the ticks.
        self.cancels = CancelWatch(self.tick_claims.store)
        self.releaser = Releaser(self.tick_claims.store)
        self._progress: ProgressWriter | None = None
        #: The sync jobs handed to the pool and not yet settled, by ``id(delivery)``:
        #: where a cancel finds a running sync task.
        self._sync_runs: dict[int, SyncCall] = {}
        #: The queues fetched apart, a loop each (``fetch_groups.py``): no kind waits for another's slots.
        self._groups = fetch_groups(app.tasks.values(), self.queues, ordered=self._deal is not None)
        self._kinds = set().union(*(group.kinds for group in self._groups))
        self._asking = 0  # messages asked for by fetches under way: what the task budget reserves
        #: Asks the limit store before a limited task starts (``hurtle.schedule.limits``);
        #: None when no task is limited, so unlimited ones pass one bool test.
        self._limiter = limiter_for(app, self.broker, self.name)
        #: The limiter's permit holders by ``id(delivery)``: tested where runs end.
        self._holders: dict[int, str] = {} if self._limiter is None else self._limiter.holders
        #: ``_admit`` calls under way: the next fetch waits for them (below).
        self._admitting: set[asyncio.Task[None]] = set()
        # In burst mode an empty fetch is a question ("done yet?"): ask it often,
        # so the worker exits soon after its last task.
        self._fetch_timeout = min(config.fetch_timeout, 0.05) if config.burst else config.fetch_timeout
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._started = 0  # messages taken by this process: what --max-tasks-per-child counts
        self._in_flight: dict[int, Delivery] = {}
        self._running: set[asyncio.Task[None]] = set()  # settling and rejecting work
        #: The async jobs started and not yet settled, by ``id(delivery)``: what a
        #: drain cancels.
        self._async_runs: dict[int, tuple[asyncio.Task[None], Job]] = {}
        self._drained = False
        self._buffer = SettleBuffer(self.broker, self.results, app.result_ttl, self._in_flight)
        self._settler = Settler(
            self.broker, self.results, self._buffer, self.counters, worker=self.name,
            secret_key=app.secret_key, result_ttl=app.result_ttl, figures=self.figures,
            done_for_good=self.releaser.finished,
            flows=FlowSteps(app, self.broker, self.results, self.tick_claims.store, self.name),
        )
        # Bound once: the hot path calls it per task.
        self._settle_now = self._settler.settle_now
        #: Runs an async task's code: ``run_job``, or the profiler's wrapper around it.
        self._run_job = run_job if profiler is None else profiler.run_async
        self._profiler = profiler
        slots = slots_of(self._kinds, config.concurrency,
                         config.max_threads if config.auto_threads else config.threads)
        self._max_held = held_limit(slots, config.max_unsettled)
        self._resume_at = (self._max_held + slots) // 2  # fetch again once half the backlog is written

    # -- the loop ------------------------------------------------------------

    async def run(self) -> int:
        """Consume until stopped (or, in burst mode, until there is nothing left)."""
        helpers = [
            asyncio.create_task(self._buffer.run(), name="hurtle-flusher"),
            asyncio.create_task(self._heartbeat(), name="hurtle-heartbeat"),
        ]
        # Always: where no store keeps records, the writer says so once in the log.
        self._progress = ProgressWriter(self.tick_claims.store, self.app.result_ttl)
        set_writer(self._progress)
        helpers.append(asyncio.create_task(self._progress.run(), name="hurtle-progress"))
        if self.tick_claims.store() is not None:
            # Before the first fetch, so what was cancelled while queued never starts;
            # bounded, so a record store that is down delays the start by 5 s at most.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.cancels.look(), 5.0)
            helpers.append(asyncio.create_task(self._watch_cancels(), name="hurtle-cancels"))
        if self.config.auto_threads and False in self._kinds:
            tuner = ThreadTuner(self.config.threads, self.config.max_threads, spread=PROBE_SPREAD)
            tuning = tune(tuner, self._tuner_counts, self._resize_threads, self.thread_slots.occupied)
            helpers.append(asyncio.create_task(tuning, name="hurtle-threads"))
        limit = self.config.burst_timeout if self.config.burst else None
        timer = None if limit is None else asyncio.get_running_loop().call_later(limit, self._burst_over)
        try:
            if len(self._groups) == 1:
                await self._fetch_loop(self._groups[0])
            else:
                await asyncio.gather(*(self._fetch_loop(group) for group in self._groups))
        finally:
            if timer is not None:
                timer.cancel()
            await self._drain()
            if self._limiter is not None:
                await self._limiter.close()
            await cancel_all(helpers)
            await self.releaser.wait()
            set_writer(None)
            self.thread_executor.shutdown()
        return self.exit_code

    def stop(self, exit_code: int = EXIT_OK) -> None:
        """Stop fetching; what is in flight finishes within the grace period."""
        if not self._stopping:
            self._stopping = True
            self.exit_code = exit_code
            self._stop_requested.set()
        self._buffer.written.set()
        self.async_slots.wake()
        self.thread_slots.wake()

    def _tuner_counts(self) -> tuple[int, int, int]:
        return self.thread_executor.completed, self.fetches, self.short_fetches

    def _resize_threads(self, threads: int) -> None:
        """``-t auto``'s decision: the pool and the slots fetch counts on follow it."""
        threads_log.debug("thread pool: %d -> %d threads", self.thread_slots.capacity, threads)
        self.thread_executor.resize(threads)
        self.thread_slots.resize(threads)

    def _burst_over(self) -> None:
        if not self._stopping:
            log.warning("burst timeout (%gs): stopping; tasks not started stay in the broker",
                        self.config.burst_timeout)
            self.stop(EXIT_OK)

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def stop_requested(self) -> None:
        """Return once a stop is asked for (a signal, a burst run's end, a recycle)."""
        await self._stop_requested.wait()

    async def _fetch_loop(self, group: FetchGroup) -> None:
        """Fetch ``group``'s queues for as many as its kinds' free slots, until stopped."""
        queues, sync = list(group.queues), False in group.kinds
        outage = BrokerOutage(self.config.max_disconnect)
        while not self._stopping:
            if self._admitting:
                # A round trip or two: then the slots of what went back are free, and
                # the broker knows when it is due (Redis wakes its next read for it,
                # where a read already waiting would sleep on for up to a second).
                # Bounded: a limit store that hangs must not stop unlimited tasks.
                await asyncio.wait(list(self._admitting), timeout=ADMISSION_WAIT)
            free = await self._room(group.kinds)
            if self._stopping:
                break
            if free == 0:
                if self._budget_spent():  # the last task to finish stops us
                    await self._stop_requested.wait()
                    break
                # -t auto shrank the pool between the slots' wake-up and now: wait again.
                continue
            if len(self._in_flight) + free > self._max_held:  # the fast path's one compare
                free = self._max_held - len(self._in_flight)
                if free <= 0:
                    await self._buffer.hold_back(
                        self._resume_at, lambda: self._stopping, lambda: self._ask_broker(outage)
                    )
                    continue
            self._asking += free
            try:
                if self._deal is None:
                    deliveries = await self.broker.fetch(queues, free, self._fetch_timeout)
                else:
                    quotas = self._deal(free)
                    deliveries = await self.broker.fetch(queues, free, self._fetch_timeout, quotas=quotas)
                done = not deliveries and self.config.burst and await self._nothing_left()
            except Exception as exc:
                if not await outage.failed(exc):
                    self.stop(EXIT_BROKER_LOST)
                continue
            finally:
                self._asking -= free
            outage.ended()
            if sync:  # what ``-t auto`` reads: fetches for threads, and those the queues could not fill
                self.fetches += 1
                if len(deliveries) < free:
                    self.short_fetches += 1
            if deliveries:
                self._start(deliveries)
            if done:
                self.stop(EXIT_OK)

    async def _ask_broker(self, outage: BrokerOutage) -> None:
        """While fetching is held back, notice an outage of the broker's own as a fetch would."""
        try:
            await self.broker.stats(self.queues)
        except Exception as exc:
            if not await outage.failed(exc):
                self.stop(EXIT_BROKER_LOST)
            return
        outage.ended()

    async def _room(self, kinds: frozenset[bool]) -> int:
        """Wait for free slots of ``kinds`` (a group's); how many to fetch."""
        free = []
        if True in kinds:
            free.append(await self.async_slots.wait_for_room())
        if False in kinds:
            free.append(await self.thread_slots.wait_for_room())
        limit = self.config.max_tasks_per_child
        if limit is not None:
            # The budget caps each fetch: a process runs at most ``limit`` tasks, counting
            # what another group's fetch under way may bring.
            free.append(limit - self._started - self._asking)
        return max(0, min(free))

    def _budget_spent(self) -> bool:
        limit = self.config.max_tasks_per_child
        return limit is not None and self._started + self._asking >= limit

    async def _nothing_left(self) -> bool:
        if self._in_flight or self._buffer.acks:
            return False
        stats = await self.broker.stats(self.queues)
        return sum(s.pending for s in stats) == 0

    def _start(self, deliveries: list[Delivery]) -> None:
        """Start a fetch's deliveries; their slots are taken once, for all of them
        (nothing runs before this returns: the tasks start on the loop's next turn)."""
        loop = asyncio.get_running_loop()
        self._started += len(deliveries)
        async_started = sync_started = skipped = 0
        cancelled = self.cancels.ids  # empty unless something was cancelled: one truth test per message
        limited: dict[str, list[Job]] | None = None if self._limiter is None else {}
        for delivery in deliveries:
            try:
                prepared = self.dispatcher.prepare(delivery)
            except Exception as exc:  # prepare answers every defect itself; this guards the batch
                prepared = DeadLetter(f"could not prepare the message: {type(exc).__name__}: {exc}"), None
            key = id(delivery)
            self._in_flight[key] = delivery
            if not isinstance(prepared, Job):
                async_started += 1
                outcome, envelope = prepared
                self._spawn(self._reject(delivery, envelope, outcome.reason), self.async_slots)
            elif cancelled and prepared.envelope.id in cancelled:  # cancelled while queued: never runs
                now = time.time()
                if prepared.envelope.flow is UNSET:
                    self._settler.cancel_now(prepared, now, now)
                    skipped += 1
                else:  # a workflow's step: its workflow fails first, which takes a round trip
                    async_started += 1
                    self._spawn(self._settle_later(prepared, Cancelled(), now, now), self.async_slots)
            elif limited is not None and prepared.task.opts.limited:  # asks for a permit first
                if prepared.task.is_async:
                    async_started += 1
                else:
                    sync_started += 1
                limited.setdefault(prepared.task.name, []).append(prepared)
            elif COPY_HEADER in prepared.envelope.headers:  # a tick or a workflow's copy: one dict lookup
                if prepared.task.is_async:
                    async_started += 1
                else:
                    sync_started += 1
                self._track(loop.create_task(self._start_tick(prepared)))
            elif prepared.task.is_async:
                async_started += 1
                self._async_runs[key] = (loop.create_task(self._run_async(prepared)), prepared)
            else:
                sync_started += 1
                self._run_sync(prepared)
        if async_started:
            self.async_slots.take(async_started)
        if sync_started:
            self.thread_slots.take(sync_started)
        if skipped:  # they count against --max-tasks-per-child like any message taken
            self._after_task()
        if limited:
            for jobs in limited.values():
                admitting = loop.create_task(self._admit(jobs))
                self._track(admitting)
                self._admitting.add(admitting)
                admitting.add_done_callback(self._admitting.discard)

    def _spawn(self, work: Coroutine[Any, Any, None], slots: Slots) -> None:
        """Run ``work`` as an asyncio task that frees its slot whatever happens."""
        self._track(asyncio.create_task(self._guarded(work, slots)))

    def _track(self, task: asyncio.Task[None]) -> None:
        """Keep ``task`` where a drain finds it (and cancels it past the grace period)."""
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None], slots: Slots) -> None:
        try:
            await work
        except Exception:
            # Settling failed (the broker went away): the lease expires and the
            # message is delivered again. Never let it take the worker down.
            log.exception("could not settle a message; it will be redelivered")
        finally:
            slots.give()
        self._after_task()

    async def _reject(self, delivery: Delivery, envelope: Envelope | None, reason: str) -> None:
        try:
            await self._settler.reject(delivery, envelope, reason, time.time())
        except Exception:
            self._forget(delivery)
            raise

    def _forget(self, delivery: Delivery) -> None:
        """Settling failed: stop extending its lease, so it expires and is delivered
        again (a drain must not release it either)."""
        self._in_flight.pop(id(delivery), None)

    async def _run_async(self, job: Job) -> None:
        """An async job from start to settled, in one coroutine (``_guarded``'s duties
        included), tracked without a done callback: on no-op tasks every object and
        callback more per message showed. ``started`` stays a local: the worker
        registry reads it from this coroutine's frame (``running.py``)."""
        task, timeout = job.task, job.timeout
        try:
            started = time.time()
            set_current(job)
            try:
                if timeout is None:
                    outcome: Outcome = Succeeded(await self._run_job(job))
                else:
                    outcome = await self.async_executor.run(task.name, self._run_job, [job], {}, timeout)
            except EventLoopBlocked as exc:
                outcome = DeadLetter(str(exc))
            except (Exception, TimeLimitExceeded) as exc:
                outcome = failure(exc)
            except asyncio.CancelledError:
                if not job.cancelled:  # the worker is stopping: not the task's cancel
                    raise
                _uncancel()
                outcome = Cancelled()
            if job.cancelled and type(outcome) is not Cancelled:  # it caught the cancel and went on
                _uncancel()
                outcome = Cancelled()
            finished = time.time()
            if not self._settle_now(job, outcome, started, finished):
                await self._settle_later(job, outcome, started, finished)
        except Exception:
            log.exception("could not settle a message; it will be redelivered")
        finally:
            del self._async_runs[id(job.delivery)]
            if self._holders:
                self._let_go(job)
            self.async_slots.give()
        self._after_task()

    async def _settle_later(self, job: Job, outcome: Outcome, started: float, finished: float) -> None:
        """``Settler.settle``, for what ``settle_now`` could not do."""
        try:
            await self._settler.settle(job, outcome, started, finished)
        except Exception:
            self._forget(job.delivery)
            raise

    def _after_task(self) -> None:
        limit = self.config.max_tasks_per_child
        spent = limit is not None and self._started >= limit and self._idle()
        if self.thread_executor.needs_recycle or spent:
            self.stop(EXIT_RECYCLE)

    def running_tasks(self) -> list[RunningTask]:
        """The tasks running now, async then sync: read at the registry's heartbeat,
        from what the consumer holds anyway (nothing is kept per task for it)."""
        now = time.time()
        return async_running(list(self._async_runs.values()), now) + sync_running(
            self.thread_executor.thread_ids(), now
        )

    def _idle(self) -> bool:
        return self.async_slots.busy == 0 and self.thread_slots.busy == 0

    # -- background duties -----------------------------------------------------

    async def _heartbeat(self) -> None:
        """Keep leases alive however long tasks run: a long task is never handed to a second worker."""
        interval = self.app.visibility_timeout / 3
        while True:
            await asyncio.sleep(interval)
            leased = list(self._in_flight.values())
            if leased:
                try:
                    await self.broker.extend(leased)
                except Exception:
                    log.exception("lease heartbeat failed; will try again in %.1fs", interval)
            if self._limiter is not None:  # after the leases: they matter more
                try:
                    await self._limiter.renew()
                except Exception:
                    log.exception("could not renew the permits of limited tasks; will try again in %.1fs",
                                  interval)

    async def _drain(self) -> None:
        """Finish what runs within the grace period; give back the rest."""
        busy = self.async_slots.busy + self.thread_slots.busy
        if busy:
            log.info("waiting up to %.1fs for %d task(s) in flight", self.config.grace, busy)
            idle = asyncio.gather(self.async_slots.wait_idle(), self.thread_slots.wait_idle())
            try:
                await asyncio.wait_for(idle, self.config.grace)
            except asyncio.TimeoutError:
                running = self._running | {task for task, _ in self._async_runs.values()}
                for task in running:
                    task.cancel()
                if running:
                    await asyncio.wait(running, timeout=1.0)
        self._drained = True  # a sync call that still returns is not settled any more
        try:
            await self._buffer.flush()
            leftover = list(self._in_flight.values())
            if leftover:
                log.warning("giving %d unfinished message(s) back to the queue", len(leftover))
                await self.broker.release(leftover)
                self._in_flight.clear()
        except Exception:
            log.exception("could not settle every message before stopping; leases will expire")


def _uncancel() -> None:
    """The run's own cancel was handled: take it off its asyncio task's count, so
    the settling that follows is not cut short (Python 3.11's ``uncancel``)."""
    task: Any = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel") and task.cancelling():
        task.uncancel()
