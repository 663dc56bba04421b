"""The thread pool of sync tasks: calls in, outcomes back on the loop, threads only as needed."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

from hurtle.worker.executors import SyncCall, ThreadExecutor
from hurtle.worker.outcome import Failed, Succeeded


async def run_calls(executor: ThreadExecutor, calls: list[tuple[Any, list[Any]]]) -> list[SyncCall]:
    """Submit each (fn, args); return the calls in the order their outcomes came back."""
    done: list[SyncCall] = []
    all_back = asyncio.Event()

    def on_done(call: SyncCall) -> None:
        done.append(call)
        if len(done) == len(calls):
            all_back.set()

    for fn, args in calls:
        executor.submit(SyncCall(fn, args, {}, None, on_done))
    await asyncio.wait_for(all_back.wait(), 10)
    return done


async def test_outcomes_come_back_on_the_loop_thread_with_their_times() -> None:
    executor = ThreadExecutor(4)
    loop_thread = threading.current_thread()
    seen_on: list[threading.Thread] = []

    def add(x: int, y: int) -> int:
        seen_on.append(threading.current_thread())
        return x + y

    (call,) = await run_calls(executor, [(add, [2, 3])])

    assert call.outcome == Succeeded(5)
    assert 0 < call.started <= call.finished
    assert seen_on and seen_on[0] is not loop_thread
    executor.shutdown()


async def test_a_task_that_raises_even_system_exit_fails_and_its_thread_serves_the_next() -> None:
    executor = ThreadExecutor(1)

    def leave() -> None:
        raise SystemExit(3)

    def fine() -> str:
        return "still here"

    first, second = await run_calls(executor, [(leave, []), (fine, [])])

    assert isinstance(first.outcome, Failed) and first.outcome.error.startswith("SystemExit")
    assert second.outcome == Succeeded("still here")
    executor.shutdown()


async def test_threads_start_only_as_calls_need_them_and_never_past_the_limit() -> None:
    executor = ThreadExecutor(3)

    await run_calls(executor, [(int, [])])
    assert len(executor._workers) == 1

    release = threading.Event()
    blocking = [(release.wait, [10.0]) for _ in range(5)]
    pending = asyncio.ensure_future(run_calls(executor, blocking))
    await asyncio.sleep(0)
    assert len(executor._workers) == 3
    release.set()
    await pending
    executor.shutdown()


async def test_a_call_cancelled_before_a_thread_took_it_never_runs() -> None:
    executor = ThreadExecutor(1)
    release = threading.Event()
    ran: list[str] = []
    back: list[SyncCall] = []
    last_back = asyncio.Event()

    def on_done(call: SyncCall) -> None:
        back.append(call)
        if call is last:
            last_back.set()

    blocker = SyncCall(release.wait, [10.0], {}, None, on_done)
    skipped = SyncCall(ran.append, ["ran"], {}, None, on_done)
    last = SyncCall(ran.append, ["last"], {}, None, on_done)

    executor.submit(blocker)
    executor.submit(skipped)
    skipped.cancelled = True
    executor.submit(last)
    release.set()
    await asyncio.wait_for(last_back.wait(), 10)

    assert ran == ["last"]
    assert skipped not in back
    executor.shutdown()


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


async def test_a_task_sees_the_context_variables_of_the_loop_that_started_it() -> None:
    executor = ThreadExecutor(2)
    request_id.set("r-42")  # e.g. bound by a logging library in an on_worker_start hook

    (call,) = await run_calls(executor, [(request_id.get, [])])

    assert call.outcome == Succeeded("r-42")
    executor.shutdown()


async def test_a_resized_pool_runs_every_call_and_keeps_no_more_threads_than_its_last_size() -> None:
    # Given a pool shrunk and grown while calls are queued (-t auto's moves)
    executor = ThreadExecutor(8)
    gate = threading.Event()
    calls: list[tuple[Any, list[Any]]] = [(gate.wait, [10])] * 8 + [(abs, [-1])] * 200
    running = asyncio.ensure_future(run_calls(executor, calls))
    await asyncio.sleep(0)
    for size in (2, 16, 3, 8, 4):
        executor.resize(size)
    gate.set()

    done = await running

    # Then every call came back, and the threads told to leave have left: at most the last size
    assert len(done) == len(calls)
    assert executor.completed == len(calls)
    deadline = asyncio.get_running_loop().time() + 10
    while len(executor.thread_ids()) > 4 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert 1 <= len(executor.thread_ids()) <= 4
    executor.shutdown()


async def test_a_pool_grown_after_shrinking_starts_threads_for_its_new_size() -> None:
    executor = ThreadExecutor(4)
    await run_calls(executor, [(abs, [-1])] * 4)
    executor.resize(1)
    executor.resize(6)
    gate = threading.Event()
    started = threading.Semaphore(0)

    def wait() -> None:
        started.release()
        gate.wait(10)

    running = asyncio.ensure_future(run_calls(executor, [(wait, [])] * 6))
    # Then six calls run at once: a thread for each, whatever the earlier shrink asked
    for _ in range(6):
        assert await asyncio.to_thread(started.acquire, True, 10)
    gate.set()
    await running
    executor.shutdown()
