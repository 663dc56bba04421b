"""The RabbitMQ broker where AMQP differs from the contract's other brokers: leases that
last while the connection lives, counted redeliveries, prefetch that follows free
slots, TTL-queue delays, RabbitMQ's own dead letters, and no result store.

Each test has a queue-name prefix of its own on the shared server (tests/amqp_server.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

import hurtle
from hurtle.brokers import Broker, Delivery, Message, from_url
from hurtle.brokers.amqp import AMQPBroker
from hurtle.brokers.amqp import broker as amqp_broker
from hurtle.brokers.amqp import compat as amqp_compat
from hurtle.brokers.amqp.publish import fast_path
from hurtle.errors import BrokerError, ConfigurationError
from tests.amqp_server import unique_amqp_url
from tests.contract.support import WAIT_LIMIT, Brokers, bodies, counts, eventually, fetch_one, messages
from tests.redis_server import free_port


@pytest.fixture(params=["classic", "quorum"])
def queue_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def brokers(queue_type: str) -> AsyncIterator[Brokers]:
    opened = Brokers(unique_amqp_url(queue_type=queue_type))
    yield opened
    await opened.close_all()


async def lose_connection(broker: Broker) -> None:
    """Close the broker's connection under it, as a network failure would."""
    assert isinstance(broker, AMQPBroker)
    conn = broker._link.current()
    assert conn is not None
    await conn.connection.close()


