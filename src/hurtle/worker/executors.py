"""Where a task's code runs, each with its own time-limit rule.

- ``AsyncExecutor``: a coroutine on the process's loop; past its time limit it
  is cancelled (``asyncio.wait_for``), which frees its slot at once.
- ``ThreadExecutor``: a sync function on a pool thread; a thread cannot be
  interrupted, so past its time limit (timed by the consumer) the task is
  reported failed and the process asks to be recycled (stop fetching, finish
  the rest, exit, be replaced). With ``--threads 1`` that is the process
  running one task at a time being killed and replaced.

Both come to an ``Outcome`` and never raise for the task's own errors.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from hurtle.context import set_current
from hurtle.errors import EventLoopBlocked, Retry, TimeLimitExceeded
from hurtle.worker.outcome import DeadLetter, Failed, Outcome, Succeeded


def failure(exc: BaseException) -> Failed:
    """The Outcome of an exception, with the traceback text the caller will see."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, Retry):
        return Failed(error, text, retryable=True, delay=exc.delay)
    return Failed(error, text, exception=type(exc))


def time_limit_failure(name: str, timeout: float) -> Failed:
    error = f"TimeLimitExceeded: task {name} ran past its {timeout:g}s time limit"
    return Failed(error, error + "\n")


class AsyncExecutor:
    """Async tasks with a time limit. (Without one, the consumer awaits the task
    in its own coroutine: one coroutine per message, not three.)"""

    async def run(
        self,
        name: str,
        fn: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float,
    ) -> Outcome:
        return await self._run_limited(name, fn(*args, **kwargs), timeout)

    async def _run_limited(self, name: str, coro: Coroutine[Any, Any, Any], timeout: float) -> Outcome:
        """Not ``wait_for``: a ``TimeoutError`` the task raises itself (an HTTP
        timeout) is its own failure, not the time limit, and on 3.11 the two
        are the same class."""
        task = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            # Cancelled from outside (a cancel of the task, or a stop past the grace):
            # let the task run its finally blocks before whoever cancelled goes on.
            task.cancel()
            await asyncio.wait({task})
            raise
        if not done:
            task.cancel()
            await asyncio.wait({task})  # let it run its finally blocks
            return time_limit_failure(name, timeout)
        try:
            return Succeeded(task.result())
        except EventLoopBlocked as exc:
            return DeadLetter(str(exc))
        except (Exception, TimeLimitExceeded) as exc:
            return failure(exc)


class SyncCall:
    """One sync task handed to the thread pool, and what came of it.

    One object per task instead of ``run_in_executor``'s two chained futures, a
    ``concurrent.futures`` work item and an asyncio task to await them: on no-op
    tasks those were most of the event loop's time (docs/benchmarks.md).
    """

    __slots__ = ("args", "cancelled", "context", "finished", "fn", "kwargs", "on_done", "outcome",
                 "settled", "started", "timer", "variables")

    def __init__(
        self, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], context: Any,
        on_done: Callable[[SyncCall], None],
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context = context  # what ``hurtle.current_task()`` sees in the thread
        self.on_done = on_done  # called on the loop once the call returned
        self.outcome: Outcome | None = None
        self.started = 0.0
        self.finished = 0.0
        self.cancelled = False  # set on the loop: a thread that has not started it skips it
        self.settled = False  # set on the loop once its outcome was acted on (or its time ran out)
        self.timer: asyncio.TimerHandle | None = None
        # The caller's context variables (logging context, tracing), as an asyncio
        # task would have them: the thread runs the call in a copy.
        self.variables = contextvars.copy_context()


