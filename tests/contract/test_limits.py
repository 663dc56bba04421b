"""Limit stores (``hurtle.limit_store``): rate buckets and leased permits shared by every worker.

The same specification for every broker that keeps limits (``limit_store()``).
Each test opens its stores on one backing store as separate worker processes
would: what one takes, another cannot. A broker that keeps none (RabbitMQ) is
skipped, saying so; a RabbitMQ app keeps its limits in its ``results=`` store.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hurtle.brokers import Broker, broker_class
from hurtle.limit_source import find_limits
from hurtle.limit_store import LimitStore, gcra_take

from .conftest import BROKERS, UrlFactory
from .support import eventually

LONG = 3600.0
SHORT = 0.3  # seconds: for the tests that wait for a permit to expire


class LimitStores:
    """Opens limit stores on one backing store, as separate processes would, and closes them."""

    def __init__(self, make: Callable[[], LimitStore]) -> None:
        self._make = make
        self._opened: list[LimitStore] = []

    def open(self) -> LimitStore:
        store = self._make()
        self._opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in reversed(self._opened):
            await store.close()


def _store_maker(factory: UrlFactory, tmp_path: Path) -> Callable[[], LimitStore]:
    url = factory(tmp_path, uuid.uuid4().hex)
    if broker_class(url)(url, visibility_timeout=30.0).limit_store() is None:
        pytest.skip(f"{broker_class(url).__name__} keeps no limits")

    def make() -> LimitStore:
        store = find_limits(url, None)
        assert store is not None
        return store

    return make


@pytest.fixture(params=BROKERS, ids=lambda f: f.__name__.removesuffix("_url"))
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LimitStores]:
    opened = LimitStores(_store_maker(request.param, tmp_path))
    yield opened
    await opened.close_all()


@pytest.fixture
def limits(stores: LimitStores) -> LimitStore:
    return stores.open()


# -- rates ---------------------------------------------------------------------


async def test_a_fresh_rate_gives_one_permit_and_says_when_the_next_comes(limits: LimitStore) -> None:
    first = await limits.take_rate("rate:a", 10.0, 1, 5)

    assert first.granted == 1
    assert 9.0 < first.wait <= 10.0


async def test_a_rate_over_its_limit_gives_nothing_and_the_wait_until_its_next_permit(
    stores: LimitStores,
) -> None:
    one, other = stores.open(), stores.open()
    await one.take_rate("rate:a", 10.0, 1, 1)

    refused = await other.take_rate("rate:a", 10.0, 1, 3)

    assert refused.granted == 0
    assert 9.0 < refused.wait <= 10.0


async def test_a_burst_gives_that_many_permits_at_once_then_one_per_interval(limits: LimitStore) -> None:
    burst = await limits.take_rate("rate:b", 10.0, 3, 5)
    after = await limits.take_rate("rate:b", 10.0, 3, 5)

    assert burst.granted == 3
    assert after.granted == 0
    assert 9.0 < after.wait <= 10.0


async def test_a_permit_comes_once_its_wait_has_passed(limits: LimitStore) -> None:
    taken = await limits.take_rate("rate:c", SHORT, 1, 1)
    refused = await limits.take_rate("rate:c", SHORT, 1, 1)
    assert taken.granted == 1 and refused.granted == 0

    await asyncio.sleep(refused.wait)  # the time the store itself named, not a guess

    assert (await limits.take_rate("rate:c", SHORT, 1, 1)).granted == 1


async def test_rates_of_different_keys_are_apart(limits: LimitStore) -> None:
    assert (await limits.take_rate("rate:x", LONG, 1, 1)).granted == 1
    assert (await limits.take_rate("rate:y", LONG, 1, 1)).granted == 1


async def test_of_many_takes_racing_for_one_rate_exactly_the_burst_wins(stores: LimitStores) -> None:
    contenders = [stores.open() for _ in range(8)]

    taken = await asyncio.gather(*(store.take_rate("rate:race", LONG, 3, 2) for store in contenders))

    assert sum(t.granted for t in taken) == 3


def test_permits_are_evenly_spaced_at_burst_one() -> None:
    """The arithmetic every store shares: N takes at each permit's due time get one each."""
    tat, now, granted = 0.0, 1000.0, 0
    for _ in range(50):
        taken, tat = gcra_take(tat, now, 0.05, 1, 10)
        granted += taken.granted
        assert taken.granted == 1
        now += taken.wait  # exactly when the next is due: a float's rounding must not refuse it
    assert granted == 50


