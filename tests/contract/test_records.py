"""Record stores (``hurtle.records``): bytes under a key, each with a time to live.

The same specification for every broker that keeps records (``record_store()``).
Each test opens its stores on one backing store as separate worker processes
would: what one puts, another reads. A broker that keeps none (RabbitMQ) is
skipped, saying so.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hurtle.brokers import Broker, broker_class
from hurtle.record_source import open_records
from hurtle.records import RecordStore

from .conftest import BROKERS, UrlFactory
from .support import eventually

LONG_TTL = 3600.0
SHORT_TTL = 0.3  # seconds: for the tests that wait for a record to expire


class RecordStores:
    """Opens record stores on one backing store, as separate processes would, and closes them."""

    def __init__(self, make: Callable[[], RecordStore]) -> None:
        self._make = make
        self._opened: list[RecordStore] = []

    def open(self) -> RecordStore:
        store = self._make()
        self._opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in reversed(self._opened):
            await store.close()


def _store_maker(factory: UrlFactory, tmp_path: Path) -> Callable[[], RecordStore]:
    url = factory(tmp_path, uuid.uuid4().hex)
    if broker_class(url)(url, visibility_timeout=30.0).record_store() is None:
        pytest.skip(f"{broker_class(url).__name__} keeps no records")

    def make() -> RecordStore:
        store = open_records(url, None)
        assert store is not None
        return store

    return make


@pytest.fixture(params=BROKERS, ids=lambda f: f.__name__.removesuffix("_url"))
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RecordStores]:
    opened = RecordStores(_store_maker(request.param, tmp_path))
    yield opened
    await opened.close_all()


@pytest.fixture
def records(stores: RecordStores) -> RecordStore:
    return stores.open()


async def test_what_one_process_puts_another_reads_back_exactly(stores: RecordStores) -> None:
    first, second = stores.open(), stores.open()
    value = bytes(range(256)) * 40  # every byte value, some kilobytes

    await first.put("worker:a", value, LONG_TTL)
    await first.put("worker:b", b"", LONG_TTL)

    assert await second.get_all("worker:") == {"worker:a": value, "worker:b": b""}


async def test_a_put_replaces_the_whole_record(stores: RecordStores) -> None:
    first, second = stores.open(), stores.open()
    await first.put("k", b"a long first value", LONG_TTL)

    await second.put("k", b"short", LONG_TTL)

    assert await first.get_all("") == {"k": b"short"}


async def test_get_all_with_no_record_is_empty(records: RecordStore) -> None:
    assert await records.get_all("") == {}


async def test_a_broker_gives_the_same_record_store_at_each_call(broker: Broker) -> None:
    store = broker.record_store()
    if store is None:
        pytest.skip(f"{type(broker).__name__} keeps no records")

    assert broker.record_store() is store


async def test_get_all_returns_only_the_keys_that_start_with_the_prefix(records: RecordStore) -> None:
    await records.put("worker:x", b"1", LONG_TTL)
    await records.put("workers", b"2", LONG_TTL)
    await records.put("other:worker:y", b"3", LONG_TTL)

    assert await records.get_all("worker:") == {"worker:x": b"1"}
    assert await records.get_all("nothing") == {}


@pytest.mark.parametrize("prefix", ["p*", "p?", "p[", "p[a]", "p\\", "p]", "p%", "p_"])
async def test_get_all_takes_pattern_characters_in_a_prefix_literally(
    records: RecordStore, prefix: str
) -> None:
    names = ["p*x", "p?x", "p[a]x", "p\\x", "p]x", "pax", "pbx", "p[x", "p%x", "p_x"]
    for name in names:
        await records.put(name, name.encode(), LONG_TTL)

    assert await records.get_all(prefix) == {n: n.encode() for n in names if n.startswith(prefix)}


async def test_a_record_is_gone_once_its_ttl_passed(records: RecordStore) -> None:
    await records.put("brief", b"soon gone", SHORT_TTL)
    await records.put("kept", b"here", LONG_TTL)

    async def expired() -> bool:
        return "brief" not in await records.get_all("")

    await eventually(expired, "the short-lived record to expire")

    assert await records.get_all("") == {"kept": b"here"}


async def test_each_put_gives_the_record_its_ttl_again(records: RecordStore) -> None:
    await records.put("renewed", b"1", SHORT_TTL)
    await records.put("marker", b"m", SHORT_TTL)
    await records.put("renewed", b"2", LONG_TTL)

    async def marker_expired() -> bool:
        return "marker" not in await records.get_all("")

    await eventually(marker_expired, "the marker, put with the first put's ttl, to expire")

    assert await records.get_all("") == {"renewed": b"2"}


async def test_a_record_put_again_after_it_expired_is_live(records: RecordStore) -> None:
    await records.put("back", b"old", SHORT_TTL)

    async def expired() -> bool:
        return await records.get_all("back") == {}

    await eventually(expired, "the record to expire")
    await records.put("back", b"new", LONG_TTL)

    assert await records.get_all("back") == {"back": b"new"}


async def test_delete_removes_records_for_every_process(stores: RecordStores) -> None:
    first, second = stores.open(), stores.open()
    await first.put("gone", b"1", LONG_TTL)
    await second.put("stays", b"2", LONG_TTL)

    await second.delete(["gone", "never-put"])
    await first.delete([])

    assert await first.get_all("") == {"stays": b"2"}


async def test_unicode_keys_come_back_exactly(records: RecordStore) -> None:
    key = "worker:hôte-日本語:4242:📨"

    await records.put(key, b"x", LONG_TTL)

    assert await records.get_all("worker:hôte") == {key: b"x"}


# -- get and put_if: the atomic step periodic tasks elect their leader with --------


async def test_get_reads_one_live_record_and_none_for_a_missing_one(stores: RecordStores) -> None:
    first, second = stores.open(), stores.open()
    await first.put("one", b"\x00value", LONG_TTL)

    assert await second.get("one") == b"\x00value"
    assert await second.get("missing") is None


async def test_put_if_with_no_current_value_takes_a_free_key_once(stores: RecordStores) -> None:
    first, second = stores.open(), stores.open()

    assert await first.put_if("lease", b"first", LONG_TTL, current=None)
    assert not await second.put_if("lease", b"second", LONG_TTL, current=None)

    assert await second.get("lease") == b"first"


async def test_put_if_replaces_only_the_value_it_expects(stores: RecordStores) -> None:
    first, second = stores.open(), stores.open()
    await first.put("tick", b"100", LONG_TTL)

    assert not await second.put_if("tick", b"300", LONG_TTL, current=b"200")
    assert await second.put_if("tick", b"200", LONG_TTL, current=b"100")
    assert not await first.put_if("tick", b"200", LONG_TTL, current=b"100")  # the value moved on

    assert await first.get("tick") == b"200"


async def test_put_if_of_the_same_value_renews_its_ttl(records: RecordStore) -> None:
    await records.put_if("lease", b"me", SHORT_TTL, current=None)
    await records.put("marker", b"m", SHORT_TTL)

    assert await records.put_if("lease", b"me", LONG_TTL, current=b"me")

    async def marker_expired() -> bool:
        return await records.get("marker") is None

    await eventually(marker_expired, "the marker, put with the first ttl, to expire")
    assert await records.get("lease") == b"me"


async def test_an_expired_record_counts_as_free_for_put_if(stores: RecordStores) -> None:
    first, second = stores.open(), stores.open()
    await first.put_if("lease", b"gone", SHORT_TTL, current=None)

    async def expired() -> bool:
        return await second.get("lease") is None

    await eventually(expired, "the lease to expire")

    assert not await second.put_if("lease", b"late", LONG_TTL, current=b"gone")
    assert await second.put_if("lease", b"next", LONG_TTL, current=None)
    assert await first.get("lease") == b"next"


async def test_of_many_put_ifs_racing_for_one_key_exactly_one_wins(stores: RecordStores) -> None:
    contenders = [stores.open() for _ in range(8)]

    won = await asyncio.gather(
        *(store.put_if("race", str(i).encode(), LONG_TTL, current=None) for i, store in enumerate(contenders))
    )

    assert won.count(True) == 1
    assert await contenders[0].get("race") == str(won.index(True)).encode()
