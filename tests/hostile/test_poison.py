"""Poison messages, written straight into each broker: each is dead-lettered with
its reason, never crashes the worker, and the innocent task fetched with it runs
exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hurtle
from hurtle import App, TaskFailed
from hurtle.brokers import Broker, DeadLetter, Message, from_url
from hurtle.envelope import SIGNATURE_HEADER, encode, make_envelope
from hurtle.worker.consumer import EXIT_OK
from tests.amqp_server import amqp_url
from tests.conftest import RunWorker
from tests.contract.conftest import memory_url, sqlite_url
from tests.hostile.poison_bodies import KEY as FUZZ_KEY
from tests.hostile.poison_bodies import Batch, batches
from tests.redis_server import redis_url

KEY = "s3cret"
#: Seconds: the visibility timeout of the tests that need a lease to expire (the
#: worker's too: Redis reclaims by the claimer's). Long enough that a loaded
#: machine's stalls cannot expire the worker's own leases and rerun a task.
LEASE = 2.0
TOO_DEEP = 5000  # nesting levels: past what any JSON decoder on Python's stack can follow

MakeApp = Callable[..., App]


@pytest.fixture(params=[memory_url, sqlite_url, redis_url, amqp_url],
                ids=["memory", "sqlite", "redis", "amqp"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    factory: Callable[[Path, str], str] = request.param
    return factory(tmp_path, uuid.uuid4().hex)


@pytest.fixture
def make_app(broker_url: str, tmp_path: Path) -> Iterator[MakeApp]:
    """``make_app(**settings)``: an App on the test's broker (results in SQLite when
    the broker keeps none)."""
    apps: list[App] = []
    results = f"sqlite:///{tmp_path}/results.db" if broker_url.startswith("amqp") else None

    def make(**settings: Any) -> App:
        app = App(broker_url, results=results, **settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
async def raw_broker(broker_url: str) -> AsyncIterator[Broker]:
    """A broker of the test's own: writes raw bodies, reads dead letters."""
    broker = from_url(broker_url)
    await broker.connect()
    yield broker
    await broker.close()


