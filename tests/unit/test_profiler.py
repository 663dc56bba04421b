"""The in-process sampler credits each sample to the task whose stack it is.

Each task burns CPU in a function named after it until the profiler has
credited it enough samples (so a slow machine only makes the test longer),
then the figures are read back as ``hurtle profile show`` would read them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hurtle import App
from hurtle.profiling import record
from hurtle.profiling.profiler import ProfileConfig, Profiler, profiled_tasks
from hurtle.profiling.record import Profile
from hurtle.worker.consumer import Consumer, WorkerConfig
from hurtle.worker.process import profiling, worker_connection

SAMPLES_WANTED = 8
GIVE_UP_AFTER = 30.0  # seconds: only a broken sampler takes this long


def seen_functions(profile: Profile) -> set[str]:
    return {record.Frame.parse(label).name.rsplit(".", 1)[-1] for stack in profile.stacks for label in stack}


async def run_profiled(app: App, *, threads: int = 8, hz: float = 200.0) -> dict[str, Profile]:
    """Run every queued task under a profiler; each task's profile, as written."""
    config = WorkerConfig(queues=app.queues(), threads=threads, burst=True, fetch_timeout=0.05)
    profiler = Profiler(profiled_tasks(app, ProfileConfig()), ProfileConfig(hz=hz), app)
    app.profiler_under_test = profiler  # type: ignore[attr-defined]  # what the tasks ask
    profiler.start()
    try:
        async with worker_connection(app) as connection:
            await Consumer(app, connection, config, profiler).run()
    finally:
        profiler.stop()
    profiles: dict[str, dict[str, int]] = {}
    for key, counts, highest in profiler.take():
        fields = profiles.setdefault(record.task_name(key), {})
        for name, value in {**counts, **highest}.items():
            fields[name] = fields.get(name, 0) + value
    return {name: Profile.from_tally(name, fields) for name, fields in profiles.items()}


def sampled_enough(app: App, function: str) -> bool:
    """Whether the profiler has credited ``function`` with enough samples yet."""
    profiler: Profiler = app.profiler_under_test  # type: ignore[attr-defined]
    with profiler._lock:
        stacks = [
            (name, value) for figures in profiler._figures.values() for name, value in figures.counts.items()
            if name.startswith(record.STACK)
        ]
    # A sample weighs the time since the one before: at least three quarters of an interval.
    least_weight = 0.75 * 1e6 / profiler.config.hz
    return sum(value for name, value in stacks if function in name) >= SAMPLES_WANTED * least_weight


def burn_until(app: App, function: str, burn: Callable[[], None]) -> None:
    deadline = time.monotonic() + GIVE_UP_AFTER
    while not sampled_enough(app, function) and time.monotonic() < deadline:
        burn()


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_two_async_tasks_interleaving_on_one_loop_each_get_their_own_samples(app: App) -> None:
    def burn_alpha() -> None:
        spin(0.002)

    def burn_beta() -> None:
        spin(0.002)

    @app.task
    async def alpha() -> None:
        deadline = time.monotonic() + GIVE_UP_AFTER
        while not (sampled_enough(app, "burn_alpha") and sampled_enough(app, "burn_beta")):
            burn_alpha()
            await asyncio.sleep(0)  # let beta run: the two interleave on the loop
            assert time.monotonic() < deadline

    @app.task
    async def beta() -> None:
        deadline = time.monotonic() + GIVE_UP_AFTER
        while not (sampled_enough(app, "burn_alpha") and sampled_enough(app, "burn_beta")):
            burn_beta()
            await asyncio.sleep(0)
            assert time.monotonic() < deadline

    alpha.send()
    beta.send()
    profiles = await run_profiled(app)

    assert "burn_alpha" in seen_functions(profiles[alpha.name])
    assert "burn_beta" not in seen_functions(profiles[alpha.name])
    assert "burn_beta" in seen_functions(profiles[beta.name])
    assert "burn_alpha" not in seen_functions(profiles[beta.name])
    assert profiles[alpha.name].async_executions == 1


async def test_two_sync_tasks_in_two_threads_of_one_process_each_get_their_own_samples(app: App) -> None:
    together = threading.Barrier(2, timeout=GIVE_UP_AFTER)

    def burn_gamma() -> None:
        spin(0.002)

    def burn_delta() -> None:
        spin(0.002)

    @app.task
    def gamma() -> None:
        together.wait()  # both run at once, in two threads
        burn_until(app, "burn_gamma", burn_gamma)

    @app.task
    def delta() -> None:
        together.wait()
        burn_until(app, "burn_delta", burn_delta)

    gamma.send()
    delta.send()
    profiles = await run_profiled(app, threads=2)

    assert "burn_gamma" in seen_functions(profiles[gamma.name])
    assert "burn_delta" not in seen_functions(profiles[gamma.name])
    assert "burn_delta" in seen_functions(profiles[delta.name])
    assert "burn_gamma" not in seen_functions(profiles[delta.name])
    assert profiles[gamma.name].sync_executions == 1


async def test_a_task_of_a_one_thread_worker_is_profiled(app: App) -> None:
    def burn_epsilon() -> None:
        spin(0.002)

    @app.task
    def epsilon() -> None:
        burn_until(app, "burn_epsilon", burn_epsilon)

    epsilon.send()
    profiles = await run_profiled(app, threads=1)

    profile = profiles[epsilon.name]
    assert "burn_epsilon" in seen_functions(profile)
    assert profile.executions == 1
    # The stack starts at the task's own function: the worker's frames below it are left out.
    assert all(record.Frame.parse(stack[0]).name.endswith("epsilon") for stack in profile.stacks)


