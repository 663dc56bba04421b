"""One bad record never blocks a queue, and is never called an outage.

Each test writes a malformed record straight into the broker's store, between
good messages, and runs a burst worker: the good tasks run, the bad record is
dead-lettered with the reason (or skipped, and said so in the log), and the
run ends by itself, exit code 0.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hurtle
from hurtle.brokers import DeadLetter, Message, from_url
from hurtle.envelope import encode, make_envelope
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
    assert (letter.queue, letter.reason) == ("\ufffd\x04", "\ufffd\x05")
    assert math.isnan(letter.failed_at)  # 'x' is no time


# -- Redis ----------------------------------------------------------------------


async def test_a_redis_delayed_member_without_its_newline_is_dead_lettered_and_the_queue_flows(
    redis_app: hurtle.App, raw_redis: RawRedis, worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    add = add_task(redis_app)
    now = add.send(1, 1)
    later = add.options(delay=0.2).send(2, 2)
    # Due long ago, and no "<id>\n<body>": splitting it stopped housekeeping and lease reclaim.
    raw_redis.client.zadd(raw_redis.keys.delayed("default"), {b"no newline here": 0})

    with caplog.at_level(logging.ERROR):
        consumer = await worker(redis_app, max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert (now.result(timeout=5), later.result(timeout=5)) == (2, 4)
    (letter,) = await dead_letters(redis_app)
    assert letter.body == b"no newline here"
    assert letter.reason == "a delayed message without the newline between its id and its body"
    assert letter.reason in caplog.text


async def test_a_redis_delayed_member_due_at_infinity_is_dead_lettered_and_burst_ends(
    redis_app: hurtle.App, raw_redis: RawRedis, worker: RunWorker
) -> None:
    add = add_task(redis_app)
    handle = add.send(1, 2)
    raw_redis.client.zadd(raw_redis.keys.delayed("default"), {b"m1\n{}": float("inf")})

    consumer = await worker(redis_app, max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert handle.result(timeout=5) == 3
    (letter,) = await dead_letters(redis_app)
    assert (letter.body, letter.reason) == (b"m1\n{}", "a delayed message due at +inf: never")


@pytest.mark.parametrize(
    "fields",
    [{"body": b"{}"}, {"id": b"m1"}, {"other": b"\xff"}, {"id": b"m1", "body": b"\xff\xfe"}],
    ids=["no id", "no body", "neither", "not utf-8"],
)
async def test_a_redis_stream_entry_without_hurtles_fields_is_dead_lettered_keeping_them(
    redis_app: hurtle.App, raw_redis: RawRedis, worker: RunWorker, fields: dict[str, bytes]
) -> None:
    add = add_task(redis_app)
    first = add.send(1, 1)
    raw_redis.client.xadd(raw_redis.keys.stream("default"), fields)
    last = add.send(2, 2)

    consumer = await worker(redis_app, max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert (first.result(timeout=5), last.result(timeout=5)) == (2, 4)
    (letter,) = await dead_letters(redis_app)
    assert letter.reason.startswith("undecodable message")
    if "body" not in fields:  # what was there is kept, as JSON
        assert all(name.encode() in letter.body for name in fields)


async def test_a_redis_delayed_set_of_another_type_is_reported_and_the_stream_flows(
    redis_app: hurtle.App, raw_redis: RawRedis, worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    add = add_task(redis_app)
    handle = add.send(1, 2)
    raw_redis.client.set(raw_redis.keys.delayed("default"), b"not a sorted set")

    with caplog.at_level(logging.ERROR):
        consumer = await worker(redis_app, max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert handle.result(timeout=5) == 3
    assert f"{raw_redis.keys.delayed('default')}: WRONGTYPE" in caplog.text


async def test_a_redis_queue_whose_stream_has_another_type_is_skipped_and_reported_while_others_flow(
    redis_app: hurtle.App, raw_redis: RawRedis, worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    add = add_task(redis_app)
    handle = add.send(1, 2)
    raw_redis.client.set(raw_redis.keys.stream("broken"), b"not a stream")

    with caplog.at_level(logging.ERROR):
        consumer = await worker(redis_app, queues=["broken", "default"], max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    assert handle.result(timeout=5) == 3
    assert f"queue 'broken' skipped: its key {raw_redis.keys.stream('broken')} holds a string" in caplog.text


async def test_redis_dead_letters_another_program_wrote_are_listed_whatever_their_fields(
    redis_app: hurtle.App, raw_redis: RawRedis
) -> None:
    dead = raw_redis.keys.dead("default")
    raw_redis.client.sadd(raw_redis.keys.queues, "default")
    raw_redis.client.xadd(dead, {"failed_at": b"yesterday", "reason": b"\xff"})
    raw_redis.client.xadd(dead, {"id": b"m2", "body": b"{}"})

    newer, older = await dead_letters(redis_app)

    assert (newer.message_id, newer.body, newer.reason, newer.failed_at) == ("m2", b"{}", "", 0.0)
    assert (older.message_id, older.body, older.reason) == ("", b"", "\ufffd")
    assert math.isnan(older.failed_at)  # no time: said so, not made up


async def test_a_redis_queue_registry_of_another_type_never_fails_a_send_that_was_stored(
    redis_app: hurtle.App, raw_redis: RawRedis, worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    add = add_task(redis_app)
    raw_redis.client.set(raw_redis.keys.queues, b"not a set")
    envelopes = [make_envelope(add.name, [x, x], {}, queue=q) for x, q in [(2, "default"), (3, "other")]]

    with caplog.at_level(logging.ERROR):
        # A send told it failed, though it was stored, would be sent again.
        one = add.send(1, 1)
        broker = from_url(redis_app.broker_url)
        try:  # one batch over two queues
            await broker.enqueue([Message(e.id, e.queue, encode(e), None) for e in envelopes])
        finally:
            await broker.close()
        consumer = await worker(redis_app, queues=["default", "other"], max_disconnect=MAX_DISCONNECT)

    assert consumer.exit_code == EXIT_OK
    handles = [one, *(redis_app.handle(e.id) for e in envelopes)]
    assert [h.result(timeout=5) for h in handles] == [2, 4, 6]
    assert f"{raw_redis.keys.queues} could not record a queue's name" in caplog.text
