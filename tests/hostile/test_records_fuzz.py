"""Malformed broker-side records, generated: whatever another program writes into a
queue's rows or keys, a burst worker ends by itself (exit 0), the good task beside
them runs, and every record is gone from the queue, dead-lettered."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hurtle
from hurtle.brokers import from_url
from hurtle.worker.consumer import EXIT_OK
from tests.conftest import RunWorker
from tests.redis_server import redis_cluster_url, redis_url

from .raw_records import RawRedis, RawSQLite

FUZZ = settings(
    max_examples=15,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: the suite stays deterministic
    # The app outlives the examples on purpose: each uses a queue of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
PAST = time.time() - 1.0


def not_utf8(raw: bytes) -> tuple[str, bytes]:
    return ("CAST(? AS TEXT)", b"\xff" + raw)


# (SQL expression, parameter) of a value of any SQLite storage class, or TEXT that is not UTF-8
any_value = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),  # (a NaN is stored as NULL)
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    st.binary(max_size=20),
).map(lambda value: ("?", value)) | st.binary(max_size=8).map(not_utf8)
# A visible_at that is due (a future one is a delayed message, which a burst run waits for)
due_or_unreadable = st.one_of(
    st.floats(max_value=PAST).map(lambda value: ("?", value)),
    st.text(max_size=10).filter(lambda t: not _numeric(t)).map(lambda value: ("?", value)),
    st.binary(max_size=10).map(lambda value: ("?", value)),
)
sqlite_rows = st.lists(
    st.fixed_dictionaries(
        {"id": any_value, "body": any_value, "visible_at": due_or_unreadable, "enqueued_at": any_value,
         "leased": any_value, "deliveries": any_value}
    ),
    min_size=1, max_size=4,
)

field_names = st.sampled_from([b"id", b"body"]) | st.binary(min_size=1, max_size=8)
stream_entries = st.lists(st.dictionaries(field_names, st.binary(max_size=30), min_size=1, max_size=3),
                          max_size=3)
delayed_members = st.dictionaries(
    st.binary(max_size=30),
    st.floats(max_value=PAST * 1000) | st.just(float("inf")),
    max_size=3,
)


def _numeric(text: str) -> bool:
    """True for TEXT that SQLite stores as a number in a REAL column ("1", " 2e3 ")."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def add(x: int, y: int) -> int:
    return x + y


def app_with_add(url: str) -> hurtle.App:
    app = hurtle.App(url)
    app.task(name="fuzz.add")(add)
    return app


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[hurtle.App]:
    app = app_with_add(f"sqlite:///{tmp_path}/broker.db")
    broker = from_url(app.broker_url)
    await broker.connect()  # the tables exist
    await broker.close()
    yield app
    app.close()


@pytest.fixture(params=[redis_url, redis_cluster_url], ids=["redis", "redis_cluster"])
def redis_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[hurtle.App]:
    app = app_with_add(request.param(tmp_path, uuid.uuid4().hex))
    yield app
    app.close()


async def run_beside_a_good_task(app: hurtle.App, queue: str, worker: RunWorker) -> int:
    """Run a burst worker over ``queue``, where the test wrote its records, with a good
    task sent beside them; check it ran and the queue is empty; return its dead letters."""
    handle = app.tasks["fuzz.add"].options(queue=queue).send(1, 2)
    consumer = await worker(app, queues=[queue], max_disconnect=1.0)
    assert consumer.exit_code == EXIT_OK
    assert handle.result(timeout=5) == 3
    broker = from_url(app.broker_url)
    try:
        (stats,) = await broker.stats([queue])
        assert stats.pending == 0, stats
        return stats.dead
    finally:
        await broker.close()


@FUZZ
@given(rows=sqlite_rows)
async def test_sqlite_rows_of_any_types_are_dead_lettered_and_never_stop_the_queue(
    sqlite_app: hurtle.App, tmp_path: Path, worker: RunWorker, rows: list[dict[str, tuple[str, Any]]]
) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    raw = RawSQLite(tmp_path / "broker.db")
    for row in rows:
        columns, values = ", ".join(row), ", ".join(sql for sql, _ in row.values())
        raw.execute(
            f"INSERT INTO hurtle_messages (queue, {columns}) VALUES (?, {values})",
            (queue, *(value for _, value in row.values())),
        )

    assert await run_beside_a_good_task(sqlite_app, queue, worker) == len(rows)


@FUZZ
@given(entries=stream_entries, members=delayed_members)
async def test_redis_entries_and_delayed_members_of_any_shape_are_dead_lettered_and_never_stop_the_queue(
    redis_app: hurtle.App, worker: RunWorker, entries: list[dict[bytes, bytes]], members: dict[bytes, float]
) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    raw = RawRedis(redis_app.broker_url)
    try:
        for fields in entries:
            raw.client.xadd(raw.keys.stream(queue), fields)
        if members:
            raw.client.zadd(raw.keys.delayed(queue), members)
    finally:
        raw.close()

    assert await run_beside_a_good_task(redis_app, queue, worker) == len(entries) + len(members)
