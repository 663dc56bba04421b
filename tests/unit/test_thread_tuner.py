"""-t auto's decisions, fed made-up intervals: no clock, no threads, every step decided by the feed.

Most tuners here judge the interval right after a move (``warmup=0``) on one interval
(``window=1``), so each interval fed is one decision; the warm-up and the window have
tests of their own."""

from __future__ import annotations

import pytest

from hurtle.worker.thread_tuner import CLIMB_INTERVAL, INTERVAL, MAX_BACKOFF, Sample, ThreadTuner

ROOM_LAG = 0.0  # the loop on time: the GIL has room
FULL_LAG = 0.04  # the loop 40 ms late: the GIL is full


def interval(
    rate: float, cpu_per_task: float = 0.0001, *, short: float = 0.0, lag: float = ROOM_LAG
) -> Sample:
    """One second at ``rate`` tasks/s, each costing ``cpu_per_task`` CPU seconds."""
    return Sample(seconds=1.0, completed=int(rate), cpu_seconds=rate * cpu_per_task,
                  short_fetches=short, loop_lag=lag)


def feed(tuner: ThreadTuner, rate_at: dict[int, float], steps: int, *, lag: float = ROOM_LAG) -> list[int]:
    """Each interval's rate is ``rate_at`` the pool's current size; the sizes chosen, in order."""
    return [tuner.observe(interval(rate_at[tuner.threads], lag=lag)) for _ in range(steps)]


def climbed(cap: int = 64, **options: int) -> ThreadTuner:
    """A tuner whose first climb took it from 8 to ``cap`` threads, settled there."""
    tuner = ThreadTuner(start=8, cap=cap, warmup=0, window=1, **options)
    while tuner.interval == CLIMB_INTERVAL:
        tuner.observe(interval(1000))
    assert tuner.threads == cap
    return tuner


# -- the first climb --------------------------------------------------------------


def test_a_busy_pool_with_room_climbs_fourfold_to_the_cap_on_room_alone() -> None:
    # Given I/O tasks whose first intervals' rates say little: they fall as the pool grows
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1)

    sizes = feed(tuner, {8: 1000, 32: 800, 64: 700}, steps=3)

    assert sizes == [32, 64, 64]
    assert tuner.interval == INTERVAL  # at the cap: the first climb is over


def test_the_first_climb_stops_where_the_room_ends() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1)
    assert tuner.observe(interval(1000)) == 32

    assert tuner.observe(interval(1500, lag=FULL_LAG)) == 32  # the GIL is full at 32: stay

    assert tuner.interval == INTERVAL


def test_the_first_climb_is_judged_on_short_intervals_then_the_settled_pool_on_longer_ones() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0)
    assert tuner.interval == CLIMB_INTERVAL

    feed(tuner, {8: 1000, 32: 3500}, steps=1)  # 8 -> 32: still climbing
    assert tuner.interval == CLIMB_INTERVAL

    feed(tuner, {32: 3500, 64: 6000}, steps=2)  # 32 -> 64, the cap: settled
    assert tuner.interval == INTERVAL > CLIMB_INTERVAL


def test_a_process_with_no_cpu_to_spare_does_not_grow() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1)

    size = tuner.observe(Sample(seconds=1.0, completed=1000, cpu_seconds=0.95, short_fetches=0.0))

    assert size == 4  # no room above: it tries fewer instead


def test_system_time_spent_waiting_on_io_leaves_room_to_grow() -> None:
    # Given threads whose round trips cost the process 0.95 CPU seconds a second, most of
    # it in system calls, off the GIL
    tuner = ThreadTuner(start=8, cap=64, warmup=0)

    size = tuner.observe(Sample(seconds=1.0, completed=1000, cpu_seconds=0.95, short_fetches=0.0,
                                user_seconds=0.45))

    assert size == 32


# -- probes with room: more threads unless they clearly hurt ------------------------


def test_with_room_a_step_up_is_kept_unless_it_clearly_does_worse() -> None:
    # Given I/O tasks that gain nothing past 16 threads, and lose nothing either
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1, hold=0)
    tuner.observe(interval(1000, lag=FULL_LAG))  # no room at first: no climb, a probe down
    tuner.observe(interval(1000, lag=FULL_LAG))  # 4 as good: kept
    assert tuner.threads == 4
    assert feed(tuner, {4: 1000, 8: 1600}, steps=2) == [8, 8]  # room again: up, better: kept

    rates = {4: 1000, 8: 1600, 16: 1650}
    assert feed(tuner, rates, steps=2) == [4, 8]  # then a probe down: worse, undone
    assert feed(tuner, rates, steps=2) == [16, 16]  # up: no gain, no harm: kept


