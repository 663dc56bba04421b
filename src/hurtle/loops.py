"""The event loops hurtle makes: uvloop's when it is installed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("hurtle.worker")

CANCEL_PATIENCE = 5.0  # seconds ``cancel_all`` spends on tasks that will not end


#: ``hurtle worker --loop``: ``auto`` picks by what the process runs (``worker_loop``).
LOOPS = ("auto", "asyncio", "uvloop")


def uvloop_installed() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def worker_loop(choice: str, runs_async: bool) -> str:
    """The event loop a worker process runs: ``choice``, or for ``auto`` uvloop (when
    installed) in a process that runs async tasks, and asyncio's own in one whose tasks
    are all sync.

    uvloop lets go of the GIL while libuv waits and takes it back for every callback
    it makes into Python. With a pool of threads running sync tasks, each of those
    takes waits for the threads (a thread back from its I/O takes the GIL whenever it
    is free), and the loop, which fetches and acknowledges their tasks, falls behind:
    io ``def`` tasks on Redis ran 8-11% faster on asyncio's loop (docs/benchmarks.md).
    asyncio's loop holds the GIL but in its ``select``. With async tasks uvloop's
    cheaper callbacks win (about 5%)."""
    if choice != "auto":
        return choice
    return "uvloop" if runs_async and uvloop_installed() else "asyncio"


def new_event_loop(kind: str = "uvloop") -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when ``kind`` is uvloop and it is installed, else asyncio's."""
    # uvloop's callbacks and thread hops cost less: one sync ``send`` on Redis, median
    # of 1,000, took 0.59 ms on asyncio's loop and 0.48 ms on uvloop's.
    if kind == "uvloop" and uvloop_installed():
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def cancel_all(tasks: Iterable[asyncio.Task[Any]], patience: float = CANCEL_PATIENCE) -> None:
    """Cancel ``tasks`` and wait until they end, cancelling again those that go on.

    One cancel is not always enough: a cancel that lands inside a client library's
    call can come out as an ordinary error, which a duty's loop catches and logs
    before it sleeps on (seen as worker processes that never finished stopping).
    So the cancel is repeated until each task ends, for ``patience`` seconds at most;
    what is left then is named in the log and left behind."""
    loop = asyncio.get_running_loop()
    pending = {task for task in tasks if not task.done()}
    deadline = loop.time() + patience
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            log.warning("%d task(s) would not end when cancelled: %s",
                        len(pending), ", ".join(sorted(task.get_name() for task in pending)))
            return
        _, pending = await asyncio.wait(pending, timeout=min(0.1, left))
