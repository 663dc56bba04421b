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
import contextvars
import functools
import traceback
from collections.abc import Callable
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
        try:
            if timeout is None:
                value = await fn(*args, **kwargs)
            else:
                value = await asyncio.wait_for(fn(*args, **kwargs), timeout)
        except asyncio.TimeoutError:
            if timeout is None:
                raise
            return time_limit_failure(name, timeout)
        except asyncio.CancelledError:
            raise
        except (Exception, TimeLimitExceeded) as exc:
            return failure(exc)
        return Succeeded(value)


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
        future = loop.run_in_executor(self.pool, call)
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
