"""``hurtle dlq list`` and ``hurtle status`` show whatever a broker holds, as it is,
and fail fast when there is no broker to read.

The dead letters here are written straight into each broker's store, as a
foreign producer, an old version or a hand edit could leave them: Rich markup
in the queue name and the reason, a body nested too deep to decode, bytes that
are not text, a terminal escape, and ``failed_at`` values that are no time.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hurtle.brokers import Message, from_url
from hurtle.envelope import encode, make_envelope
from tests.amqp_server import unique_amqp_url
from tests.integration.conftest import hurtle_cli, queue_table
from tests.redis_server import free_port, unique_redis_url

MARKUP = "[/etc/app.conf]"  # Rich reads "[/...]" as a closing tag
ESCAPE = "\x1b[2J"  # clears a terminal's screen


@dataclass(frozen=True)
class Record:
    message_id: str
    body: bytes
    reason: str
    failed_at: str


RECORDS = [
    Record("nested", b"[" * 100_000 + b"]" * 100_000, f"[bold red]boom[/] in {MARKUP}", "yesterday"),
    Record("markup-task", encode(make_envelope(MARKUP, [], {}, queue="q")), "[/]", "1e300"),
    Record("binary", b"\xff\xfe\x00 not text", f"{ESCAPE}cleared the screen", "nan"),
    Record("blank", b"{}", "  \n\n", "-1e20"),
]


@dataclass(frozen=True)
class Hostile:
    """A broker whose queue ``queue`` holds the dead letters ``RECORDS`` (and on
    RabbitMQ one more, which the broker wrote while making the queue)."""

    url: str
    queue: str
    dead: int


def sqlite_records(tmp_path: Path) -> Hostile:
    url = f"sqlite:///{tmp_path}/broker.db"
    broker = from_url(url)

    async def create() -> None:
        try:
            await broker.connect()  # creates the tables
        finally:
            await broker.close()

    asyncio.run(create())
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.executemany(
            "INSERT INTO hurtle_dead (id, queue, body, reason, failed_at) VALUES (?, ?, ?, ?, ?)",
            [(r.message_id, MARKUP, r.body, r.reason, r.failed_at) for r in RECORDS],
        )
    return Hostile(url, MARKUP, len(RECORDS))


def redis_records(tmp_path: Path) -> Hostile:
    import redis

    url = unique_redis_url()
    keys = from_url(url).keys  # type: ignore[attr-defined]
    client = redis.Redis.from_url(url.partition("?")[0])
    try:
        client.sadd(keys.queues, MARKUP)
        for r in RECORDS:
            fields = {"id": r.message_id, "body": r.body, "reason": r.reason, "failed_at": r.failed_at}
            client.xadd(keys.dead(MARKUP), fields)  # type: ignore[arg-type]
    finally:
        client.close()
    return Hostile(url, MARKUP, len(RECORDS))


def amqp_records(tmp_path: Path) -> Hostile:
    import aiormq
    from pamqp import commands as spec

    url = unique_amqp_url()
    queue = "etc.app.conf"  # RabbitMQ's names are letters, digits and -_.: only
    broker = from_url(url)

    async def write() -> None:
        # The broker makes the queue and its dead-letter queue, and lists them; the
        # records are then published to the dead-letter queue as they are.
        try:
            await broker.enqueue([Message("first", queue, b"{}")])
            (delivery,) = await broker.fetch([queue], 1, 10.0)
            await broker.dead_letter(delivery, "dead-lettered by hurtle")
        finally:
            await broker.close()
        dead = broker.names.dead(queue)  # type: ignore[attr-defined]
        connection = await aiormq.connect(url.partition("?")[0])
        try:
            channel = await connection.channel()
            for r in RECORDS:
                headers = {"hurtle-reason": r.reason, "hurtle-failed-at": r.failed_at,
                           "hurtle-dead-id": uuid.uuid4().hex}
                properties = spec.Basic.Properties(message_id=r.message_id, headers=headers)
                await channel.basic_publish(r.body, routing_key=dead, properties=properties)
        finally:
            await connection.close()

    asyncio.run(write())
    return Hostile(url, queue, len(RECORDS) + 1)


WRITERS: dict[str, Callable[[Path], Hostile]] = {
    "sqlite": sqlite_records, "redis": redis_records, "amqp": amqp_records,
}


@pytest.fixture(params=list(WRITERS))
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Hostile:
    return WRITERS[request.param](tmp_path)


def test_dlq_list_prints_every_dead_letter_as_it_is(hostile: Hostile) -> None:
    for full in ([], ["--full"]):
        done = hurtle_cli("dlq", "list", "--broker", hostile.url, *full)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        # Every dead letter is listed, in a row that names its queue
        assert out.count(hostile.queue) >= hostile.dead, out
        # Markup is printed, not obeyed
        assert f"[bold red]boom[/] in {MARKUP}" in out and f"│ {MARKUP}" in out, out
        # An undecodable body is said to be one, in the row of each
        assert out.count("(undecodable)") >= 2, out
        # And no escape sequence reaches the terminal: it is spelled out
        assert "\x1b" not in out and "\\x1b[2Jcleared the screen" in out, out


def test_status_prints_a_queue_as_it_is_named(hostile: Hostile) -> None:
    done = hurtle_cli("status", "--broker", hostile.url, "-q", hostile.queue)
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = queue_table(done.stdout).values()
    assert row["queue"] == hostile.queue and row["dead"] == str(hostile.dead), done.stdout


def test_status_task_prints_a_dead_letter_as_it_is(hostile: Hostile) -> None:
    # A body nested too deep and a reason in markup; then an escape sequence as the reason
    nested = hurtle_cli("status", "task", "nested", "--broker", hostile.url)
    binary = hurtle_cli("status", "task", "binary", "--broker", hostile.url)
    as_json = hurtle_cli("status", "task", "binary", "--broker", hostile.url, "--json")

    assert nested.returncode == 0, nested.stdout + nested.stderr
    assert "unknown (no result stored; a dead letter holds it" in nested.stdout
    assert f"[bold red]boom[/] in {MARKUP}" in nested.stdout  # printed, not obeyed
    assert "attempts" not in nested.stdout  # a body that does not decode tells none
    assert binary.returncode == 0, binary.stdout + binary.stderr
    assert "\x1b" not in binary.stdout and "\\x1b[2Jcleared the screen" in binary.stdout
    assert "\x1b" not in as_json.stdout  # JSON escapes it
    assert json.loads(as_json.stdout)["dead_letter"]["reason"] == f"{ESCAPE}cleared the screen"


def unreachable_urls(tmp_path: Path) -> dict[str, str]:
    not_a_database = tmp_path / "noise.db"
    not_a_database.write_bytes(b"\x00 this is not a database " * 1000)
    closed = free_port()
    return {
        "sqlite": f"sqlite:///{not_a_database}",
        "redis": f"redis://127.0.0.1:{closed}/0",
        "amqp": f"amqp://guest:guest@127.0.0.1:{closed}/",
    }


FAIL_FAST = 10.0  # seconds: a command that gave up at once, with room for a slow machine


@pytest.mark.parametrize("broker", list(WRITERS))
@pytest.mark.parametrize("command", [("status",), ("status", "task", "some-id"), ("dlq", "list"),
                                     ("dlq", "requeue", "--all"), ("dlq", "purge", "--yes")], ids=" ".join)
def test_an_unreachable_broker_is_one_line_and_exit_2_at_once(
    broker: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    url = unreachable_urls(tmp_path)[broker]
    started = time.monotonic()
    done = hurtle_cli(*command, "--broker", url)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert took < FAIL_FAST, f"took {took:.1f}s: {done.stderr}"