async def fetch_n(broker: Broker, queues: list[str], count: int) -> list[Delivery]:
    """Fetch until ``count`` messages came (each fetch asks only for the rest)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + WAIT_LIMIT
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} messages came"
        got += await broker.fetch(queues, count - len(got), WAIT_LIMIT)
    return got


# -- leases and delivery counts --------------------------------------------------------


async def test_a_message_whose_holder_died_comes_back_counted_and_a_retry_starts_afresh(
    brokers: Brokers,
) -> None:
    # Given a message leased by one worker after another, each dying with it
    first = await brokers.open()
    await first.enqueue(messages("q", b"x"))
    assert (await fetch_one(first, "q")).deliveries == 1
    await first.close()  # RabbitMQ puts back what a closed connection held
    second = await brokers.open()
    assert (await fetch_one(second, "q")).deliveries == 2
    await second.close()
    # Then the count survived each death (classic: in a header; quorum: x-delivery-count)
    third = await brokers.open()
    again = await fetch_one(third, "q")
    assert (again.body, again.deliveries) == (b"x", 3)
    # And its retry is a new message with a count of its own
    await third.retry(again, Message(uuid.uuid4().hex, "q", b"attempt 1"))
    retried = await fetch_one(third, "q")
    assert (retried.body, retried.deliveries) == (b"attempt 1", 1)
    await third.ack([retried])
    assert (await counts(third, "q")).pending == 0


async def test_a_delivery_from_a_lost_connection_settles_nothing(brokers: Brokers) -> None:
    # Given a message leased on a connection that then broke, and leased again elsewhere
    broker, other = await brokers.open(), await brokers.open()
    await broker.enqueue(messages("q", b"x"))
    stale = await fetch_one(broker, "q")
    await lose_connection(broker)
    current = await fetch_one(other, "q")
    assert current.deliveries == 2
    # When the first holder settles it late (its broker reconnects on the way)
    await broker.ack([stale])
    await broker.retry(stale, Message(uuid.uuid4().hex, "q", b"attempt 1"))
    await broker.dead_letter(stale, "too late")
    await broker.release([stale])
    # Then nothing changed: no copy, no dead letter; the new lease is untouched
    stats = await counts(other, "q")
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, None, 0)
    await other.ack([current])
    assert (await counts(other, "q")).pending == 0


# -- prefetch follows free slots ----------------------------------------------------------


async def test_a_fetch_holds_no_more_than_it_asked_for_so_another_worker_gets_the_rest(
    brokers: Brokers,
) -> None:
    busy, idle, watcher = await brokers.open(), await brokers.open(), await brokers.open()
    await watcher.enqueue(messages("q", b"1", b"2", b"3", b"4", b"5"))
    await watcher.enqueue(messages("a", b"a1", b"a2"))
    await watcher.enqueue(messages("b", b"b1", b"b2"))

    # A worker with two free slots takes two; with one slot over two queues, one
    assert bodies(await fetch_n(busy, ["q"], 2)) == [b"1", b"2"]
    (one,) = await fetch_n(busy, ["a", "b"], 1)

    # Then everything else stays ready on the server, for any worker
    async def rest_ready() -> bool:
        ready = [(await counts(watcher, q)).ready for q in ("q", "a", "b")]
        return ready[0] == 3 and ready[1] + ready[2] == 3

    await eventually(rest_ready, "the messages not fetched to be ready on the server")
    assert bodies(await fetch_n(idle, ["q"], 3)) == [b"3", b"4", b"5"]
    assert len(await fetch_n(idle, ["a", "b"], 3)) == 3
    assert one.body in (b"a1", b"b1")


async def test_messages_that_come_after_a_fetch_returned_are_kept_for_the_next_one(
    brokers: Brokers,
) -> None:
    # A fetch returns at its first arrivals and cancels its consumers: what RabbitMQ
    # sent before the cancel lands in the buffer, never lost, never twice.
    broker = await brokers.open()
    sent = [str(i).encode() for i in range(300)]
    await broker.enqueue(messages("q", *sent))
    got: list[bytes] = []
    while len(got) < len(sent):
        deliveries = await broker.fetch(["q"], 50, WAIT_LIMIT)
        assert deliveries, f"only {len(got)} of {len(sent)} came"
        await broker.ack(deliveries)
        got += bodies(deliveries)
    assert sorted(got) == sorted(sent)
    assert (await counts(broker, "q")).pending == 0


async def test_a_standing_consumer_holds_no_more_than_the_free_slots_and_gives_back_when_idle(
    brokers: Brokers,
) -> None:
    # Given a worker that fetched with 4 free slots (its consumer stays, prefetch 4)
    worker, idle, watcher = await brokers.open(), await brokers.open(), await brokers.open()
    await watcher.enqueue(messages("q", *[str(i).encode() for i in range(10)]))
    first = await fetch_n(worker, ["q"], 4)
    # Then while all 4 are leased nothing more leaves the server
    await eventually(lambda: ready_on_server(watcher, 6), "the 6 others to be ready on the server")
    # When it finishes two and does not fetch again (busy below its water mark, or stopping)
    await worker.ack(first[:2])
    # Then what RabbitMQ sent it meanwhile (no more than the 2 freed slots) goes back to
    # the server once no fetch came, uncounted, for any worker to take
    await eventually(lambda: ready_on_server(watcher, 6), "the buffered messages to be given back")
    rest = await fetch_n(idle, ["q"], 6)
    assert sorted(bodies(rest)) == [str(i).encode() for i in range(4, 10)]
    assert {d.deliveries for d in rest} == {1}
    await worker.ack(first[2:])
    await idle.ack(rest)
    assert (await counts(watcher, "q")).pending == 0


async def test_a_standing_consumer_is_replaced_only_when_the_room_outgrows_it_by_a_quarter(
    brokers: Brokers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A replacement costs round trips with nothing delivered, and is made while tasks run
    # (so it is smaller than the pool): replaced at any shortfall it was replaced again
    # and again. (Not stood down for idling meanwhile, however slow the machine.)
    monkeypatch.setattr(amqp_broker, "STAND_DOWN_AFTER", 60.0)
    broker, watcher = await brokers.open(), await brokers.open()
    assert isinstance(broker, AMQPBroker)
    # Given a consumer made by a fetch with 8 free slots, which emptied the queue
    await watcher.enqueue(messages("q", *[str(i).encode() for i in range(8)]))
    got = await fetch_n(broker, ["q"], 8)
    standing = broker._puller.session.standing
    assert standing is not None and standing.prefetch == 8
    await broker.ack(got)
    # When a fetch with 9 free slots waits, the same consumer serves it
    fetching = asyncio.ensure_future(broker.fetch(["q"], 9, WAIT_LIMIT))
    await watcher.enqueue(messages("q", b"8"))
    got = await fetching
    assert bodies(got) == [b"8"]
    assert broker._puller.session.standing is standing
    await broker.ack(got)
    # And when one with 10 (a quarter more than its prefetch) waits, a consumer that size replaces it
    fetching = asyncio.ensure_future(broker.fetch(["q"], 10, WAIT_LIMIT))
    await eventually(lambda: _standing_is_new(broker, standing), "a new consumer")
    await watcher.enqueue(messages("q", b"9"))
    got = await fetching
    assert bodies(got) == [b"9"]
    replaced = broker._puller.session.standing
    assert replaced is not None and replaced.prefetch == 10
    await broker.ack(got)
    assert (await counts(watcher, "q")).pending == 0


async def _standing_is_new(broker: AMQPBroker, old: object) -> bool:
    standing = broker._puller.session.standing
    return standing is not None and standing is not old


async def ready_on_server(watcher: Broker, count: int) -> bool:
    """True when RabbitMQ itself holds ``count`` ready messages of queue q (the watcher
    consumes nothing, so its stats count only what is on the server)."""
    return (await counts(watcher, "q")).ready == count


async def test_acks_out_of_order_settle_exactly_the_acked_messages(brokers: Brokers) -> None:
    # Acks go out as one ``multiple`` ack per run of delivery tags: a message still
    # leased below acked ones must end the run, or the ack would take it too (lost).
    broker, watcher = await brokers.open(), await brokers.open()
    await watcher.enqueue(messages("q", *[str(i).encode() for i in range(6)]))
    got = await fetch_n(broker, ["q"], 6)
    assert bodies(got) == [str(i).encode() for i in range(6)]
    await broker.ack([got[1], got[2]])  # 0 is still leased below them
    await broker.ack([got[0], got[4], got[5]])  # a run 0..2, then 4 and 5 past the leased 3
    await broker.close()  # RabbitMQ puts back what was not acknowledged: 3 alone, counted
    (again,) = await fetch_n(watcher, ["q"], 1)
    assert (again.body, again.deliveries) == (b"3", 2)
    await watcher.ack([again])
    assert (await counts(watcher, "q")).pending == 0


async def test_a_batch_is_written_at_once_with_the_installed_aiormq(brokers: Brokers) -> None:
    # The fast path uses aiormq internals (brokers/amqp/publish.py); an aiormq without them
    # falls back to a publish per message, correct but ~4x slower: say so here.
    broker = await brokers.open()
    assert isinstance(broker, AMQPBroker)
    conn = broker._link.current()
    assert conn is not None and fast_path(conn.pub)
    sent = [str(i).encode() for i in range(3000)]
    await broker.enqueue(messages("q", *sent))
    assert (await counts(broker, "q")).ready == len(sent)


async def test_without_aiormq_s_internals_a_batch_is_published_message_by_message(
    brokers: Brokers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(amqp_compat, "MARSHALL_FITS", False)
    broker = await brokers.open()
    assert isinstance(broker, AMQPBroker)
    conn = broker._link.current()
    assert conn is not None and not fast_path(conn.pub)
    sent = [str(i).encode() for i in range(20)]
    await broker.enqueue(messages("q", *sent))
    assert bodies(await fetch_n(broker, ["q"], len(sent))) == sent


# -- delays ------------------------------------------------------------------------------


async def test_delayed_messages_come_on_time_in_order_never_early(brokers: Brokers) -> None:
    broker = await brokers.open()
    # The first delay of a queue declares its delay levels: not what is measured here
    await broker.enqueue(messages("q", b"warm-up", eta=time.time() + 2.55))
    delays = [0.03, 0.15, 0.32, 0.51, 0.77, 1.0, 1.27]  # several bits each
    now = time.time()
    await broker.enqueue([Message(uuid.uuid4().hex, "q", str(d).encode(), now + d) for d in delays])

    late: list[float] = []
    for delay in delays:
        delivery = await fetch_one(broker, "q")
        late.append(time.time() - (now + delay))
        assert delivery.body == str(delay).encode()
        await broker.ack([delivery])
    print(f"\nlate by {min(late) * 1000:.1f}..{max(late) * 1000:.1f} ms")
    assert min(late) >= 0, "a delayed message came early"
    assert max(late) < 0.5
    stats = await counts(broker, "q")
    assert (stats.ready, stats.delayed) == (0, 1)
    await broker.ack([await fetch_one(broker, "q")])  # the warm-up
    assert (await counts(broker, "q")).pending == 0


async def test_a_delay_past_the_limit_is_refused_before_anything_is_sent(brokers: Brokers) -> None:
    broker = await brokers.open()
    batch = messages("q", b"now") + messages("q", b"in a year", eta=time.time() + 365 * 86400)

    with pytest.raises(ValueError, match="limit"):
        await broker.enqueue(batch)

    assert (await counts(broker, "q")).pending == 0


# -- RabbitMQ's own dead letters -------------------------------------------------------------


async def test_a_quorum_queue_s_delivery_limit_dead_letters_and_never_drops() -> None:
    opened = Brokers(unique_amqp_url(queue_type="quorum", delivery_limit="1"))
    try:
        first = await opened.open()
        await first.enqueue(messages("q", b"poison"))
        for _ in range(2):  # two deliveries whose connection closed: past RabbitMQ's limit of 1
            holder = await opened.open()
            await fetch_one(holder, "q")
            await holder.close()
        watcher = await opened.open()

        async def dead() -> bool:
            return (await counts(watcher, "q")).dead == 1

        await eventually(dead, "RabbitMQ to dead-letter the message")
        (letter,) = await watcher.dead_letters()
        assert (letter.queue, letter.body) == ("q", b"poison")
        assert "dead-lettered by RabbitMQ: delivery_limit" in letter.reason
        assert await watcher.requeue_dead([letter.id]) == 1
        again = await fetch_one(watcher, "q")
        assert (again.body, again.deliveries) == (b"poison", 1)
    finally:
        await opened.close_all()


# -- configuration and errors ---------------------------------------------------------------


async def delete_queue(broker: Broker, queue: str) -> None:
    """Delete a work queue behind the broker's back, as an operator might."""
    assert isinstance(broker, AMQPBroker)
    conn = broker._link.current()
    assert conn is not None
    channel = await conn.channel()
    await channel.queue_delete(broker.names.work(queue))
    await channel.close()


