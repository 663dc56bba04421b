"""Tally stores (``hurtle.tallies``): keys of integer fields, merged by adding.

The same specification for every broker that keeps tallies (``tally_store()``)
and for the directory store (``--profile-dir``). Each test opens its stores on
one backing store as separate worker processes would: two stores adding to one
key must see one sum.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hurtle.brokers import Broker, broker_class
from hurtle.tallies import TallyStore
from hurtle.tally_dir import DirectoryTallies
from hurtle.tally_source import open_tallies

from .conftest import BROKERS, UrlFactory
from .support import eventually

LONG_TTL = 3600.0
SHORT_TTL = 0.3  # seconds: for the tests that wait for a key to expire


class TallyStores:
    """Opens tally stores on one backing store, as separate processes would, and closes them."""

    def __init__(self, make: Callable[[int], TallyStore]) -> None:
        self._make = make
        self._opened: list[TallyStore] = []

    def open(self) -> TallyStore:
        store = self._make(len(self._opened))
        self._opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in reversed(self._opened):
            await store.close()


def _store_maker(factory: UrlFactory | None, tmp_path: Path) -> Callable[[int], TallyStore]:
    if factory is None:
        # One file per store, as one per process: a store is a process here.
        return lambda n: DirectoryTallies(tmp_path / "tallies", writer=f"process-{n}")
    url = factory(tmp_path, uuid.uuid4().hex)
    if broker_class(url)(url, visibility_timeout=30.0).tally_store() is None:
        pytest.skip(f"{broker_class(url).__name__} keeps no tallies")
    return lambda n: open_tallies(url, None, None)


@pytest.fixture(
    params=[*BROKERS, None], ids=lambda f: "directory" if f is None else f.__name__.removesuffix("_url")
)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TallyStores]:
    opened = TallyStores(_store_maker(request.param, tmp_path))
    yield opened
    await opened.close_all()


@pytest.fixture
def tallies(stores: TallyStores) -> TallyStore:
    return stores.open()


async def test_adds_from_two_processes_to_one_key_merge_by_adding(stores: TallyStores) -> None:
    first, second = stores.open(), stores.open()

    await first.add("profile:a", {"n": 1, "wall": 250}, LONG_TTL)
    await second.add("profile:a", {"n": 2, "cpu": 40}, LONG_TTL)
    await first.add("profile:a", {"wall": 50}, LONG_TTL)

    expected = {"n": 3, "wall": 300, "cpu": 40}
    assert await first.read("profile:a") == expected
    assert await second.read("profile:a") == expected


async def test_a_key_never_added_to_reads_empty(tallies: TallyStore) -> None:
    assert await tallies.read("never") == {}


async def test_an_add_of_no_fields_makes_no_key(tallies: TallyStore) -> None:
    await tallies.add("empty", {}, LONG_TTL, highest={})

    assert await tallies.keys("") == []


async def test_a_broker_gives_the_same_tally_store_at_each_call(broker: Broker) -> None:
    store = broker.tally_store()
    if store is None:
        pytest.skip(f"{type(broker).__name__} keeps no tallies")

    assert broker.tally_store() is store


async def test_highest_raises_a_field_to_the_largest_value_seen(stores: TallyStores) -> None:
    first, second = stores.open(), stores.open()

    await first.add("k", {"n": 1}, LONG_TTL, highest={"peak": 500, "last": -20})
    await second.add("k", {"n": 1}, LONG_TTL, highest={"peak": 200, "last": -30})
    await first.add("k", {}, LONG_TTL, highest={"peak": 700, "last": -25})

    assert await second.read("k") == {"n": 2, "peak": 700, "last": -20}


async def test_highest_compares_integers_exactly_past_double_precision(tallies: TallyStore) -> None:
    big = 2**62 + 1  # the doubles nearest to it and to big - 1 are one and the same

    await tallies.add("k", {}, LONG_TTL, highest={"peak": big - 1})
    await tallies.add("k", {}, LONG_TTL, highest={"peak": big})
    await tallies.add("k", {}, LONG_TTL, highest={"peak": big - 2})

    assert await tallies.read("k") == {"peak": big}


async def test_counts_may_be_negative_and_sum_below_zero(tallies: TallyStore) -> None:
    await tallies.add("k", {"rss": 4096, "other": -1}, LONG_TTL)
    await tallies.add("k", {"rss": -10_000}, LONG_TTL)

    assert await tallies.read("k") == {"rss": -5904, "other": -1}


async def test_a_key_is_gone_once_its_ttl_passed_and_comes_back_from_nothing(tallies: TallyStore) -> None:
    await tallies.add("brief", {"n": 5}, SHORT_TTL, highest={"peak": 9})
    await tallies.add("kept", {"n": 1}, LONG_TTL)

    async def expired() -> bool:
        return await tallies.read("brief") == {}

    await eventually(expired, "the short-lived tally to expire")

    assert await tallies.keys("") == ["kept"]
    await tallies.add("brief", {"n": 1}, LONG_TTL, highest={"peak": 2})
    assert await tallies.read("brief") == {"n": 1, "peak": 2}
    assert await tallies.read("kept") == {"n": 1}


async def test_each_add_gives_the_key_its_ttl_again(tallies: TallyStore) -> None:
    await tallies.add("renewed", {"n": 1}, SHORT_TTL)
    await tallies.add("marker", {"n": 1}, SHORT_TTL)
    await tallies.add("renewed", {"n": 1}, LONG_TTL)

    async def marker_expired() -> bool:
        return await tallies.read("marker") == {}

    await eventually(marker_expired, "the marker, added with the first add's ttl, to expire")

    assert await tallies.read("renewed") == {"n": 2}


async def test_keys_lists_the_live_keys_that_start_with_a_prefix_sorted(stores: TallyStores) -> None:
    first, second = stores.open(), stores.open()
    await first.add("profile:b", {"n": 1}, LONG_TTL)
    await second.add("profile:a", {"n": 1}, LONG_TTL)
    await second.add("profile:a", {"n": 1}, LONG_TTL)
    await first.add("other:a", {"n": 1}, LONG_TTL)

    assert await first.keys("profile:") == ["profile:a", "profile:b"]
    assert await second.keys("") == ["other:a", "profile:a", "profile:b"]
    assert await second.keys("profile:c") == []


@pytest.mark.parametrize("prefix", ["p*", "p?", "p[", "p[a]", "p\\", "p]", "p%", "p_"])
async def test_keys_takes_pattern_characters_in_a_prefix_literally(tallies: TallyStore, prefix: str) -> None:
    names = ["p*x", "p?x", "p[a]x", "p\\x", "p]x", "pax", "pbx", "p[x", "p%x", "p_x"]
    for name in names:
        await tallies.add(name, {"n": 1}, LONG_TTL)

    assert await tallies.keys(prefix) == sorted(n for n in names if n.startswith(prefix))


async def test_delete_removes_keys_with_every_field_for_every_process(stores: TallyStores) -> None:
    first, second = stores.open(), stores.open()
    await first.add("gone", {"n": 1}, LONG_TTL, highest={"peak": 7})
    await second.add("gone", {"n": 2}, LONG_TTL)
    await second.add("stays", {"n": 3}, LONG_TTL)

    await first.delete(["gone", "never-added"])

    assert await second.read("gone") == {}
    assert await second.keys("") == ["stays"]
    assert await first.read("stays") == {"n": 3}


async def test_an_add_after_a_delete_starts_from_nothing(stores: TallyStores) -> None:
    first, second = stores.open(), stores.open()
    await second.add("k", {"n": 5}, LONG_TTL, highest={"peak": 100})
    await first.delete(["k"])

    await second.add("k", {"n": 1}, LONG_TTL, highest={"peak": 3})

    assert await first.read("k") == {"n": 1, "peak": 3}


async def test_unicode_and_long_field_and_key_names_come_back_exactly(tallies: TallyStore) -> None:
    frames = [f"módulo.função_{i} (/srv/app/пакет/日本語_{i}.py:{i * 7})" for i in range(12)]
    stack = "s:" + ";".join(frames)  # a folded stack: some hundreds of bytes
    key = "profile:tâches.envoyer_📨"
    assert len(stack.encode()) > 500

    await tallies.add(key, {stack: 3, "e:~asyncio (x:1)": 1, 'quote"and\\back': 2}, LONG_TTL)
    await tallies.add(key, {stack: 4}, LONG_TTL)

    assert await tallies.read(key) == {stack: 7, "e:~asyncio (x:1)": 1, 'quote"and\\back': 2}
    assert await tallies.keys("profile:tâches") == [key]


async def test_one_add_of_thousands_of_fields_is_kept_whole(stores: TallyStores) -> None:
    first, second = stores.open(), stores.open()
    counts = {f"s:root;frame_{i:05d} (/srv/app/module_{i % 40}.py:{i})": i + 1 for i in range(3000)}

    await first.add("big", counts, LONG_TTL)
    await second.add("big", counts, LONG_TTL, highest={"rss_peak": 1 << 40})

    fields = await first.read("big")
    assert fields == {**{name: 2 * value for name, value in counts.items()}, "rss_peak": 1 << 40}


async def test_concurrent_adds_from_many_tasks_and_two_processes_lose_nothing(stores: TallyStores) -> None:
    first, second = stores.open(), stores.open()
    tasks_per_store, adds_per_task = 8, 15

    async def adder(store: TallyStore, name: str) -> None:
        for i in range(adds_per_task):
            await store.add("shared", {"n": 1, f"by:{name}": 2}, LONG_TTL, highest={"top": i})

    await asyncio.gather(
        *(adder(store, f"{s}-{t}") for s, store in enumerate((first, second)) for t in range(tasks_per_store))
    )

    fields = await second.read("shared")
    assert fields.pop("n") == 2 * tasks_per_store * adds_per_task
    assert fields.pop("top") == adds_per_task - 1
    assert fields == {f"by:{s}-{t}": 2 * adds_per_task for s in range(2) for t in range(tasks_per_store)}


async def test_read_many_gives_each_keys_fields_in_the_order_asked(stores: TallyStores) -> None:
    first, second = stores.open(), stores.open()
    await first.add("history:2", {"a": 1}, LONG_TTL)
    await second.add("history:2", {"a": 2, "b": 5}, LONG_TTL)
    await second.add("history:1", {"c": 7}, LONG_TTL, highest={"peak": 3})

    read = await first.read_many(["history:2", "history:missing", "history:1", "history:2"])

    assert read == [{"a": 3, "b": 5}, {}, {"c": 7, "peak": 3}, {"a": 3, "b": 5}]
    assert await first.read_many([]) == []


async def test_read_many_leaves_out_what_expired_and_what_was_deleted(tallies: TallyStore) -> None:
    await tallies.add("brief", {"n": 5}, SHORT_TTL)
    await tallies.add("gone", {"n": 2}, LONG_TTL)
    await tallies.add("kept", {"n": 1}, LONG_TTL)
    await tallies.delete(["gone"])

    async def expired() -> bool:
        return await tallies.read("brief") == {}

    await eventually(expired, "the short-lived tally to expire")

    assert await tallies.read_many(["brief", "gone", "kept"]) == [{}, {}, {"n": 1}]


async def test_read_many_reads_hundreds_of_keys_in_one_call(tallies: TallyStore) -> None:
    for minute in range(480):
        await tallies.add(f"minute:{minute:04d}", {"n": minute + 1}, LONG_TTL)

    read = await tallies.read_many([f"minute:{minute:04d}" for minute in range(480)])

    assert read == [{"n": minute + 1} for minute in range(480)]
