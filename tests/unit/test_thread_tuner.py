"""-t auto's decisions, fed made-up intervals: no clock, no threads, every step decided by the feed.

The tuners here judge the interval right after a move (``warmup=0``), so each interval
fed is one decision; the warm-up has a test of its own."""

from __future__ import annotations

import pytest

from hurtle.worker.thread_tuner import CLIMB_INTERVAL, INTERVAL, Sample, ThreadTuner


def interval(rate: float, cpu_per_task: float = 0.0001, *, short: float = 0.0, lag: float = 0.0) -> Sample:
    """One second at ``rate`` tasks/s, each costing ``cpu_per_task`` CPU seconds."""
    return Sample(seconds=1.0, completed=int(rate), cpu_seconds=rate * cpu_per_task,
                  short_fetches=short, loop_lag=lag)


def feed(
    tuner: ThreadTuner, rate_at: dict[int, float], steps: int, cpu_per_task: float = 0.0001
) -> list[int]:
    """Each interval's rate is ``rate_at`` the pool's current size; the sizes chosen, in order."""
    sizes = []
    for _ in range(steps):
        sizes.append(tuner.observe(interval(rate_at[tuner.threads], cpu_per_task)))
    return sizes


def test_a_pool_whose_throughput_grows_with_its_threads_climbs_fourfold_up_to_the_cap() -> None:
    # Given tasks that wait on I/O: each step up raises the rate
    tuner = ThreadTuner(start=8, cap=64, warmup=0)

    sizes = feed(tuner, {8: 1000, 16: 1900, 32: 3500, 64: 6000}, steps=3)

    assert sizes == [32, 64, 64]


def test_after_its_first_climb_the_pool_grows_by_doubling() -> None:
    tuner = ThreadTuner(start=8, cap=256, warmup=0, hold=0)
    rates = {2: 100, 4: 200, 8: 1000, 32: 1000, 16: 1000}
    feed(tuner, rates, steps=2)  # 8 -> 32 (no gain) -> back to 8: the first climb is over
    assert tuner.threads == 8

    assert tuner.observe(interval(800)) == 4  # a probe down (as good or not, it alternates)
    assert tuner.observe(interval(200)) == 8  # worse: undone
    assert tuner.observe(interval(1000)) == 16  # the next probe up doubles


def test_a_step_that_does_not_raise_throughput_is_undone() -> None:
    # Given I/O tasks that gain up to 32 threads and nothing past them
    tuner = ThreadTuner(start=8, cap=64, warmup=0)

    sizes = feed(tuner, {8: 1000, 16: 1900, 32: 3500, 64: 3550}, steps=4)

    assert sizes == [32, 64, 32, 32]


def test_a_pool_never_grows_past_its_cap() -> None:
    tuner = ThreadTuner(start=8, cap=20, warmup=0)

    sizes = feed(tuner, {4: 500, 5: 600, 8: 1000, 10: 1200, 16: 2000, 20: 2500}, steps=30)

    assert max(sizes) == 20


def test_as_many_tasks_for_less_cpu_each_counts_as_better() -> None:
    # Given no-op-like tasks: 16 threads finish as many per second, each for a third less CPU
    tuner = ThreadTuner(start=8, cap=16, warmup=0)
    tuner.observe(interval(1000, cpu_per_task=0.00015))

    assert tuner.observe(interval(1000, cpu_per_task=0.0001)) == 16
    assert tuner.observe(interval(1000, cpu_per_task=0.0001)) == 16  # settled, not undone


def test_a_busy_gil_stops_the_pool_growing_and_it_shrinks_while_fewer_threads_do_as_well() -> None:
    # Given CPU-bound tasks: the loop wakes late (the GIL is busy) and the rate is the same at any size
    tuner = ThreadTuner(start=8, cap=64, warmup=0, floor=2, hold=0)
    sizes = []
    for _ in range(6):
        sizes.append(tuner.observe(interval(500, cpu_per_task=0.002, lag=0.04)))

    assert max(sizes) <= 8
    assert sizes == [4, 4, 2, 2, 2, 2]  # a step down per probe, each kept: as good with fewer
    assert tuner.threads == 2


def test_a_process_with_no_cpu_to_spare_does_not_grow() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0)

    size = tuner.observe(Sample(seconds=1.0, completed=1000, cpu_seconds=0.95, short_fetches=0.0))

    assert size == 4  # no room above: it tries fewer instead


