"""Backoff policies: ``compute(attempt) -> seconds`` before retry number ``attempt``."""

from __future__ import annotations

import pytest

from hurtle import Constant, Exponential


def test_constant_waits_the_same_before_every_retry() -> None:
    backoff = Constant(2.5)

    assert [backoff.compute(n) for n in (1, 2, 10, 1000)] == [2.5] * 4


def test_exponential_without_jitter_doubles_from_its_base() -> None:
    backoff = Exponential(base=0.5, factor=2.0, cap=300.0, jitter=False)

    assert [backoff.compute(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_exponential_never_waits_longer_than_its_cap() -> None:
    backoff = Exponential(base=1.0, factor=10.0, cap=60.0, jitter=False)

    assert [backoff.compute(n) for n in (2, 3, 4)] == [10.0, 60.0, 60.0]


@pytest.mark.parametrize("attempt", [65, 66, 2000, 10**9])
def test_exponential_of_a_huge_attempt_is_the_cap_not_an_overflow(attempt: int) -> None:
    assert Exponential(cap=300.0, jitter=False).compute(attempt) == 300.0


def test_an_attempt_below_one_counts_as_the_first_retry() -> None:
    backoff = Exponential(base=0.5, jitter=False)

    assert backoff.compute(0) == backoff.compute(1) == 0.5


@pytest.mark.parametrize("attempt", [1, 3, 9, 100])
def test_jitter_spreads_a_delay_between_its_half_and_itself(attempt: int) -> None:
    backoff = Exponential(base=0.5, factor=2.0, cap=100.0, jitter=True)
    full = Exponential(base=0.5, factor=2.0, cap=100.0, jitter=False).compute(attempt)

    delays = [backoff.compute(attempt) for _ in range(500)]

    assert all(full / 2 <= d <= full for d in delays)
    assert len(set(delays)) > 1, "jitter produced one value"


def test_the_default_exponential_backoff_starts_at_half_a_second_and_jitters() -> None:
    backoff = Exponential()

    assert (backoff.base, backoff.factor, backoff.cap, backoff.jitter) == (0.5, 2.0, 300.0, True)
