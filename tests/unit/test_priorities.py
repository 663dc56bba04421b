"""How a worker deals its free slots to queues (``hurtle.worker.priorities``) and the
quotas rule every broker follows (``hurtle.brokers.base.allot``)."""

from __future__ import annotations

import pytest

from hurtle.brokers.base import allot
from hurtle.worker.priorities import Dealer, QueueSpec, QueueSpecError


def test_allot_takes_each_queues_quota_then_fills_the_room_in_order() -> None:
    assert allot([9, 9, 9], [2, 1, 1], 6) == [4, 1, 1]
    assert allot([0, 9, 9], [2, 1, 1], 6) == [0, 5, 1]
    assert allot([1, 1, 9], [6, 6, 6], 6) == [1, 1, 4]
    assert allot([0, 0, 0], [6, 6, 6], 6) == [0, 0, 0]


def test_weights_are_dealt_smoothly_one_slot_at_a_time() -> None:
    dealer = Dealer(QueueSpec(("a", "b", "c"), (5, 2, 1)))

    picks = [dealer.quotas(1).index(1) for _ in range(16)]

    assert picks == [0, 1, 0, 0, 2, 0, 1, 0] * 2


def test_a_fetch_of_many_slots_gets_the_weights_share_and_the_remainder_carries_over() -> None:
    dealer = Dealer(QueueSpec(("a", "b", "c"), (5, 2, 1)))

    assert dealer.quotas(8) == [5, 2, 1]
    assert [sum(q) for q in zip(dealer.quotas(3), dealer.quotas(5), strict=True)] == [5, 2, 1]


def test_strict_gives_every_queue_every_slot_and_the_default_gives_no_quotas() -> None:
    assert Dealer(QueueSpec(("a", "b"), strict=True)).quotas(4) == [4, 4]
    assert Dealer(QueueSpec(("a", "b"))).quotas(4) is None
    assert Dealer(QueueSpec(("a",), (3,))).quotas(4) is None  # one queue: nothing to choose


def test_queue_specs_parse_names_weights_and_strictness() -> None:
    assert QueueSpec.parse(" high:5, low:1 ") == QueueSpec(("high", "low"), (5, 1))
    assert QueueSpec.parse("high,low", strict=True) == QueueSpec(("high", "low"), None, True)
    assert QueueSpec.parse("a:2,b:1").describe() == "a 2/3, b 1/3 (weighted)"


@pytest.mark.parametrize(
    "text", ["", ",", "a:0", "a:-1", "a:x", "a:", "a:1,b", ":3", "a,a"],
)
def test_a_bad_queue_spec_is_refused(text: str) -> None:
    with pytest.raises(QueueSpecError):
        QueueSpec.parse(text)


def test_weights_with_strict_are_refused() -> None:
    with pytest.raises(QueueSpecError, match="not both"):
        QueueSpec.parse("a:2,b:1", strict=True)
