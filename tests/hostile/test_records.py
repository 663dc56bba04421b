"""One bad record never blocks a queue, and is never called an outage.

Each test writes a malformed record straight into the broker's store, between
good messages, and runs a burst worker: the good tasks run, the bad record is
dead-lettered with the reason (or skipped, and said so in the log), and the
run ends by itself, exit code 0.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hurtle
from hurtle.brokers import DeadLetter, from_url
from hurtle.worker.consumer import EXIT_OK
from tests.conftest import RunWorker
from tests.redis_server import redis_cluster_url, redis_url

from .raw_records import RawRedis, RawSQLite

# A worker that counted a bad record as an outage would exit 69 after this many seconds.
MAX_DISCONNECT = 1.0


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[hurtle.App]:
    app = hurtle.App(f"sqlite:///{tmp_path}/broker.db")
    yield app
    app.close()


@pytest.fixture
def raw_sqlite(tmp_path: Path) -> RawSQLite:
    return RawSQLite(tmp_path / "broker.db")


@pytest.fixture(params=[redis_url, redis_cluster_url], ids=["redis", "redis_cluster"])
def redis_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[hurtle.App]:
    app = hurtle.App(request.param(tmp_path, uuid.uuid4().hex))
    yield app
    app.close()


@pytest.fixture
def raw_redis(redis_app: hurtle.App) -> Iterator[RawRedis]:
    raw = RawRedis(redis_app.broker_url)
    yield raw
    raw.close()


async def dead_letters(app: hurtle.App) -> list[DeadLetter]:
    broker = from_url(app.broker_url)
    try:
        return await broker.dead_letters()
    finally:
        await broker.close()


def add_task(app: hurtle.App) -> hurtle.Task[[int, int], int]:
    @app.task(name="records.add")
    def add(x: int, y: int) -> int:
        return x + y

    return add


# -- SQLite ---------------------------------------------------------------------


async def test_a_sqlite_body_that_is_not_utf8_text_is_dead_lettered_and_the_queue_flows(
    sqlite_app: hurtle.App, raw_sqlite: RawSQLite, worker: RunWorker
) -> None:
    add = add_task(sqlite_app)
    first = add.send(1, 1)
    # TEXT that is not UTF-8: sqlite3 cannot return it as str, and the lease query failed.
    raw_sqlite.insert("CAST(X'7B22FF' AS TEXT)")
    last = add.send(2, 2)

    consumer = await worker(sqlite_app, max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert (first.result(timeout=5), last.result(timeout=5)) == (2, 4)
    (letter,) = await dead_letters(sqlite_app)
    assert letter.body == b'{"\xff'  # kept byte for byte
    assert letter.reason.startswith("undecodable message")


@pytest.mark.parametrize("body_sql", ["42", "4.5", "x'00ff'"], ids=["integer", "real", "blob"])
async def test_a_sqlite_body_of_another_type_is_dead_lettered(
    sqlite_app: hurtle.App, raw_sqlite: RawSQLite, worker: RunWorker, body_sql: str
) -> None:
    add = add_task(sqlite_app)
    handle = add.send(1, 2)
    raw_sqlite.insert(body_sql)

    consumer = await worker(sqlite_app, max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert handle.result(timeout=5) == 3
    (letter,) = await dead_letters(sqlite_app)
    assert letter.reason.startswith("undecodable message")


@pytest.mark.parametrize("visible_at", ["soon", b"\x00"], ids=["text", "blob"])
async def test_a_sqlite_row_whose_visible_at_is_not_a_number_is_dead_lettered_and_burst_ends(
    sqlite_app: hurtle.App, raw_sqlite: RawSQLite, worker: RunWorker, visible_at: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add = add_task(sqlite_app)
    handle = add.send(1, 2)
    raw_sqlite.insert("?", visible_at=visible_at, params=(b'{"task": "records.add"}',))

    with caplog.at_level(logging.ERROR):
        consumer = await worker(sqlite_app, max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert handle.result(timeout=5) == 3
    (letter,) = await dead_letters(sqlite_app)
    assert letter.body == b'{"task": "records.add"}'
    assert letter.reason.startswith("visible_at is not a number")
    assert "visible_at is not a number" in caplog.text  # the worker's log says so too


async def test_sqlite_names_that_are_not_utf8_text_stop_neither_stats_nor_other_queues(
    sqlite_app: hurtle.App, raw_sqlite: RawSQLite, worker: RunWorker
) -> None:
    add = add_task(sqlite_app)
    handle = add.send(1, 2)
    raw_sqlite.execute(
        "INSERT INTO hurtle_messages (id, queue, body, visible_at, enqueued_at)"
        " VALUES (CAST(X'FF01' AS TEXT), CAST(X'FF02' AS TEXT), X'00', 0, 0)"
    )
    raw_sqlite.execute(
        "INSERT INTO hurtle_dead (id, queue, body, reason, failed_at)"
        " VALUES (CAST(X'FF03' AS TEXT), CAST(X'FF04' AS TEXT), X'00', CAST(X'FF05' AS TEXT), 'x')"
    )

    consumer = await worker(sqlite_app, max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert handle.result(timeout=5) == 3
    broker = from_url(sqlite_app.broker_url)
    try:
        names = {row.name for row in await broker.stats()}
        (letter,) = await broker.dead_letters()
    finally:
        await broker.close()
    assert names == {"\ufffd\x02", "\ufffd\x04"}
    assert (letter.queue, letter.reason, letter.failed_at) == ("\ufffd\x04", "\ufffd\x05", 0.0)