async def test_a_sync_task_blocked_on_a_sleep_is_waiting_not_on_a_cpu(app: App) -> None:
    @app.task
    def nap() -> None:
        deadline = time.monotonic() + GIVE_UP_AFTER
        while not sampled_enough(app, "nap") and time.monotonic() < deadline:
            time.sleep(0.01)

    @app.task
    def toil() -> None:
        burn_until(app, "toil", lambda: spin(0.002))

    nap.send()
    toil.send()
    profiles = await run_profiled(app)

    napping, toiling = profiles[nap.name], profiles[toil.name]
    assert napping.waiting_us > napping.cpu_us  # asleep most of its time
    # Spinning, on a CPU whenever the machine lets it: a busy machine lowers that
    # share, never to a sleeper's.
    assert toiling.cpu_us / toiling.wall_us > 2 * napping.cpu_us / napping.wall_us


async def test_a_sync_tasks_cpu_time_is_measured_whole_however_rarely_a_tick_catches_it(app: App) -> None:
    spent: list[int] = []  # the thread CPU time each execution measured itself

    @app.task
    def quick() -> None:
        started = time.thread_time_ns()
        spin(0.002)
        spent.append(time.thread_time_ns() - started)

    quick.send_many([() for _ in range(20)])
    profiles = await run_profiled(app, hz=10.0)  # a tick every 100 ms: most executions see none

    profile = profiles[quick.name]
    assert profile.executions == len(spent) == 20
    assert sum(spent) // 1000 <= profile.cpu_us <= profile.wall_us


async def test_only_the_tasks_chosen_are_profiled(app: App) -> None:
    @app.task(profile=True)
    def chosen() -> None: ...

    @app.task
    def other() -> None: ...

    assert profiled_tasks(app, None) == {chosen.name}
    assert profiled_tasks(app, ProfileConfig(tasks=frozenset({other.name}))) == {chosen.name, other.name}
    assert profiled_tasks(app, ProfileConfig()) == {chosen.name, other.name}


async def test_a_worker_with_nothing_to_profile_starts_no_sampler(app: App) -> None:
    @app.task
    def plain() -> None: ...

    async with worker_connection(app) as connection, profiling(app, WorkerConfig(), connection) as profiler:
        assert profiler is None
        assert not [t for t in threading.enumerate() if t.name == "hurtle-profiler"]


async def test_a_task_that_takes_the_sampling_signal_is_named_in_the_log(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import signal

    from hurtle.profiling import profiler as profiler_module
    from hurtle.tallies import MemoryTallies

    monkeypatch.setattr(profiler_module, "FLUSH_EVERY", 0.01)
    profiler = Profiler(frozenset(), ProfileConfig(), app)
    profiler.start()
    writer = asyncio.create_task(profiler.keep_writing(MemoryTallies()))
    previous = signal.signal(signal.SIGALRM, lambda *_: None)  # what a task's own alarm does
    try:
        deadline = time.monotonic() + GIVE_UP_AFTER
        while "other code took SIGALRM" not in caplog.text:
            assert time.monotonic() < deadline, "no warning logged"
            await asyncio.sleep(0.01)
    finally:
        signal.signal(signal.SIGALRM, previous)
        writer.cancel()
        profiler.stop()


def test_a_profile_option_without_profile_keeps_to_the_tasks_declared_profiled(
    app: App, tmp_path: Path
) -> None:
    from hurtle.cli.worker import _profile_config

    @app.task(profile=True)
    def chosen() -> None: ...

    @app.task
    def other() -> None: ...

    config = _profile_config(app, None, 100.0, 1.0, False, str(tmp_path / "profiles"))
    assert config is not None and config.directory == str(tmp_path / "profiles")
    assert profiled_tasks(app, config) == {chosen.name}
    everything = _profile_config(app, "all", 100.0, 1.0, False, str(tmp_path / "profiles"))
    assert profiled_tasks(app, everything) == {chosen.name, other.name}


async def test_a_profiled_process_hands_the_gil_over_sooner_and_gives_the_interval_back(app: App) -> None:
    import sys

    before = sys.getswitchinterval()
    profiler = Profiler(frozenset(), ProfileConfig(), app)
    profiler.start()
    try:
        assert sys.getswitchinterval() <= 0.001
    finally:
        profiler.stop()
    assert sys.getswitchinterval() == before


async def test_executions_running_across_a_write_are_counted_once_in_all(app: App) -> None:
    written: list[tuple[str, dict[str, int], dict[str, int]]] = []

    def write_now() -> None:  # what the periodic writer does, here in the middle of an execution
        profiler: Profiler = app.profiler_under_test  # type: ignore[attr-defined]
        written.extend(profiler.take())

    @app.task
    async def on_the_loop() -> None:
        write_now()

    @app.task
    def in_a_thread() -> None:
        write_now()

    for _ in range(3):
        on_the_loop.send()
        in_a_thread.send()
    profiles = await run_profiled(app, threads=1)

    for task in (on_the_loop, in_a_thread):
        key = record.key(task.name)
        mid_run = sum(counts.get(record.EXECUTIONS, 0) for name, counts, _ in written if name == key)
        at_the_end = profiles[task.name].executions if task.name in profiles else 0
        assert mid_run + at_the_end == 3