async def test_a_queue_deleted_by_hand_is_declared_again(brokers: Brokers) -> None:
    broker = await brokers.open()
    await broker.enqueue(messages("q", b"1"))
    await broker.ack([await fetch_one(broker, "q")])

    await delete_queue(broker, "q")
    await broker.enqueue(messages("q", b"2"))  # unroutable at first: declared again, sent again
    assert (await fetch_one(broker, "q")).body == b"2"

    await delete_queue(broker, "q")
    with pytest.raises(BrokerError):  # consuming from a missing queue: the worker backs off...
        await broker.fetch(["q"], 10, 0.1)
    await broker.enqueue(messages("q", b"3"))  # ...and its next fetch declares it again
    assert (await fetch_one(broker, "q")).body == b"3"



def test_handle_result_without_a_result_store_says_how_to_configure_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HURTLE_RESULTS", raising=False)
    app = hurtle.App(unique_amqp_url())

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    try:
        handle = add.send(1, 2)
        with pytest.raises(ConfigurationError, match="results="):
            handle.result(timeout=1.0)
    finally:
        app.close()


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("queue_type=stream", "queue_type"),
        ("delivery_limit=5", "delivery_limit needs queue_type=quorum"),
        ("prefix=", "prefix"),
        ("reconnect_timeout=soon", "bad AMQP URL"),
    ],
)
def test_a_bad_amqp_url_is_a_configuration_error(query: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        from_url(f"amqp://guest:guest@127.0.0.1:5672/?{query}")


async def test_an_unreachable_rabbitmq_is_a_broker_error_at_once() -> None:
    broker = from_url(f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    started = time.monotonic()
    with pytest.raises(BrokerError, match="unreachable"):
        await broker.connect()
    await broker.close()
    assert time.monotonic() - started < 5.0


async def test_fetch_raises_at_once_while_rabbitmq_is_unreachable_so_the_worker_backs_off() -> None:
    broker = from_url(f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    with pytest.raises(BrokerError):
        await asyncio.wait_for(broker.fetch(["q"], 10, 30.0), 5.0)
    await broker.close()


async def test_with_publisher_confirms_off_messages_still_go_through() -> None:
    opened = Brokers(unique_amqp_url(confirm="false"))
    try:
        broker = await opened.open()
        await broker.enqueue(messages("q", b"1", b"2"))
        await broker.enqueue(messages("q", b"later", eta=time.time() + 0.05))
        assert bodies(await fetch_n(broker, ["q"], 3)) == [b"1", b"2", b"later"]
    finally:
        await opened.close_all()
