"""RabbitMQ against foreign producers: whatever a producer puts in a message's
properties, every message ends acknowledged, retried or dead-lettered, its
neighbours run once, and no batch is stranded unacknowledged (neither buffered
nor leased, holding prefetch). Moves: ``test_amqp_moves.py``; queue names:
``test_amqp_names.py``.

Messages are published raw with aiormq (``amqp_wire``), bypassing hurtle's
client; each test has a queue-name prefix of its own on the shared server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hurtle
from hurtle.brokers import DeadLetter, QueueStats
from hurtle.worker.consumer import Consumer
from tests.amqp_server import unique_amqp_url
from tests.conftest import run_worker
from tests.contract.support import Brokers, fetch_one, messages
from tests.hostile import amqp_wire
from tests.hostile.amqp_wire import RawProperties, Table, nested, publish_raw, raw_channel, redeliver_all

QUEUE = "q"
MARK = "mark"  # the task every test message calls
FLAKY = "flaky"  # a task that asks for one retry


@pytest.fixture(params=["classic", "quorum"])
def queue_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Site:
    """One app on a queue-name prefix of its own, and what its task ran."""

    url: str
    app: hurtle.App
    runs: Counter[str] = field(default_factory=Counter)

    @property
    def server(self) -> str:
        """The server's URL without hurtle's options (what a foreign producer has)."""
        return self.url.split("?", 1)[0]

    @property
    def work_queue(self) -> str:
        return f"{self.url.split('prefix=', 1)[1].split('&', 1)[0]}.q.{QUEUE}"


def make_site(queue_type: str) -> Site:
    url = unique_amqp_url(queue_type=queue_type)
    site = Site(url, hurtle.App(url, results=None))

    @site.app.task(name=MARK, queue=QUEUE)
    async def mark(tag: str) -> None:
        site.runs[tag] += 1

    @site.app.task(name=FLAKY, queue=QUEUE)
    async def flaky(tag: str) -> None:
        site.runs[tag] += 1
        if site.runs[tag] == 1:
            raise hurtle.Retry(0.0)

    return site


@pytest.fixture
def site(queue_type: str) -> Iterator[Site]:
    made = make_site(queue_type)
    yield made
    made.app.close()


def body(tag: str) -> bytes:
    """A task message as any program writes it (docs/protocol.md)."""
    return json.dumps({"id": uuid.uuid4().hex, "task": MARK, "queue": QUEUE, "args": [tag]}).encode()


def tag_of(letter: DeadLetter) -> str:
    return str(json.loads(letter.body)["args"][0])


@dataclass
class Outcome:
    consumer: Consumer
    stats: QueueStats
    dead: dict[str, DeadLetter]
    trouble: list[logging.LogRecord]  # tracebacks and outages the worker logged


class _Trouble(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "broker error" in record.getMessage():
            self.records.append(record)


async def run(site: Site, messages: list[tuple[bytes, RawProperties]], *, redeliver: bool) -> Outcome:
    """Publish ``messages`` raw, optionally have a 'dead worker' hold and return them all,
    run a burst worker in-process, then look at the queue from a fresh connection."""
    watcher = Brokers(site.url)
    try:
        await (await watcher.open()).fetch([QUEUE], 1, 0.0)  # declares the queue, as a worker does
    finally:
        await watcher.close_all()
    await publish_raw(site.server, site.work_queue, messages)
    if redeliver:
        await redeliver_all(site.server, site.work_queue)
    trouble = _Trouble()
    logging.getLogger("hurtle").addHandler(trouble)
    try:
        consumer = await run_worker(site.app, queues=[QUEUE])
    finally:
        logging.getLogger("hurtle").removeHandler(trouble)
    watcher = Brokers(site.url)
    try:
        broker = await watcher.open()
        (stats,) = await broker.stats([QUEUE])
        dead = {tag_of(letter): letter for letter in await broker.dead_letters(QUEUE, limit=10_000)}
    finally:
        await watcher.close_all()
    return Outcome(consumer, stats, dead, trouble.records)


def assert_every_message_settled(site: Site, outcome: Outcome, tags: list[str]) -> None:
    """Each message ran once or was dead-lettered (with a reason), never both, never
    neither; nothing is left ready, delayed or unacknowledged; nothing crashed."""
    for tag in tags:
        ran, dead = site.runs[tag], outcome.dead.get(tag)
        assert (ran, dead is not None) in ((1, False), (0, True)), (tag, ran, dead)
        assert dead is None or dead.reason
    # A stranded message is unacked on the worker's closed connection: back to ready now.
    assert (outcome.stats.ready, outcome.stats.delayed) == (0, 0), outcome.stats
    assert outcome.consumer.exit_code == 0
    assert outcome.trouble == []


# -- every header a producer can send ---------------------------------------------------


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile=st.lists(amqp_wire.properties(), min_size=1, max_size=4), redeliver=st.booleans())
def test_whatever_a_producer_puts_in_properties_every_message_is_settled_and_its_neighbour_runs_once(
    queue_type: str, hostile: list[RawProperties], redeliver: bool
) -> None:
    site = make_site(queue_type)
    try:
        innocent = f"innocent-{uuid.uuid4().hex}"
        tags = [uuid.uuid4().hex for _ in hostile]
        messages = [(body(innocent), RawProperties([]))] + [
            (body(tag), properties) for tag, properties in zip(tags, hostile, strict=True)
        ]
        outcome = asyncio.run(run(site, messages, redeliver=redeliver))
        assert site.runs[innocent] == 1
        assert_every_message_settled(site, outcome, [innocent, *tags])
    finally:
        site.app.close()


# -- the named cases ----------------------------------------------------------------------------


def double(value: float) -> tuple[bytes, float]:
    return (b"d", value)


HOSTILE: dict[str, RawProperties] = {
    # Before: a redelivered batch holding this raised out of fetch, neither buffered nor
    # leased; the burst worker exited 0 with its neighbours still unacked.
    "a delivery count of 1e19": RawProperties([(b"hurtle-deliveries", double(1e19))]),
    "a delivery count that is text": RawProperties([(b"hurtle-deliveries", (b"S", b"three"))]),
    "a negative delivery count": RawProperties([(b"hurtle-deliveries", (b"l", -5))]),
    "a hurtle-at of 1e300": RawProperties([(b"hurtle-at", double(1e300))]),
    # Before: pamqp raised decoding these and aiormq closed the connection, at every delivery.
    "a timestamp header past the year 9999": RawProperties([(b"when", (b"T", 2**63))]),
    "a timestamp property past the year 9999": RawProperties([], timestamp=2**64 - 1),
    "a header name that is not UTF-8": RawProperties([(b"\xff\xfe", (b"V", None))]),
    "a message id that is not UTF-8": RawProperties([], message_id=b"\xc3\x28"),
    "a table nested 5000 deep": RawProperties(nested(5000)),
}


@pytest.mark.parametrize("name", HOSTILE)
async def test_a_hostile_message_is_settled_and_its_redelivered_neighbours_run_once(
    site: Site, name: str
) -> None:
    # Given a hostile message among 7 innocent ones, all held by a worker that died
    tags = [uuid.uuid4().hex for _ in range(8)]
    messages = [(body(tag), RawProperties([])) for tag in tags]
    messages[3] = (body(tags[3]), HOSTILE[name])

    # When a burst worker runs
    outcome = await run(site, messages, redeliver=True)

    # Then every innocent one ran once, and nothing is left on the server
    assert all(site.runs[tag] == 1 for i, tag in enumerate(tags) if i != 3)
    assert_every_message_settled(site, outcome, tags)


async def test_a_redelivered_message_counted_1e19_times_is_dead_lettered_saying_why(site: Site) -> None:
    tag = uuid.uuid4().hex
    poison = RawProperties([(b"hurtle-deliveries", double(1e19))])

    outcome = await run(site, [(body(tag), poison)], redeliver=True)
    assert site.runs[tag] == 0
    assert "'hurtle-deliveries' holds float 1e+19, not a delivery count" in outcome.dead[tag].reason


@pytest.mark.parametrize(
    ("name", "properties", "problem"),
    [
        ("timestamp", HOSTILE["a timestamp header past the year 9999"], "headers dropped"),
        ("message id", HOSTILE["a message id that is not UTF-8"], "message_id dropped"),
        ("nesting", HOSTILE["a table nested 5000 deep"], "RecursionError"),
    ],
)
async def test_a_message_whose_properties_pamqp_cannot_decode_is_dead_lettered_without_a_reconnect(
    site: Site, name: str, properties: RawProperties, problem: str
) -> None:
    tag, neighbour = uuid.uuid4().hex, uuid.uuid4().hex
    messages = [(body(tag), properties), (body(neighbour), RawProperties([]))]

    outcome = await run(site, messages, redeliver=False)

    assert (site.runs[tag], site.runs[neighbour]) == (0, 1)
    assert "its properties could not be decoded" in outcome.dead[tag].reason
    assert problem in outcome.dead[tag].reason
    assert outcome.trouble == []  # the connection never broke: no outage, no redelivery


async def test_a_double_header_survives_dead_lettering_as_text_and_the_reason_says_so(site: Site) -> None:
    # Given a message from a Java producer with a double header, for a task nobody has
    unknown = json.dumps({"id": uuid.uuid4().hex, "task": "java.only", "args": ["x"]}).encode()
    headers: Table = [(b"price", double(1e300)), (b"ratio", double(0.5)), (b"trace", (b"S", b"abc"))]

    # When a worker dead-letters it (before: pamqp could not write 1e300, so never)
    outcome = await run(site, [(unknown, RawProperties(headers))], redeliver=False)

    # Then the dead letter keeps every header: the double as its exact text, the rest as sent
    assert outcome.stats.dead == 1 and outcome.trouble == []
    async with raw_channel(site.server) as channel:
        dead_queue = site.work_queue.replace(f".q.{QUEUE}", f".dead.{QUEUE}")
        letter = await channel.basic_get(dead_queue)
        kept = letter.header.properties.headers or {}
        assert letter.delivery_tag is not None
        await channel.basic_reject(letter.delivery_tag, requeue=True)
    assert (kept["price"], kept["ratio"], kept["trace"]) == ("1e+300", 0.5, "abc")
    assert "price: float 1e+300 kept as text" in str(kept["hurtle-reason"])


async def test_a_foreign_task_id_too_long_for_an_amqp_message_id_is_still_retried(site: Site) -> None:
    # The envelope's id becomes the retry's message_id, a short string of at most 255
    # bytes: before, pamqp refused to write it and the retry never left the worker.
    tag = uuid.uuid4().hex
    long_id = json.dumps({"id": "i" * 300, "task": FLAKY, "queue": QUEUE, "args": [tag]}).encode()

    outcome = await run(site, [(long_id, RawProperties([]))], redeliver=False)

    assert site.runs[tag] == 2  # the first run asked for a retry
    assert (outcome.stats.ready, outcome.stats.delayed, outcome.stats.dead) == (0, 0, 0)
    assert outcome.trouble == []


def test_any_decoded_header_is_written_back_by_pamqp_and_what_it_writes_exactly_is_unchanged() -> None:
    from pamqp import decode, encode

    from hurtle.brokers.amqp.headers import writable

    @settings(max_examples=300, deadline=None)
    @given(amqp_wire.headers())
    def check(table: Table) -> None:
        try:
            _, decoded = decode.field_table(amqp_wire.table(table))
        except Exception:
            return  # pamqp cannot read it: brokers/amqp/frames.py rewrites such a frame before aiormq sees it
        kept, notes = writable(decoded)
        _, again = decode.field_table(encode.field_table(kept))
        for name, value in decoded.items():
            # A note starts with the value's path: the name, then ":", "." or "[" (a name
            # may hold those characters itself, so the notes are not split on them).
            noted = any(note.startswith((f"{name}:", f"{name}.", f"{name}[")) for note in notes)
            if not noted and not isinstance(value, bytes):
                assert again[name] == value, name

    check()


async def test_a_buffer_given_back_with_an_unreadable_count_in_it_is_given_back_whole(site: Site) -> None:
    # Given a worker's standing consumer that buffered an innocent message and one whose
    # count is text (before: giving them back raised half-way, and the innocent one came
    # back later flagged redelivered, counted twice)
    brokers = Brokers(site.url)
    try:
        worker = await brokers.open()
        assert await worker.fetch([QUEUE], 2, 0.05) == []  # a standing consumer of prefetch 2
        poison = RawProperties([(b"hurtle-deliveries", (b"S", b"three"))])
        await publish_raw(site.server, site.work_queue, [(b"innocent", RawProperties([])), (b"x", poison)])

        # When it gives its buffer back (it stopped fetching, or closed)
        await worker.close()

        # Then the innocent one is delivered as if for the first time, the other dead-lettered
        other = await brokers.open()
        innocent = await fetch_one(other, QUEUE)
        assert (innocent.body, innocent.deliveries) == (b"innocent", 1)
        assert await other.fetch([QUEUE], 1, 0.5) == []  # the other is taken and dead-lettered
        stats = (await other.stats([QUEUE]))[0]
        assert (stats.ready, stats.dead) == (0, 1)
    finally:
        await brokers.close_all()


# -- a standing consumer whose prefetch its leases fill ---------------------------------------


async def test_a_short_fetch_gets_a_ready_message_past_a_standing_consumer_full_of_leases(
    queue_type: str,
) -> None:
    # Before: the fetch waited on its standing consumer, which RabbitMQ sends nothing
    # while its leases fill its prefetch, and returned [] with a message ready: a free
    # slot stayed idle as long as the task holding the lease ran.
    brokers = Brokers(unique_amqp_url(queue_type=queue_type))
    try:
        broker = await brokers.open()
        await broker.enqueue(messages(QUEUE, b"long task"))
        held = await fetch_one(broker, QUEUE)  # a standing consumer of prefetch 1, now full
        await broker.enqueue(messages(QUEUE, b"ready"))

        got = await broker.fetch([QUEUE], 1, 0.1)  # a slot freed elsewhere; a short wait

        assert [d.body for d in got] == [b"ready"]
        await broker.ack([held, *got])
        assert (await broker.stats([QUEUE]))[0].pending == 0
    finally:
        await brokers.close_all()
