"""The task history: its compact layout, its writer (``HistorySink``) and its reading."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from hurtle.observe.history import quantile, read_history
from hurtle.observe.history_layout import decode, encode, minute_key
from hurtle.observe.history_sink import HistorySink
from hurtle.observe.task_figures import BOUNDS, FAILED, RETRIED, SUCCEEDED, MinuteFigures, TaskFigures
from hurtle.tallies import MemoryTallies

NOW = 1_800_000_030.0  # 30 s into a minute
MINUTE = int(NOW // 60)
TTL = 3600.0


def _buckets(counts: Mapping[int, int]) -> list[int]:
    buckets = [0] * (len(BOUNDS) + 1)
    for index, count in counts.items():
        buckets[index] = count
    return buckets


# -- quantile: histogram_quantile's linear estimate -----------------------------------

def test_a_quantile_interpolates_linearly_within_the_bucket_its_rank_falls_in() -> None:
    # 10 in (0.1, 0.25], 10 in (0.25, 0.5]: the median is the first bucket's top, p75 midway up the second.
    buckets = _buckets({BOUNDS.index(0.25): 10, BOUNDS.index(0.5): 10})

    assert quantile(0.5, buckets) == pytest.approx(0.25)
    assert quantile(0.75, buckets) == pytest.approx(0.375)
    assert quantile(0.95, buckets) == pytest.approx(0.25 + 0.25 * 9 / 10)


def test_the_first_bucket_counts_from_zero() -> None:
    assert quantile(0.5, _buckets({0: 4})) == pytest.approx(BOUNDS[0] / 2)


def test_a_rank_in_the_unbounded_last_bucket_reads_as_the_last_bound() -> None:
    assert quantile(0.99, _buckets({len(BOUNDS): 3})) == BOUNDS[-1]


def test_nothing_counted_has_no_quantile() -> None:
    assert quantile(0.5, _buckets({})) is None


# -- layout: one key per minute, no zero field ----------------------------------------

def _figures() -> dict[tuple[str, str, int], MinuteFigures]:
    figures = TaskFigures()
    at = MINUTE * 60.0
    figures.ran("tasks.add", "default", SUCCEEDED, ready_at=at, started=at + 0.2, finished=at + 0.25)
    figures.ran("tasks.add", "default", FAILED, ready_at=at, started=at + 1.0, finished=at + 4.0)
    figures.ran("tasks.add", "weird|queue%", RETRIED, ready_at=at, started=at, finished=at + 0.003)
    figures.dead(None, "default", at + 61.0)
    return figures.take()


def test_figures_come_back_from_their_fields_as_they_were() -> None:
    figures = _figures()

    by_minute = encode(figures)

    assert sorted(by_minute) == [MINUTE, MINUTE + 1]
    for minute, fields in by_minute.items():
        decoded, added = decode(fields)
        assert added == {}
        expected = {(task, queue): f for (task, queue, m), f in figures.items() if m == minute}
        assert decoded.keys() == expected.keys()
        for key, figure in decoded.items():
            assert figure.outcomes == expected[key].outcomes
            assert figure.run == expected[key].run and figure.wait == expected[key].wait
            assert figure.run_seconds == pytest.approx(expected[key].run_seconds, abs=1e-6)
            assert figure.wait_seconds == pytest.approx(expected[key].wait_seconds, abs=1e-6)


def test_no_field_is_written_for_a_zero() -> None:
    fields = encode(_figures())[MINUTE]

    assert all(value != 0 for value in fields.values())
    # one success, one failure, one retry: 3 outcomes, and per run 1 run and 1 wait bucket
    # at most, plus the sums, over two queues.
    assert len(fields) <= 3 + 3 * 2 + 2 * 2 * 2


def test_fields_of_a_newer_version_are_skipped_when_read() -> None:
    fields = {"ok|default|tasks.add": 2, "zz|default|tasks.add": 9, "r99|default|tasks.add": 1, "what": 3}

    decoded, _ = decode(fields)

    assert decoded[("tasks.add", "default")].outcomes[SUCCEEDED] == 2
    assert sum(decoded[("tasks.add", "default")].run) == 0


# -- the sink ---------------------------------------------------------------------------

class FailingTallies(MemoryTallies):
    """A store that refuses adds while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def add(self, key: str, counts: Mapping[str, int], ttl: float, *,
                  highest: Mapping[str, int] | None = None) -> None:
        if self.down:
            raise ConnectionError("store away")
        await super().add(key, counts, ttl, highest=highest)


