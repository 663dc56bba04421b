"""RabbitMQ: a message moved (dead-lettered, retried, requeued) is acknowledged only once
RabbitMQ confirmed its new copy. Here RabbitMQ refuses the copy, as a full queue does
(``max-length`` 0, ``overflow: reject-publish``, set by a policy in a virtual host of the
test's own): the original must stay, unacknowledged, and come back.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from hurtle.brokers.amqp.topology import delay_headers, delay_units
from hurtle.errors import BrokerError
from tests.amqp_server import private_vhost, rabbitmqctl, with_params
from tests.contract.support import Brokers, dead_letter_each, fetch_one, messages
from tests.integration.conftest import wait_until

QUEUE = "q"


@pytest.fixture(params=["classic", "quorum"])
def queue_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def refusing(vhost_url: str, queue: str) -> Iterator[None]:
    """Have RabbitMQ refuse (nack) every publish to queue ``queue`` of the virtual host,
    as a full queue does (``max-length`` 0, ``overflow: reject-publish``)."""
    vhost = urlsplit(vhost_url).path.lstrip("/")
    rule = json.dumps({"max-length": 0, "overflow": "reject-publish"})
    rabbitmqctl("set_policy", "-p", vhost, "refuse", f"^{re.escape(queue)}$", rule, "--apply-to", "queues")
    try:
        # A policy reaches an existing queue shortly after: wait until it has.
        wait_until(lambda: f"{queue}\trefuse" in rabbitmqctl("list_queues", "-p", vhost, "name", "policy"),
                   f"the policy to reach {queue}")
        yield
    finally:
        rabbitmqctl("clear_policy", "-p", vhost, "refuse")


@pytest.fixture
def vhost() -> Iterator[str]:
    with private_vhost() as url:
        yield url


async def test_a_dead_letter_refused_by_rabbitmq_leaves_the_original_unacked_and_it_comes_back(
    vhost: str, queue_type: str
) -> None:
    brokers = Brokers(with_params(vhost, prefix="p", queue_type=queue_type))
    try:
        broker = await brokers.open()
        await broker.enqueue(messages(QUEUE, b"x"))
        delivery = await fetch_one(broker, QUEUE)

        with refusing(vhost, f"p.dead.{QUEUE}"), pytest.raises(BrokerError):
            await broker.dead_letter(delivery, "bad")

        other = await brokers.open()
        again = await fetch_one(other, QUEUE)
        assert (again.body, again.deliveries) == (b"x", 2)
        assert (await other.stats([QUEUE]))[0].dead == 0
        await other.ack([again])
    finally:
        await brokers.close_all()


async def test_a_retry_refused_by_rabbitmq_leaves_the_original_unacked_and_adds_no_copy(
    vhost: str, queue_type: str
) -> None:
    brokers = Brokers(with_params(vhost, prefix="p", queue_type=queue_type))
    try:
        broker = await brokers.open()
        # A retry in 3000 s enters the delay cascade at the level a delay of 3600 s
        # made (and sits in): RabbitMQ refuses what is published into it.
        await broker.enqueue(messages(QUEUE, b"x"))
        await broker.enqueue(messages(QUEUE, b"sitting", eta=time.time() + 3600))
        delivery = await fetch_one(broker, QUEUE)
        level, _ = delay_headers(QUEUE, delay_units(time.time() + 3000, time.time()))

        with refusing(vhost, f"p.delay.{level}.{QUEUE}"), pytest.raises(BrokerError):
            (retry,) = messages(QUEUE, b"attempt 1", eta=time.time() + 3000)
            await broker.retry(delivery, retry)

        other = await brokers.open()
        again = await fetch_one(other, QUEUE)
        assert (again.body, again.deliveries) == (b"x", 2)
        assert (await other.stats([QUEUE]))[0].delayed == 1  # the one sitting there alone
        await other.ack([again])
    finally:
        await brokers.close_all()


# A quorum queue applies max-length after the fact (it takes one message past it), so
# only a classic work queue refuses the requeue here; the requeue path is the same.
@pytest.mark.parametrize("queue_type", ["classic"])
async def test_a_requeue_refused_by_rabbitmq_keeps_the_dead_letter(vhost: str, queue_type: str) -> None:
    brokers = Brokers(with_params(vhost, prefix="p", queue_type=queue_type))
    try:
        broker = await brokers.open()
        (sent,) = await dead_letter_each(broker, QUEUE, b"x")

        with refusing(vhost, f"p.q.{QUEUE}"), pytest.raises(BrokerError):
            await broker.requeue_dead([sent])

        (letter,) = await broker.dead_letters(QUEUE)
        assert letter.body == b"x"
        assert await broker.requeue_dead([sent]) == 1
        assert (await fetch_one(broker, QUEUE)).body == b"x"
    finally:
        await brokers.close_all()