def test_fewer_threads_that_do_worse_are_undone() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0)
    tuner.observe(interval(1000, cpu_per_task=0.002, lag=0.04))  # no room: probe down to 4

    assert tuner.observe(interval(700, cpu_per_task=0.002, lag=0.04)) == 8


def test_nothing_is_judged_while_the_queues_run_dry() -> None:
    # Given fetches that come back short: the queue, not the pool, sets the rate
    tuner = ThreadTuner(start=8, cap=64, warmup=0)

    sizes = [tuner.observe(interval(rate, short=1.0)) for rate in (100, 5000, 10, 7000)]

    assert sizes == [8, 8, 8, 8]


def test_an_interval_in_which_nothing_finished_moves_nothing() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0)
    tuner.observe(interval(1000))  # a move up is being judged

    assert tuner.observe(Sample(seconds=1.0, completed=0, cpu_seconds=0.0, short_fetches=0.0)) == 32


def test_after_settling_it_holds_then_probes_again() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, hold=3)
    rates = {4: 800, 8: 1000, 32: 1010}
    sizes = feed(tuner, rates, steps=6)

    # up to 32 (no gain): back to 8, held for 3 intervals, then a probe down to 4 (worse): back to 8
    assert sizes == [32, 8, 8, 8, 8, 4]
    assert tuner.observe(interval(rates[4])) == 8


def test_the_floor_and_the_cap_must_make_sense() -> None:
    with pytest.raises(ValueError, match="floor"):
        ThreadTuner(start=8, cap=4, warmup=0, floor=8)


def test_the_first_climb_is_judged_on_short_intervals_then_the_settled_pool_on_longer_ones() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0)
    assert tuner.interval == CLIMB_INTERVAL

    feed(tuner, {8: 1000, 32: 3500, 64: 6000}, steps=2)  # 8 -> 32 -> 64: still climbing
    assert tuner.interval == CLIMB_INTERVAL

    feed(tuner, {64: 6000}, steps=1)  # at the cap, better than 32: settled
    assert tuner.interval == INTERVAL > CLIMB_INTERVAL


def test_an_idle_pool_is_looked_at_on_the_longer_interval_until_tasks_finish_again() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0)

    tuner.observe(Sample(seconds=0.05, completed=0, cpu_seconds=0.0, short_fetches=1.0))
    assert tuner.interval == INTERVAL  # nothing to judge: no need to look often

    tuner.observe(interval(1000))
    assert tuner.interval == CLIMB_INTERVAL  # a burst came: its climb is judged quickly


def test_the_interval_right_after_a_move_is_not_judged() -> None:
    # Given a step up whose first interval shows the threads starting, not the new size
    tuner = ThreadTuner(start=8, cap=64, warmup=1)
    assert tuner.observe(interval(1000)) == 32

    assert tuner.observe(interval(600)) == 32  # the move's own interval: not a reason to undo it
    assert tuner.observe(interval(3500)) == 64  # judged on the next: better, so climb on


def test_system_time_spent_waiting_on_io_leaves_room_to_grow() -> None:
    # Given threads whose round trips cost the process 0.95 CPU seconds a second, most of
    # it in system calls, off the GIL
    tuner = ThreadTuner(start=8, cap=64, warmup=0)

    size = tuner.observe(Sample(seconds=1.0, completed=1000, cpu_seconds=0.95, short_fetches=0.0,
                                user_seconds=0.45))

    assert size == 32


def test_short_fetches_while_the_threads_stay_busy_are_judged_not_taken_for_a_dry_queue() -> None:
    # Given a broker whose fetches hand out what was buffered (RabbitMQ): most come back
    # short while the queue is full behind them, and every thread has a task
    tuner = ThreadTuner(start=8, cap=64, warmup=0)
    busy = Sample(seconds=1.0, completed=1000, cpu_seconds=0.1, short_fetches=0.9, occupancy=0.95)
    idle = Sample(seconds=1.0, completed=1000, cpu_seconds=0.1, short_fetches=0.9, occupancy=0.3)

    assert tuner.observe(busy) == 32  # judged: the pool was what held the tasks

    assert tuner.observe(idle) == 32  # threads waiting for messages: nothing judged
    assert tuner.interval == INTERVAL