class ThreadExecutor:
    """Sync tasks on up to ``threads`` threads, started as they are needed.

    The loop puts calls on one ``SimpleQueue``; threads take them one at a time
    (a slow task never holds back another), and hand finished calls back
    through a deque, waking the loop once for however many finished meanwhile.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        #: Set when a thread is stuck past its time limit: the process must be replaced.
        self.needs_recycle = False
        self._inbox: queue.SimpleQueue[SyncCall | None] = queue.SimpleQueue()
        self._finished: collections.deque[SyncCall] = collections.deque()
        self._wake_pending = False
        self._workers: list[threading.Thread] = []
        self._unfinished = 0  # submitted, not yet handed back; counted on the loop only
        #: Calls handed back so far, counted on the loop: ``-t auto``'s measure of throughput.
        self.completed = 0
        self._started_threads = 0  # for thread names: threads come and go with ``resize``
        self._leaving = 0  # threads told to leave that have not yet
        self._resizing = threading.Lock()  # ``resize`` on the loop, threads leaving on their own
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, call: SyncCall) -> None:
        """Run ``call`` on a thread; its ``on_done`` runs on this loop when it returns."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._unfinished += 1
        if len(self._workers) - self._leaving < min(self.threads, self._unfinished):
            worker = threading.Thread(
                target=self._work, name=f"hurtle-task-{self._started_threads}", daemon=True
            )
            self._started_threads += 1
            self._workers.append(worker)  # before it starts: it may take a leave notice at once
            worker.start()
        self._inbox.put(call)

    def _work(self) -> None:
        loop = self._loop
        assert loop is not None
        # SIGALRM is the profiler's tick, handled on the loop's thread: delivered
        # here, it would cut a task's system call short (EINTR) for nothing.
        if hasattr(signal, "pthread_sigmask"):  # POSIX
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        take, finished = self._inbox.get, self._finished
        while (call := take()) is not None:
            if call.cancelled:
                continue
            call.variables.run(_run_call, call)
            finished.append(call)
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    loop.call_soon_threadsafe(self._hand_back)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    return
        with self._resizing:  # told to stop (``resize`` or ``shutdown``): leave the pool
            self._leaving = max(0, self._leaving - 1)
            self._workers.remove(threading.current_thread())

    def _hand_back(self) -> None:
        """On the loop: every call finished since the last wake-up, in order."""
        self._wake_pending = False  # before draining: a call appended from now on wakes us again
        finished = self._finished
        while finished:
            call = finished.popleft()
            self._unfinished -= 1
            self.completed += 1
            call.on_done(call)

    def resize(self, threads: int) -> None:
        """Run up to ``threads`` calls at once from now on (``-t auto``): more threads
        start as calls need them; threads past the new size leave once they are
        idle (a call already queued still runs first)."""
        self.threads = threads
        with self._resizing:
            extra = len(self._workers) - self._leaving - threads
            if extra > 0:
                self._leaving += extra
        for _ in range(extra):
            self._inbox.put(None)

    def thread_ids(self) -> list[int | None]:
        """The pool's threads, by ``threading.get_ident()``: where ``running.py`` looks."""
        return [worker.ident for worker in self._workers]

    def shutdown(self) -> None:
        """Stop the threads once they finish what they run; never wait for a stuck one."""
        for _ in range(len(self._workers)):
            self._inbox.put(None)


def _run_call(call: SyncCall) -> None:
    """On a pool thread, in the call's copy of its caller's context variables.
    ``call`` stays a local: the worker registry finds running calls by it (``running.py``)."""
    set_current(call.context)
    # Plain strings, for `hurtle profile dump`: py-spy shows a str local but not
    # an object's fields. ``context`` is the Job (None in tests of the pool alone).
    job = call.context
    if job is not None:
        task_name = job.task.name  # noqa: F841
        task_id = job.envelope.id  # noqa: F841
    call.started = time.time()
    try:
        call.outcome = Succeeded(call.fn(*call.args, **call.kwargs))
    except BaseException as exc:  # SystemExit too: the thread must live on
        call.outcome = failure(exc)
    call.finished = time.time()


run_call_code = _run_call.__code__  # the frame ``running.py`` looks for on a thread's stack