# -- permits ---------------------------------------------------------------------


async def test_permits_go_to_the_first_holders_up_to_the_limit(stores: LimitStores) -> None:
    one, other = stores.open(), stores.open()

    assert await one.acquire("permits:a", ["h1", "h2", "h3"], 2, LONG) == 2
    assert await other.acquire("permits:a", ["h4"], 2, LONG) == 0
    assert await other.held("permits:a") == 2


async def test_a_released_permit_can_be_taken_by_another(stores: LimitStores) -> None:
    one, other = stores.open(), stores.open()
    await one.acquire("permits:a", ["h1", "h2"], 2, LONG)

    await one.release({"permits:a": ["h1"]})

    assert await other.acquire("permits:a", ["h3"], 2, LONG) == 1
    assert await other.held("permits:a") == 2


async def test_release_of_a_permit_not_held_is_no_error(limits: LimitStore) -> None:
    await limits.release({"permits:none": ["nobody"]})
    await limits.release({})
    assert await limits.held("permits:none") == 0


async def test_a_permit_not_renewed_expires_and_frees_its_place(stores: LimitStores) -> None:
    """A holder that dies stops renewing: its permit must not be held for ever."""
    dead, alive = stores.open(), stores.open()
    assert await dead.acquire("permits:e", ["crashed"], 1, SHORT) == 1

    async def taken() -> bool:
        return await alive.acquire("permits:e", ["next"], 1, LONG) == 1

    await eventually(taken, "the dead holder's permit to expire")
    assert await alive.held("permits:e") == 1


async def test_a_renewed_permit_outlives_its_first_ttl(stores: LimitStores) -> None:
    holder, other = stores.open(), stores.open()
    await holder.acquire("permits:r", ["running"], 1, 2.0)
    await holder.renew({"permits:r": ["running"]}, LONG)
    # A permit taken after the renewal, with the first's ttl: once it expired, so
    # would the first have, had the renewal not worked.
    await other.acquire("permits:clock", ["clock"], 1, 2.0)

    await eventually(lambda: _none_held(other, "permits:clock"), "the clock permit to expire")

    assert await other.held("permits:r") == 1
    assert await other.acquire("permits:r", ["waiting"], 1, LONG) == 0


async def _none_held(store: LimitStore, key: str) -> bool:
    return await store.held(key) == 0


async def test_renewing_an_expired_permit_does_not_take_it_back(stores: LimitStores) -> None:
    late, other = stores.open(), stores.open()
    await late.acquire("permits:l", ["stalled"], 1, SHORT)

    async def taken() -> bool:
        return await other.acquire("permits:l", ["new"], 1, LONG) == 1

    await eventually(taken, "the stalled holder's permit to expire")
    await late.renew({"permits:l": ["stalled"]}, LONG)

    assert await other.held("permits:l") == 1


async def test_of_many_acquires_racing_for_one_limit_exactly_the_limit_wins(stores: LimitStores) -> None:
    contenders = [stores.open() for _ in range(8)]

    given = await asyncio.gather(
        *(store.acquire("permits:race", [f"h{i}a", f"h{i}b"], 3, LONG) for i, store in enumerate(contenders))
    )

    assert sum(given) == 3
    assert await contenders[0].held("permits:race") == 3


async def test_a_broker_gives_the_same_limit_store_at_each_call(broker: Broker) -> None:
    store = broker.limit_store()
    if store is None:
        pytest.skip(f"{type(broker).__name__} keeps no limits")
    assert broker.limit_store() is store