def test_a_step_up_that_clearly_lowers_throughput_is_undone() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1, hold=0)
    feed(tuner, {8: 1000, 32: 2000}, steps=1)
    tuner.observe(interval(2000, lag=FULL_LAG))  # the climb ends at 32
    tuner.observe(interval(2000))  # a probe up to 64

    assert tuner.observe(interval(1500)) == 32


def test_more_threads_that_only_add_contention_are_undone() -> None:
    # Given tasks that queue for one lock: 64 threads finish as many as 32, each for more CPU
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1, hold=0)
    feed(tuner, {8: 1000, 32: 2000}, steps=1)
    tuner.observe(interval(2000, lag=FULL_LAG))
    tuner.observe(interval(2000, cpu_per_task=0.0001))  # a probe up to 64

    assert tuner.observe(interval(2000, cpu_per_task=0.0002)) == 32


def test_at_the_cap_with_room_fewer_threads_are_kept_only_if_clearly_better() -> None:
    tuner = climbed(hold=0)

    assert feed(tuner, {64: 1000, 32: 1050}, steps=2) == [32, 64]  # as good is not enough: undone
    assert feed(tuner, {64: 1000, 32: 1300}, steps=2) == [32, 32]  # clearly better: kept


def test_with_room_below_the_cap_probes_go_up_and_down_in_turn() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1, hold=0)
    feed(tuner, {8: 1000, 32: 2000}, steps=1)
    tuner.observe(interval(2000, lag=FULL_LAG))  # settled at 32

    assert feed(tuner, {32: 2000, 64: 1000}, steps=2) == [64, 32]  # up: worse, undone
    assert feed(tuner, {32: 2000, 16: 1000}, steps=2) == [16, 32]  # then down: worse, undone
    assert feed(tuner, {32: 2000, 64: 1000}, steps=1) == [64]  # then up again


def test_a_pool_never_grows_past_its_cap() -> None:
    tuner = ThreadTuner(start=8, cap=20, warmup=0, window=1, hold=0)

    sizes = feed(tuner, {4: 500, 5: 600, 8: 1000, 10: 1200, 16: 2000, 20: 2500}, steps=30)

    assert max(sizes) == 20


# -- probes without room: fewer threads when they do as well ------------------------


def test_a_busy_gil_stops_the_pool_growing_and_it_shrinks_while_fewer_threads_do_as_well() -> None:
    # Given CPU-bound tasks: the loop wakes late (the GIL is busy) and the rate is the same at any size
    tuner = ThreadTuner(start=8, cap=64, warmup=0, floor=2, hold=0, window=1)
    sizes = []
    for _ in range(6):
        sizes.append(tuner.observe(interval(500, cpu_per_task=0.002, lag=FULL_LAG)))

    assert max(sizes) <= 8
    assert sizes == [4, 4, 2, 2, 2, 2]  # a step down per probe, each kept: as good with fewer
    assert tuner.threads == 2


def test_fewer_threads_that_do_worse_are_undone() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1)
    tuner.observe(interval(1000, cpu_per_task=0.002, lag=FULL_LAG))  # no room: probe down to 4

    assert tuner.observe(interval(700, cpu_per_task=0.002, lag=FULL_LAG)) == 8


def test_as_many_tasks_for_less_cpu_each_counts_as_as_good() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1)
    tuner.observe(interval(1000, cpu_per_task=0.002, lag=FULL_LAG))  # probe down to 4

    assert tuner.observe(interval(970, cpu_per_task=0.0015, lag=FULL_LAG)) == 4


# -- judging on a window -------------------------------------------------------------


def test_a_probe_is_judged_on_the_mean_of_its_window_not_on_one_interval() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=3, hold=0)
    full = [interval(1000, lag=FULL_LAG)] * 3
    assert [tuner.observe(sample) for sample in full] == [8, 8, 4]  # a full window, then a probe

    # Fewer threads: one interval far below, the window's mean as good
    after = [interval(600, lag=FULL_LAG), interval(1200, lag=FULL_LAG), interval(1250, lag=FULL_LAG)]
    assert [tuner.observe(sample) for sample in after] == [4, 4, 4]