class Innocent:
    """A task that notes each run, and the body of one call to it."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.runs: list[str] = []

        @app.task(name="hostile.innocent")
        def innocent(tag: str, *rest: Any) -> str:
            self.runs.append(tag)
            return tag

        self.task = innocent

    def message(self, tag: str = "innocent", queue: str = "default") -> Message:
        envelope = make_envelope(self.task.name, [tag], {}, queue=queue)
        return Message(envelope.id, queue, encode(envelope, self.app.secret_key))


def raw(body: bytes, queue: str = "default") -> Message:
    return Message(uuid.uuid4().hex, queue, body)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def dead_letters(broker: Broker) -> list[DeadLetter]:
    return list(reversed(await broker.dead_letters()))


# -- point 1: a poison message never crash-loops a worker ---------------------------------


async def test_a_message_nested_too_deeply_to_decode_is_dead_lettered_and_its_batch_runs(
    make_app: MakeApp, raw_broker: Broker, worker: RunWorker
) -> None:
    app = make_app()
    innocent = Innocent(app)
    poison = b'{"id":"deep","task":"hostile.innocent","args":[' + nested(TOO_DEEP) + b"]}"
    await raw_broker.enqueue([raw(poison), innocent.message()])

    consumer = await worker(app)

    assert innocent.runs == ["innocent"]
    (letter,) = await dead_letters(raw_broker)
    assert letter.body == poison
    assert letter.reason.startswith("undecodable message: nested too deeply")
    assert consumer.exit_code == EXIT_OK


async def test_a_signature_with_non_ascii_text_is_dead_lettered_and_its_batch_runs(
    make_app: MakeApp, raw_broker: Broker, worker: RunWorker
) -> None:
    app = make_app(secret_key=KEY)
    innocent = Innocent(app)
    forged = make_envelope(innocent.task.name, ["forged"], {}, queue="default")
    forged.headers[SIGNATURE_HEADER] = "é" * 64
    await raw_broker.enqueue([raw(encode(forged)), innocent.message()])

    consumer = await worker(app)

    assert innocent.runs == ["innocent"]
    (letter,) = await dead_letters(raw_broker)
    assert letter.reason.startswith("bad signature")
    assert consumer.exit_code == EXIT_OK


@pytest.mark.parametrize(
    "poison",
    [
        b'{"id":"deep","task":"hostile.innocent","args":[' + nested(TOO_DEEP) + b"]}",
        b'{"id":"sig","task":"hostile.innocent","headers":{"hurtle-sig":"\xc3\xa9"}}',
    ],
    ids=["deep", "non-ascii-signature"],
)
async def test_a_poison_message_delivered_past_max_deliveries_is_dead_lettered_undecoded(
    make_app: MakeApp, broker_url: str, raw_broker: Broker, worker: RunWorker, poison: bytes
) -> None:
    app = make_app(secret_key=KEY, max_deliveries=1, visibility_timeout=LEASE)
    innocent = Innocent(app)
    await raw_broker.enqueue([raw(poison)])
    # A worker that took the message and died: its lease expires (RabbitMQ: its
    # connection closes), and the message comes back counted.
    crashed = from_url(broker_url, visibility_timeout=LEASE)
    await crashed.connect()
    assert len(await crashed.fetch(["default"], 1, 5.0)) == 1
    await crashed.close()
    await raw_broker.enqueue([innocent.message()])

    consumer = await worker(app)

    assert innocent.runs == ["innocent"]
    (letter,) = await dead_letters(raw_broker)
    assert "over max_deliveries=1" in letter.reason
    assert consumer.exit_code == EXIT_OK


async def test_a_result_nested_too_deeply_fails_its_task_without_a_retry(
    make_app: MakeApp, worker: RunWorker
) -> None:
    app = make_app()
    runs: list[int] = []

    @app.task(retries=3, backoff=hurtle.Constant(0.01))
    def tower() -> list[Any]:
        runs.append(1)
        value: list[Any] = []
        for _ in range(TOO_DEEP):
            value = [value]
        return value

    handle = tower.send()
    consumer = await worker(app)

    assert runs == [1]
    with pytest.raises(TaskFailed, match="nests deeper than"):
        handle.result(timeout=5.0)
    assert consumer.exit_code == EXIT_OK


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: the suite stays deterministic
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
@given(data=st.data(), signed=st.booleans())
async def test_a_worker_dead_letters_every_generated_poison_and_runs_each_innocent_once(
    make_app: MakeApp, raw_broker: Broker, worker: RunWorker, data: st.DataObject, signed: bool
) -> None:
    bad, innocents = data.draw(batches(signed))
    app = make_app(secret_key=FUZZ_KEY if signed else None)
    batch = Batch(app, f"fuzz-{uuid.uuid4().hex}", bad, innocents)
    await batch.write(raw_broker)

    consumer = await worker(app, queues=[batch.queue])

    await batch.check(consumer, raw_broker)


# -- signing: any producer's JSON checks; an old signed message is not run again ------------


async def test_a_message_signed_by_a_producer_in_another_language_runs(
    make_app: MakeApp, raw_broker: Broker, worker: RunWorker
) -> None:
    app = make_app(secret_key=KEY, signature_max_age=300.0)
    innocent = Innocent(app)
    # As JSON.stringify writes it: no spaces, UTF-8 as is, 1e20 spelt out in digits.
    message: dict[str, Any] = {"id": "js-1", "task": innocent.task.name, "args": ["héllo ✓", 10**20],
                               "enqueued_at": time.time(), "headers": {SIGNATURE_HEADER: ""}}

    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    signature = hmac.new(KEY.encode(), dumps(message), hashlib.sha256).hexdigest()
    message["headers"] = {SIGNATURE_HEADER: signature}
    await raw_broker.enqueue([Message("js-1", "default", dumps(message))])

    consumer = await worker(app)

    assert innocent.runs == ["héllo ✓"]
    assert consumer.counters.dead_lettered == 0


async def test_an_old_signed_message_written_again_into_the_queue_is_dead_lettered(
    make_app: MakeApp, raw_broker: Broker, worker: RunWorker
) -> None:
    app = make_app(secret_key=KEY, signature_max_age=300.0)
    innocent = Innocent(app)
    old = make_envelope(innocent.task.name, ["replayed"], {}, queue="default", now=time.time() - 3600)
    await raw_broker.enqueue([Message(old.id, "default", encode(old, app.secret_key)), innocent.message()])

    await worker(app)

    assert innocent.runs == ["innocent"]
    (letter,) = await dead_letters(raw_broker)
    assert re.match(r"signed message refused as a possible replay: due 36\d\ds ago", letter.reason)


# -- point 5: a retry returns to the queue the message came from --------------------------


async def test_a_foreign_task_without_a_queue_field_is_retried_on_the_queue_it_came_from(
    make_app: MakeApp, raw_broker: Broker, worker: RunWorker
) -> None:
    app = make_app()
    runs: list[int] = []

    @app.task(name="hostile.flaky", queue="io", retries=1, backoff=hurtle.Constant(0.01))
    def flaky() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("blip")
        return "ok"

    # docs/protocol.md: `queue` is optional and informative; the broker's queue decides.
    body = b'{"id":"foreign-1","task":"hostile.flaky"}'
    await raw_broker.enqueue([Message("foreign-1", "io", body)])

    consumer = await worker(app, queues=["io"])

    assert runs == [1, 1]
    assert app.handle("foreign-1").result(timeout=5.0) == "ok"
    (default,) = await raw_broker.stats(["default"])
    assert default.pending == 0
    assert consumer.counters.retried == 1
