"""Limit state that another program broke never stops a limited task for good.

Each test writes a malformed value straight where a limit keeps its state (a
rate's arrival time that is not a number, a permit whose expiry is text) and
then asks for permits: the bad value counts as an empty bucket or an expired
permit, so the limit goes on working.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hurtle.brokers import Broker, from_url
from hurtle.limit_store import LimitStore
from tests.redis_server import redis_url

from .raw_records import RawRedis, RawSQLite


@pytest.fixture
def sqlite_broker(tmp_path: Path) -> Iterator[Broker]:
    yield from_url(f"sqlite:///{tmp_path}/broker.db")


def _limits(broker: Broker) -> LimitStore:
    store = broker.limit_store()
    assert store is not None
    return store


async def test_a_sqlite_rate_whose_arrival_time_is_text_reads_as_an_empty_bucket(
    sqlite_broker: Broker, tmp_path: Path
) -> None:
    limits = _limits(sqlite_broker)
    await limits.take_rate("rate:t", 3600.0, 1, 1)  # makes the tables
    RawSQLite(tmp_path / "broker.db").execute("UPDATE hurtle_rates SET tat = 'not a time'")

    taken = await limits.take_rate("rate:t", 3600.0, 1, 1)

    assert taken.granted == 1
    assert (await limits.take_rate("rate:t", 3600.0, 1, 1)).granted == 0  # and it holds again after
    await sqlite_broker.close()


async def test_a_sqlite_permit_whose_expiry_is_text_counts_as_expired(
    sqlite_broker: Broker, tmp_path: Path
) -> None:
    limits = _limits(sqlite_broker)
    await limits.acquire("permits:p", ["first"], 1, 3600.0)
    RawSQLite(tmp_path / "broker.db").execute("UPDATE hurtle_permits SET expires_at = 'forever'")

    assert await limits.held("permits:p") == 0
    assert await limits.acquire("permits:p", ["second"], 1, 3600.0) == 1
    await sqlite_broker.close()


async def test_a_redis_rate_whose_value_is_not_a_number_reads_as_an_empty_bucket(tmp_path: Path) -> None:
    broker = from_url(redis_url(tmp_path, uuid.uuid4().hex))
    raw = RawRedis(broker.url)
    try:
        raw.client.set(raw.keys.limit("rate:t"), b"\xffnot a time")
        limits = _limits(broker)

        assert (await limits.take_rate("rate:t", 3600.0, 1, 1)).granted == 1
        assert (await limits.take_rate("rate:t", 3600.0, 1, 1)).granted == 0
    finally:
        raw.close()
        await broker.close()
