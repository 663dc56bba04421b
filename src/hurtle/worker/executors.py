"""Where a task's code runs, each with its own time-limit rule.

- ``AsyncExecutor``: a coroutine on the process's loop; past its time limit it
  is cancelled (``asyncio.wait_for``), which frees its slot at once.
- ``ThreadExecutor``: a sync function in the thread pool; a thread cannot be
  interrupted, so past its time limit the task is reported failed and the
  process asks to be recycled (stop fetching, finish the rest, exit, be
  replaced). With ``--threads 1`` that is the process running one task at a
  time being killed and replaced.

Both return an ``Outcome`` and never raise for the task's own errors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from hurtle.errors import Retry, TimeLimitExceeded
from hurtle.worker.outcome import Failed, Outcome, Succeeded


def failure(exc: BaseException) -> Failed:
    """The Outcome of an exception, with the traceback text the caller will see."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, Retry):
        return Failed(error, text, retryable=True, delay=exc.delay)
    return Failed(error, text)


def time_limit_failure(name: str, timeout: float) -> Failed:
    error = f"TimeLimitExceeded: task {name} ran past its {timeout:g}s time limit"
    return Failed(error, error + "\n", time_limit=True)


class AsyncExecutor:
    async def run(
        self,
        name: str,
        fn: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Outcome:
        if timeout is not None:
            return await self._run_limited(name, fn(*args, **kwargs), timeout)
        try:
            value = await fn(*args, **kwargs)
        except (Exception, TimeLimitExceeded) as exc:
            return failure(exc)
        return Succeeded(value)

    async def _run_limited(self, name: str, coro: Coroutine[Any, Any, Any], timeout: float) -> Outcome:
        """Not ``wait_for``: a ``TimeoutError`` the task raises itself (an HTTP
        timeout) is its own failure, not the time limit, and on 3.11 the two
        are the same class."""
        task = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            await asyncio.wait({task})  # let it run its finally blocks
            return time_limit_failure(name, timeout)
        try:
            return Succeeded(task.result())
        except (Exception, TimeLimitExceeded) as exc:
            return failure(exc)


class ThreadExecutor:
    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="hurtle-task")
        #: Set when a thread is stuck past its time limit: the process must be replaced.
        self.needs_recycle = False

    async def run(
        self,
        name: str,
        fn: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        # Copy the context so contextvars set by middleware reach the thread.
        call = functools.partial(contextvars.copy_context().run, _capture, fn, args, kwargs)
        future = _submit(loop, self.pool, call)
        if timeout is None:
            return await future
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            self.needs_recycle = True
            return time_limit_failure(name, timeout)

    def shutdown(self) -> None:
        """Stop taking work; never wait for a stuck thread."""
        self.pool.shutdown(wait=False, cancel_futures=True)


def _capture(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Outcome:
    try:
        return Succeeded(fn(*args, **kwargs))
    except Exception as exc:
        return failure(exc)


def _submit(
    loop: asyncio.AbstractEventLoop, pool: concurrent.futures.Executor, call: Callable[[], Outcome]
) -> asyncio.Future[Outcome]:
    """``loop.run_in_executor`` with one thread-safe hand-back instead of its
    two-way future chaining, which was a third of the event loop's CPU time per
    no-op sync task (measured 140 -> 90 us; docs/benchmarks.md). Cancelling the
    returned future still cancels a call that has not started."""
    future: asyncio.Future[Outcome] = loop.create_future()
    done = pool.submit(call)
    done.add_done_callback(functools.partial(_hand_back, loop, future))
    future.add_done_callback(functools.partial(_cancel_unstarted, done))
    return future


def _hand_back(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Outcome],
    done: concurrent.futures.Future[Outcome],
) -> None:
    """In the pool's thread: give the finished call to the loop."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
        loop.call_soon_threadsafe(_settle_future, future, done)


def _settle_future(
    future: asyncio.Future[Outcome], done: concurrent.futures.Future[Outcome]
) -> None:
    if future.done():
        return
    if done.cancelled():
        future.cancel()
    elif (exc := done.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(done.result())


def _cancel_unstarted(
    done: concurrent.futures.Future[Outcome], future: asyncio.Future[Outcome]
) -> None:
    if future.cancelled():
        done.cancel()
