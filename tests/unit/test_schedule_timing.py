"""When a schedule's ticks fall (``hurtle.schedule.timing``): the same on every
machine, in the schedule's time zone, and what is due after missed ticks."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from hurtle.errors import ConfigurationError
from hurtle.schedule.timing import MAX_CATCH_UP, Schedule

BERLIN = ZoneInfo("Europe/Berlin")


def ms(*parts: int, tz: timezone | ZoneInfo = timezone.utc) -> int:
    return round(datetime(*parts, tzinfo=tz).timestamp() * 1000)  # type: ignore[misc]


def cron(expression: str, tz: str = "UTC", catch_up: str = "skip") -> Schedule:
    return Schedule("s", "t", cron=expression, tz=tz, catch_up=catch_up)  # type: ignore[arg-type]


def test_the_next_cron_tick_is_strictly_after_the_moment_given() -> None:
    every_five = cron("*/5 * * * *")

    assert every_five.next_tick(ms(2026, 12, 6, 6, 7)) == ms(2026, 12, 6, 6, 10)
    assert every_five.next_tick(ms(2026, 12, 6, 6, 10)) == ms(2026, 12, 6, 6, 15)


def test_a_cron_expression_is_read_in_its_time_zone() -> None:
    at_nine = cron("0 9 * * *", tz="Europe/Berlin")

    assert at_nine.next_tick(ms(2026, 12, 6, 0, 0)) == ms(2026, 12, 6, 9, 0, tz=BERLIN)
    assert at_nine.next_tick(ms(2026, 12, 6, 0, 0)) == ms(2026, 12, 6, 8, 0)  # CET is UTC+1


def test_a_time_skipped_by_daylight_saving_runs_at_the_first_time_that_exists() -> None:
    # 2026-03-29: Berlin's clocks go from 02:00 to 03:00.
    half_past_two = cron("30 2 * * *", tz="Europe/Berlin")

    assert half_past_two.next_tick(ms(2026, 3, 29, 0, 0, tz=BERLIN)) == ms(2026, 3, 29, 3, 0, tz=BERLIN)


def test_a_time_repeated_by_daylight_saving_runs_twice_an_hour_apart() -> None:
    # 2026-10-25: Berlin's clocks go from 03:00 back to 02:00; 02:30 happens twice.
    half_past_two = cron("30 2 * * *", tz="Europe/Berlin")

    first = half_past_two.next_tick(ms(2026, 10, 25, 0, 0))
    second = half_past_two.next_tick(first)

    assert (first, second) == (ms(2026, 10, 25, 0, 30), ms(2026, 10, 25, 1, 30))


def test_every_ticks_on_multiples_of_its_interval_since_the_epoch() -> None:
    thirty = Schedule("s", "t", every=30.0)

    assert thirty.next_tick(1_000_000_001) == 1_000_020_000
    assert thirty.next_tick(1_000_020_000) == 1_000_050_000
    assert thirty.previous_tick(1_000_049_999) == 1_000_020_000


def test_nothing_is_due_before_the_next_tick() -> None:
    every_five = cron("*/5 * * * *")

    assert every_five.due(ms(2026, 12, 6, 6, 5), ms(2026, 12, 6, 6, 9, 59)) == []


def test_a_tick_is_due_from_its_very_moment() -> None:
    every_five = cron("*/5 * * * *")

    assert every_five.due(ms(2026, 12, 6, 6, 5), ms(2026, 12, 6, 6, 10)) == [ms(2026, 12, 6, 6, 10)]


def test_skip_sends_only_the_latest_of_several_missed_ticks() -> None:
    every_five = cron("*/5 * * * *", catch_up="skip")

    due = every_five.due(ms(2026, 12, 6, 5, 0), ms(2026, 12, 6, 6, 7))

    assert due == [ms(2026, 12, 6, 6, 5)]
    assert every_five.missed(ms(2026, 12, 6, 5, 0), ms(2026, 12, 6, 6, 7))


def test_all_sends_every_missed_tick_oldest_first() -> None:
    every_five = cron("*/5 * * * *", catch_up="all")

    due = every_five.due(ms(2026, 12, 6, 5, 50), ms(2026, 12, 6, 6, 7))

    assert due == [ms(2026, 12, 6, 5, 55), ms(2026, 12, 6, 6, 0), ms(2026, 12, 6, 6, 5)]
    assert not every_five.missed(ms(2026, 12, 6, 5, 50), ms(2026, 12, 6, 6, 7))


def test_all_is_bounded_to_the_latest_max_catch_up_ticks() -> None:
    every_second = Schedule("s", "t", every=1.0, catch_up="all")
    now = 10_000_000

    due = every_second.due(0, now)

    assert len(due) == MAX_CATCH_UP
    assert due[-1] == now and due[0] == now - (MAX_CATCH_UP - 1) * 1000
    assert every_second.missed(0, now)


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"cron": "61 * * * *"}, "is not a cron expression"),
        ({"cron": "* *"}, "is not a cron expression"),
        ({"cron": "not cron"}, "is not a cron expression"),
        ({}, "give a cron expression or every="),
        ({"cron": "* * * * *", "every": 5.0}, "give a cron expression or every="),
        ({"every": 0}, "every= must be a number of seconds"),
        ({"every": float("nan")}, "every= must be a number of seconds"),
        ({"every": 1.0, "tz": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"every": 1.0, "catch_up": "some"}, "catch_up must be"),
    ],
)
def test_a_schedule_that_cannot_work_is_refused_when_made(
    settings: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        Schedule("s", "t", **settings)  # type: ignore[arg-type]
