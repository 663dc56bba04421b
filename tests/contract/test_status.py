"""Where a task is, from its id alone: ``Broker.locate`` and the status built on it.

A broker that cannot look by id (``locates_messages`` False: RabbitMQ) finds
nothing, so a task it holds reads ``unknown`` until its result is stored.
"""

from __future__ import annotations

import time
import uuid

import pytest

from hurtle.brokers import Broker, Location, Message
from hurtle.brokers.memory import MemoryBroker
from hurtle.envelope import Result, encode_result
from hurtle.results import ResultStore
from hurtle.task_status import TaskStatus, task_status

from .support import LONG_LEASE, eventually, fetch_one, messages

LATER = 3600.0  # seconds: an eta that does not come during a test


@pytest.fixture
def store(broker: Broker) -> ResultStore:
    """The broker's own result store; where it keeps none, a memory store, as an app
    on that broker with ``results=`` another store has."""
    own = broker.result_store()
    return own if own is not None else MemoryBroker(f"memory://status-{uuid.uuid4().hex}").result_store()


def held(broker: Broker, where: TaskStatus) -> TaskStatus:
    """The status of a task the broker holds at ``where``, as far as it can tell."""
    return where if broker.locates_messages else "unknown"


def located(broker: Broker, expected: dict[str, Location]) -> dict[str, Location]:
    return expected if broker.locates_messages else {}


async def finish(broker: Broker, store: ResultStore, queue: str, status: str) -> str:
    """Send one task, lease it, store its result, settle it as a worker would."""
    (message,) = messages(queue, b"task")
    await broker.enqueue([message])
    delivery = await fetch_one(broker, queue)
    result = Result(id=message.id, status="succeeded" if status == "succeeded" else "failed")
    await store.store([(message.id, encode_result(result))], LONG_LEASE)
    if status == "succeeded":
        await broker.ack([delivery])
    else:
        await broker.dead_letter(delivery, "failed for good")
    return message.id


async def test_a_sent_task_is_queued(broker: Broker, store: ResultStore) -> None:
    (message,) = messages("q", b"1")
    await broker.enqueue([message])

    assert await task_status(broker, store, message.id) == held(broker, "queued")


async def test_a_delayed_task_is_queued(broker: Broker, store: ResultStore) -> None:
    (message,) = messages("q", b"later", eta=time.time() + LATER)
    await broker.enqueue([message])

    assert await task_status(broker, store, message.id) == held(broker, "queued")


async def test_a_leased_task_is_running(broker: Broker, store: ResultStore) -> None:
    (message,) = messages("q", b"1")
    await broker.enqueue([message])

    await fetch_one(broker, "q")

    assert await task_status(broker, store, message.id) == held(broker, "running")


async def test_a_released_task_is_queued_again(broker: Broker, store: ResultStore) -> None:
    (message,) = messages("q", b"1")
    await broker.enqueue([message])

    await broker.release([await fetch_one(broker, "q")])

    assert await task_status(broker, store, message.id) == held(broker, "queued")


async def test_a_task_whose_lease_ran_out_is_queued_again(
    short_lease: Broker, broker: Broker, store: ResultStore
) -> None:
    (message,) = messages("q", b"1")
    await broker.enqueue([message])
    await fetch_one(short_lease, "q")  # then the holder dies: nobody extends the lease

    async def queued() -> bool:
        return await task_status(broker, store, message.id) == held(broker, "queued")

    await eventually(queued, "the expired lease to read as queued")


async def test_a_task_waiting_for_its_retry_is_queued(broker: Broker, store: ResultStore) -> None:
    (message,) = messages("q", b"1")
    await broker.enqueue([message])

    delivery = await fetch_one(broker, "q")
    await broker.retry(delivery, Message(message.id, "q", b"1, again", time.time() + LATER))

    assert await task_status(broker, store, message.id) == held(broker, "queued")


async def test_an_acknowledged_task_with_its_result_stored_has_succeeded(
    broker: Broker, store: ResultStore
) -> None:
    task_id = await finish(broker, store, "q", "succeeded")

    assert await task_status(broker, store, task_id) == "succeeded"


async def test_a_dead_lettered_task_with_its_failed_result_has_failed(
    broker: Broker, store: ResultStore
) -> None:
    task_id = await finish(broker, store, "q", "failed")

    assert await task_status(broker, store, task_id) == "failed"


async def test_a_finished_task_whose_result_is_not_kept_is_unknown(
    broker: Broker, store: ResultStore
) -> None:
    (message,) = messages("q", b"1")
    await broker.enqueue([message])

    await broker.ack([await fetch_one(broker, "q")])

    assert await task_status(broker, store, message.id) == "unknown"
    assert await task_status(broker, None, message.id) == "unknown"


async def test_an_id_never_sent_is_unknown(broker: Broker, store: ResultStore) -> None:
    await broker.enqueue(messages("q", b"someone else"))

    assert await task_status(broker, store, "never-sent") == "unknown"
    assert await broker.locate(["never-sent"]) == {}


async def test_locate_answers_for_many_ids_at_once_and_leaves_out_the_unknown(broker: Broker) -> None:
    ready, leased = messages("q", b"ready", b"leased")
    await broker.enqueue([leased])
    await fetch_one(broker, "q")
    (delayed,) = messages("r", b"delayed", eta=time.time() + LATER)
    await broker.enqueue([ready, delayed])

    found = await broker.locate([ready.id, leased.id, delayed.id, "never-sent"])

    assert found == located(
        broker, {ready.id: "queued", leased.id: "running", delayed.id: "queued"}
    )


async def test_locate_looks_only_in_the_queues_it_is_given(broker: Broker) -> None:
    in_q, in_r = messages("q", b"1") + messages("r", b"2")
    await broker.enqueue([in_q, in_r])

    found = await broker.locate([in_q.id, in_r.id], queues=["r"])

    assert found == located(broker, {in_r.id: "queued"})


async def test_looking_for_a_task_leaves_it_where_it_was(broker: Broker) -> None:
    (message,) = messages("q", b"1")
    await broker.enqueue([message])

    await broker.locate([message.id])

    delivery = await fetch_one(broker, "q")
    assert (delivery.body, delivery.deliveries) == (b"1", 1)


async def test_locate_finds_tasks_behind_thousands_of_others(broker: Broker) -> None:
    # More than one chunk of every look that reads a queue in chunks (Redis: 1,000).
    waiting = messages("q", *(b"%d" % i for i in range(2500)))
    delayed = messages("q", *(b"d%d" % i for i in range(2500)), eta=time.time() + LATER)
    await broker.enqueue(waiting + delayed)
    leased = {d.body for d in await broker.fetch(["q"], 1200, 5.0)}
    sample = [*waiting[1100:1110], *waiting[-10:], *delayed[-10:]]

    found = await broker.locate([m.id for m in sample])

    expected: dict[str, Location] = {
        m.id: "running" if m.body in leased else "queued" for m in sample
    }
    assert found == located(broker, expected)