def test_one_good_interval_does_not_keep_a_worse_size() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=3, hold=0)
    for _ in range(3):
        tuner.observe(interval(1000, lag=FULL_LAG))
    assert tuner.threads == 4

    after = [interval(1100, lag=FULL_LAG), interval(700, lag=FULL_LAG), interval(700, lag=FULL_LAG)]
    assert [tuner.observe(sample) for sample in after] == [4, 4, 8]


def test_a_probe_undone_doubles_the_wait_before_the_next() -> None:
    tuner = climbed(hold=2)

    def intervals_until_a_probe() -> int:
        count = 0
        while tuner.threads == 64:
            tuner.observe(interval(1000))
            count += 1
        tuner.observe(interval(900))  # the probe down: worse, undone
        assert tuner.threads == 64
        return count

    waits = [intervals_until_a_probe() for _ in range(5)]

    assert waits == [3, 5, 9, 17, 17]  # the hold (2), then 4, 8, 16 (MAX_BACKOFF 8): each and the probe
    assert MAX_BACKOFF == 8


def test_the_window_must_be_at_least_one_interval() -> None:
    with pytest.raises(ValueError, match="window"):
        ThreadTuner(window=0)


# -- what is not judged -------------------------------------------------------------


def test_nothing_is_judged_while_the_queues_run_dry() -> None:
    # Given fetches that come back short: the queue, not the pool, sets the rate
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1)

    sizes = [tuner.observe(interval(rate, short=1.0)) for rate in (100, 5000, 10, 7000)]

    assert sizes == [8, 8, 8, 8]


def test_an_interval_in_which_nothing_finished_moves_nothing() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0, window=1)
    tuner.observe(interval(1000))  # the climb's first step

    assert tuner.observe(Sample(seconds=1.0, completed=0, cpu_seconds=0.0, short_fetches=0.0)) == 32


def test_after_settling_it_holds_then_probes_again() -> None:
    tuner = climbed(hold=3)

    sizes = feed(tuner, {64: 1000, 32: 800}, steps=5)

    assert sizes == [64, 64, 64, 32, 64]  # held for 3 intervals, then a probe down: worse, undone


def test_the_floor_and_the_cap_must_make_sense() -> None:
    with pytest.raises(ValueError, match="floor"):
        ThreadTuner(start=8, cap=4, warmup=0, floor=8)


def test_an_idle_pool_is_looked_at_on_the_longer_interval_until_tasks_finish_again() -> None:
    tuner = ThreadTuner(start=8, cap=64, warmup=0)

    tuner.observe(Sample(seconds=0.05, completed=0, cpu_seconds=0.0, short_fetches=1.0))
    assert tuner.interval == INTERVAL  # nothing to judge: no need to look often

    tuner.observe(interval(1000))
    assert tuner.interval == CLIMB_INTERVAL  # a burst came: its climb goes quickly


def test_the_interval_right_after_a_move_is_not_judged() -> None:
    # Given a step whose first interval shows the threads starting, not the new size
    tuner = ThreadTuner(start=8, cap=64, warmup=1, window=1)
    tuner.observe(interval(1000, lag=FULL_LAG))  # no room: a probe down to 4
    assert tuner.threads == 4

    assert tuner.observe(interval(300, lag=FULL_LAG)) == 4  # the move's own interval: not judged
    assert tuner.observe(interval(1000, lag=FULL_LAG)) == 4  # judged on the next: as good, kept


def test_short_fetches_while_the_threads_stay_busy_are_judged_not_taken_for_a_dry_queue() -> None:
    # Given a broker whose fetches hand out what was buffered (RabbitMQ): most come back
    # short while the queue is full behind them, and every thread has a task
    tuner = ThreadTuner(start=8, cap=64, warmup=0)
    busy = Sample(seconds=1.0, completed=1000, cpu_seconds=0.1, short_fetches=0.9, occupancy=0.95)
    idle = Sample(seconds=1.0, completed=1000, cpu_seconds=0.1, short_fetches=0.9, occupancy=0.3)

    assert tuner.observe(busy) == 32  # judged: the pool was what held the tasks

    assert tuner.observe(idle) == 32  # threads waiting for messages: nothing judged
    assert tuner.interval == INTERVAL


def test_a_spread_adds_up_to_that_many_intervals_to_each_wait_before_a_probe() -> None:
    waits = set()
    for _ in range(200):
        tuner = climbed(hold=2, spread=3)
        count = 0
        while tuner.threads == 64:
            tuner.observe(interval(1000))
            count += 1
        waits.add(count)

    assert waits == {3, 4, 5, 6}  # the hold (2) and 0 to 3 more, then the probe's own interval