async def test_a_sink_that_cannot_write_keeps_its_figures_and_writes_them_once_later() -> None:
    store = FailingTallies()
    sink = HistorySink(store, TTL)
    first, second = _figures(), _figures()

    await sink.send(first)
    store.down = False
    await sink.send(second)
    await sink.send({})

    history = await read_history(store, 5, now=NOW + 60.0)
    assert history.tasks["tasks.add"].succeeded == 2
    assert history.tasks["tasks.add"].failed == 2
    assert history.tasks["tasks.add"].retried == 2
    assert history.tasks["(unreadable)"].dead == 2


async def test_two_sinks_writing_to_one_store_merge_by_adding() -> None:
    store = MemoryTallies()
    await HistorySink(store, TTL).send(_figures())
    await HistorySink(store, TTL).send(_figures())

    history = await read_history(store, 2, now=NOW + 60.0)

    add = history.tasks["tasks.add"]
    assert (add.succeeded, add.failed, add.retried, add.settled) == (2, 2, 2, 6)
    assert add.run_seconds == pytest.approx(2 * (0.05 + 3.0 + 0.003), abs=1e-5)
    assert history.queues["default"].settled == 4 + 2  # 2 dead, unreadable, in default
    assert history.queues["weird|queue%"].settled == 2


async def test_the_sample_of_messages_taken_in_is_raised_not_added() -> None:
    store = MemoryTallies()
    samples = iter([{"default": 100}, {"default": 90}, {"default": 130}])

    async def sample() -> dict[str, int]:
        return next(samples)

    sink = HistorySink(store, TTL, sample=sample)
    for _ in range(3):
        await sink.send(_figures())

    fields = await store.read(minute_key(int(time.time() // 60)))
    assert decode(fields)[1] == {"default": 130}


# -- reading ---------------------------------------------------------------------------

async def test_a_window_reads_only_its_minutes_and_sorts_tasks_by_run_time() -> None:
    store = MemoryTallies()
    figures = TaskFigures()
    old = (MINUTE - 10) * 60.0
    figures.ran("tasks.old", "default", SUCCEEDED, ready_at=old, started=old, finished=old + 50.0)
    at = MINUTE * 60.0
    figures.ran("tasks.slow", "default", SUCCEEDED, ready_at=at, started=at, finished=at + 2.0)
    for _ in range(10):
        figures.ran("tasks.quick", "default", SUCCEEDED, ready_at=at, started=at, finished=at + 0.01)
    await HistorySink(store, TTL).send(figures.take())

    recent = await read_history(store, 5, now=NOW)
    hour = await read_history(store, 60, now=NOW)

    assert [t.task for t in recent.by_run_time()] == ["tasks.slow", "tasks.quick"]
    assert [t.task for t in hour.by_run_time()] == ["tasks.old", "tasks.slow", "tasks.quick"]
    assert recent.span == pytest.approx(4.5)  # 4 whole minutes and half of this one
    assert recent.tasks["tasks.quick"].rate == pytest.approx(10 / 4.5)


async def test_rate_in_is_the_growth_of_the_sampled_count_over_the_minutes_between() -> None:
    store = MemoryTallies()
    await store.add(minute_key(MINUTE - 4), {"in|default": 1000}, TTL)
    await store.add(minute_key(MINUTE - 2), {"in|default": 1300}, TTL)
    await store.add(minute_key(MINUTE), {"in|default": 1600}, TTL)
    await store.add(minute_key(MINUTE), {"in|once": 5}, TTL)

    history = await read_history(store, 5, now=NOW)

    assert history.queues["default"].rate_in == pytest.approx(150.0)
    assert history.queues["once"].rate_in is None  # one sample says nothing of a rate


async def test_a_store_that_keeps_failing_is_logged_once_a_minute_not_at_every_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = HistorySink(FailingTallies(), TTL)

    with caplog.at_level("WARNING", logger="hurtle.history"):
        for _ in range(5):
            await sink.send(_figures())

    warned = [r.message for r in caplog.records if "could not write" in r.message]
    assert len(warned) == 1 and "ConnectionError: store away" in warned[0]


async def test_figures_older_than_the_history_are_dropped_not_kept_forever() -> None:
    store = FailingTallies()
    sink = HistorySink(store, 60.0)  # a history of one minute
    figures = TaskFigures()
    long_ago = time.time() - 3600.0
    figures.ran("tasks.old", "default", SUCCEEDED, ready_at=long_ago, started=long_ago, finished=long_ago)
    await sink.send(figures.take())
    store.down = False

    await sink.send({})

    assert await store.keys("history:") == []
