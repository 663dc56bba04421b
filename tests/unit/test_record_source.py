"""Where an app's records go (``open_records``): the broker's own store, else the
result store's, else nowhere (the worker registry is off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hurtle.brokers.sqlite.record_store import SQLiteRecords
from hurtle.record_source import BrokerRecords, open_records
from hurtle.records import MemoryRecords

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


async def test_the_brokers_own_store_comes_first(tmp_path: Path) -> None:
    store = open_records(f"sqlite:///{tmp_path}/b.db", f"sqlite:///{tmp_path}/r.db")

    assert isinstance(store, BrokerRecords)
    assert isinstance(store.store, SQLiteRecords)
    assert store.broker.url.reveal() == f"sqlite:///{tmp_path}/b.db"
    await store.close()


async def test_a_broker_that_keeps_none_uses_the_result_stores_broker() -> None:
    pytest.importorskip("aiormq")

    store = open_records(AMQP, "memory://record-source")

    assert isinstance(store, BrokerRecords)
    assert isinstance(store.store, MemoryRecords)
    await store.close()


def test_none_when_neither_keeps_records() -> None:
    pytest.importorskip("aiormq")

    assert open_records(AMQP, None) is None
